/* rc.c: text for result codes. */
#include "rc.h"

const char *
rc_str(int rc)
{
	switch (rc) {
	case RC_OK:
		return "ok";
	case RC_INTERNAL:
		return "internal error";
	case RC_NOMEM:
		return "out of memory";
	case RC_INVALID:
		return "invalid input";
	case RC_UNAUTHORIZED:
		return "unauthorized";
	case RC_NOT_FOUND:
		return "not found";
	case RC_METHOD:
		return "method not allowed";
	case RC_TOO_LARGE:
		return "too large";
	case RC_MEDIA_TYPE:
		return "unsupported media type";
	case RC_LOCKED:
		return "locked";
	case RC_UNAVAILABLE:
		return "database unavailable";
	case RC_IO:
		return "i/o error";
	case RC_CRYPTO:
		return "crypto error";
	case RC_CONFIG:
		return "configuration error";
	case RC_CONFLICT:
		return "conflict";
	}
	return "unknown error";
}
