/* rc.h: the result codes every module returns (0 ok, negative failures). */
#ifndef OTPD_RC_H
#define OTPD_RC_H

#define WARN_UNUSED __attribute__((warn_unused_result))

enum rc {
	RC_OK = 0,
	RC_INTERNAL = -1,	/* a bug or an unexpected library failure */
	RC_NOMEM = -2,
	RC_INVALID = -3,	/* the client's input is invalid (400) */
	RC_UNAUTHORIZED = -4,	/* missing, unknown or disabled API key (401) */
	RC_NOT_FOUND = -5,	/* unknown path or row (404) */
	RC_METHOD = -6,		/* wrong method (405) */
	RC_TOO_LARGE = -7,	/* body over the limit (413) */
	RC_MEDIA_TYPE = -8,	/* Content-Type not JSON (415) */
	RC_LOCKED = -9,		/* too many failed attempts (429) */
	RC_UNAVAILABLE = -10,	/* database unreachable (503) */
	RC_IO = -11,		/* file or socket error */
	RC_CRYPTO = -12,	/* libgcrypt failure or failed authentication */
	RC_CONFIG = -13,	/* bad configuration or key file */
	RC_CONFLICT = -14,	/* lost a race; caller may retry */
};

/* rc_str: a short constant text for rc, never NULL. */
const char *rc_str(int rc);

#endif
