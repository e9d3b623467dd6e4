/* jsonv.h: strict JSON parsing (json-c strict mode, UTF-8 validated, depth
 * and size limited) and typed getters that check a field's type before it is
 * read.  json-c objects returned by the getters are borrowed from the parent. */
#ifndef OTPD_JSONV_H
#define OTPD_JSONV_H

#include <stddef.h>
#include <stdint.h>

#include "rc.h"

struct json_object;

#define JSONV_MAX_DEPTH 8

/* What a typed getter found. */
enum jsonv_found {
	JSONV_OK = 0,		/* present with the right type; value set */
	JSONV_MISSING,		/* absent, or JSON null */
	JSONV_WRONG_TYPE,	/* present with another JSON type (a double for an
				 * integer getter, an object for a string ...) */
	JSONV_BAD_VALUE,	/* right type but unusable: a string holding a
				 * NUL, an integer outside the given range */
};

/* jsonv_parse: parse exactly len bytes as one JSON value in json-c strict
 * mode with depth at most JSONV_MAX_DEPTH.  The bytes must be valid UTF-8
 * (checked before parsing; overlongs, surrogates and > U+10FFFF refused) and
 * nothing but whitespace may follow the value.  On success *out owns the
 * value (the caller json_object_put()s it) and RC_OK is returned; otherwise
 * *out is NULL and RC_INVALID is returned.  When the value parses but is not
 * an object, RC_INVALID too (the caller answers "Request body must be a JSON
 * object.").  A NUL byte anywhere in the body is RC_INVALID.  RC_NOMEM
 * when json-c cannot allocate. */
int jsonv_parse(const char *body, size_t len, struct json_object **out)
    WARN_UNUSED;

/* jsonv_string: obj[key] as a string.  *val (borrowed, NUL-terminated, valid
 * while obj lives) and *len are set only with JSONV_OK.  A string containing
 * U+0000 is JSONV_BAD_VALUE. */
enum jsonv_found jsonv_string(struct json_object *obj, const char *key,
    const char **val, size_t *len);

/* jsonv_int: obj[key] as an integer.  Only a JSON integer literal counts
 * (8, not 8.0, "8" or 8e0); a value outside [min, max], or one beyond int64
 * (INT64_MIN itself included: json-c clamps to it), is JSONV_BAD_VALUE with
 * *val set to the bound it lies beyond, min or max.  *val is set only with
 * JSONV_OK and JSONV_BAD_VALUE. */
enum jsonv_found jsonv_int(struct json_object *obj, const char *key,
    int64_t min, int64_t max, int64_t *val);

#endif
