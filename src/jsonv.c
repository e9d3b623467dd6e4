/* jsonv.c: strict JSON parsing and typed getters.  Our own UTF-8 and RFC 8259
 * grammar pass runs first because json-c 0.16's strict mode still accepts
 * single quotes, NaN, Infinity, "-01", "5.", overlong and surrogate UTF-8 and
 * lone surrogate escapes; json-c then only builds the tree. */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <json-c/json.h>

#include "jsonv.h"

/* A cursor over the body for the grammar pass. */
struct scan {
	const unsigned char *p;
	size_t len;
	size_t pos;
	int depth;
};

static bool scan_value(struct scan *sc);

/* utf8_valid: RFC 3629 well-formed UTF-8: no overlongs, no encoded
 * surrogates, nothing above U+10FFFF, no truncated sequence. */
static bool
utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0, k, need;
	unsigned char c, lo, hi;

	while (i < len) {
		c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		lo = 0x80;
		hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			if (c == 0xe0)
				lo = 0xa0;	/* overlong */
			else if (c == 0xed)
				hi = 0x9f;	/* U+D800..DFFF */
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			if (c == 0xf0)
				lo = 0x90;	/* overlong */
			else if (c == 0xf4)
				hi = 0x8f;	/* above U+10FFFF */
		} else {
			return false;
		}
		if (len - i - 1 < need)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (k = 2; k <= need; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
		i += need + 1;
	}
	return true;
}

static int
scan_peek(const struct scan *sc)
{
	if (sc->pos >= sc->len)
		return -1;
	return sc->p[sc->pos];
}

/* scan_ws: skip the four whitespace bytes JSON allows, nothing else. */
static void
scan_ws(struct scan *sc)
{
	int c;

	for (;;) {
		c = scan_peek(sc);
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			return;
		sc->pos++;
	}
}

static bool
scan_digits(struct scan *sc)
{
	size_t start = sc->pos;
	int c;

	for (;;) {
		c = scan_peek(sc);
		if (c < '0' || c > '9')
			break;
		sc->pos++;
	}
	return sc->pos > start;
}

/* scan_number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool
scan_number(struct scan *sc)
{
	int c;

	if (scan_peek(sc) == '-')
		sc->pos++;
	c = scan_peek(sc);
	if (c == '0')
		sc->pos++;
	else if (c < '1' || c > '9' || !scan_digits(sc))
		return false;
	if (scan_peek(sc) == '.') {
		sc->pos++;
		if (!scan_digits(sc))
			return false;
	}
	c = scan_peek(sc);
	if (c == 'e' || c == 'E') {
		sc->pos++;
		c = scan_peek(sc);
		if (c == '+' || c == '-')
			sc->pos++;
		if (!scan_digits(sc))
			return false;
	}
	return true;
}

static bool
scan_literal(struct scan *sc, const char *lit)
{
	size_t n = strlen(lit);

	if (sc->len - sc->pos < n || memcmp(sc->p + sc->pos, lit, n) != 0)
		return false;
	sc->pos += n;
	return true;
}

/* scan_hex4: the four hex digits after "\u". */
static bool
scan_hex4(struct scan *sc, unsigned int *cp)
{
	unsigned int v = 0;
	int c, i;

	for (i = 0; i < 4; i++) {
		c = scan_peek(sc);
		if (c >= '0' && c <= '9')
			v = v * 16 + (unsigned int)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (unsigned int)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v = v * 16 + (unsigned int)(c - 'A' + 10);
		else
			return false;
		sc->pos++;
	}
	*cp = v;
	return true;
}

/* scan_unicode_escape: after "\u"; a surrogate must come as a proper
 * high-low pair, since json-c would silently turn a lone one into U+FFFD. */
static bool
scan_unicode_escape(struct scan *sc)
{
	unsigned int cp, lo;

	if (!scan_hex4(sc, &cp))
		return false;
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return false;
	if (cp < 0xd800 || cp > 0xdbff)
		return true;
	if (!scan_literal(sc, "\\u") || !scan_hex4(sc, &lo))
		return false;
	return lo >= 0xdc00 && lo <= 0xdfff;
}

/* scan_string: from the opening quote; bytes >= 0x80 were checked by
 * utf8_valid() already.  "\u0000" passes here; the getter refuses it. */
static bool
scan_string(struct scan *sc)
{
	int c;

	if (scan_peek(sc) != '"')
		return false;
	sc->pos++;
	for (;;) {
		c = scan_peek(sc);
		if (c < 0x20)		/* end of input or a control byte */
			return false;
		sc->pos++;
		if (c == '"')
			return true;
		if (c != '\\')
			continue;
		c = scan_peek(sc);
		sc->pos++;
		if (c == 'u') {
			if (!scan_unicode_escape(sc))
				return false;
		} else if (c <= 0 || strchr("\"\\/bfnrt", c) == NULL) {
			return false;
		}
	}
}

static bool
scan_object(struct scan *sc)
{
	sc->pos++;		/* '{' */
	scan_ws(sc);
	if (scan_peek(sc) == '}') {
		sc->pos++;
		return true;
	}
	for (;;) {
		scan_ws(sc);
		if (!scan_string(sc))
			return false;
		scan_ws(sc);
		if (scan_peek(sc) != ':')
			return false;
		sc->pos++;
		if (!scan_value(sc))
			return false;
		scan_ws(sc);
		if (scan_peek(sc) == '}') {
			sc->pos++;
			return true;
		}
		if (scan_peek(sc) != ',')
			return false;
		sc->pos++;
	}
}

static bool
scan_array(struct scan *sc)
{
	sc->pos++;		/* '[' */
	scan_ws(sc);
	if (scan_peek(sc) == ']') {
		sc->pos++;
		return true;
	}
	for (;;) {
		if (!scan_value(sc))
			return false;
		scan_ws(sc);
		if (scan_peek(sc) == ']') {
			sc->pos++;
			return true;
		}
		if (scan_peek(sc) != ',')
			return false;
		sc->pos++;
	}
}

/* scan_value: leading whitespace, then one value.  Recursion is bounded by
 * JSONV_MAX_DEPTH, so a body of 10^6 '[' costs nine stack frames. */
static bool
scan_value(struct scan *sc)
{
	bool good;
	int c;

	scan_ws(sc);
	c = scan_peek(sc);
	if (c == '{' || c == '[') {
		if (sc->depth >= JSONV_MAX_DEPTH)
			return false;
		sc->depth++;
		good = c == '{' ? scan_object(sc) : scan_array(sc);
		sc->depth--;
		return good;
	}
	if (c == '"')
		return scan_string(sc);
	if (c == 't')
		return scan_literal(sc, "true");
	if (c == 'f')
		return scan_literal(sc, "false");
	if (c == 'n')
		return scan_literal(sc, "null");
	return scan_number(sc);
}

/* body_check: the whole body is one object, nothing but whitespace after. */
static bool
body_check(const char *body, size_t len)
{
	struct scan sc;

	sc.p = (const unsigned char *)body;
	sc.len = len;
	sc.pos = 0;
	sc.depth = 0;
	if (memchr(body, '\0', len) != NULL || !utf8_valid(sc.p, len))
		return false;
	scan_ws(&sc);
	if (scan_peek(&sc) != '{' || !scan_value(&sc))
		return false;
	scan_ws(&sc);
	return sc.pos == len;
}

static bool
only_ws(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

int
jsonv_parse(const char *body, size_t len, struct json_object **out)
{
	struct json_tokener *tok = NULL;
	struct json_object *obj = NULL;
	size_t end;
	int rc = RC_INVALID;

	*out = NULL;
	if (body == NULL || len == 0 || len > INT_MAX || !body_check(body, len))
		goto out;
	/* json-c counts the top level too: N allows N - 1 nested containers */
	tok = json_tokener_new_ex(JSONV_MAX_DEPTH + 1);
	if (tok == NULL) {
		rc = RC_NOMEM;
		goto out;
	}
	json_tokener_set_flags(tok,
	    JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, body, (int)len);
	if (obj == NULL || json_tokener_get_error(tok) != json_tokener_success)
		goto out;
	end = json_tokener_get_parse_end(tok);
	if (end > len || !only_ws(body + end, len - end))
		goto out;
	if (!json_object_is_type(obj, json_type_object))
		goto out;
	*out = obj;
	obj = NULL;
	rc = RC_OK;
out:
	json_object_put(obj);
	if (tok != NULL)
		json_tokener_free(tok);
	return rc;
}

/* member_get: obj[key], borrowed; NULL when absent or JSON null. */
static struct json_object *
member_get(struct json_object *obj, const char *key)
{
	struct json_object *child = NULL;

	if (obj == NULL || key == NULL ||
	    !json_object_is_type(obj, json_type_object))
		return NULL;
	if (!json_object_object_get_ex(obj, key, &child))
		return NULL;
	return child;
}

enum jsonv_found
jsonv_string(struct json_object *obj, const char *key, const char **val,
    size_t *len)
{
	struct json_object *child;
	const char *s;
	int n;

	child = member_get(obj, key);
	if (child == NULL)
		return JSONV_MISSING;
	if (!json_object_is_type(child, json_type_string))
		return JSONV_WRONG_TYPE;
	s = json_object_get_string(child);
	n = json_object_get_string_len(child);
	if (s == NULL || n < 0)
		return JSONV_BAD_VALUE;
	/* json-c keeps "\u0000" inside the string; C callers would cut it */
	if (memchr(s, '\0', (size_t)n) != NULL)
		return JSONV_BAD_VALUE;
	if (!utf8_valid((const unsigned char *)s, (size_t)n))
		return JSONV_BAD_VALUE;
	*val = s;
	*len = (size_t)n;
	return JSONV_OK;
}

enum jsonv_found
jsonv_int(struct json_object *obj, const char *key, int64_t min, int64_t max,
    int64_t *val)
{
	struct json_object *child;
	int64_t v;

	child = member_get(obj, key);
	if (child == NULL)
		return JSONV_MISSING;
	/* a literal with a fraction or exponent is json_type_double */
	if (!json_object_is_type(child, json_type_int))
		return JSONV_WRONG_TYPE;
	/*
	 * json-c 0.16 does not fail on overflow, even in strict mode: a
	 * literal above INT64_MAX is kept as a uint64 (saturating at
	 * UINT64_MAX), one below INT64_MIN silently becomes INT64_MIN.  So
	 * INT64_MIN itself cannot be trusted and is refused as well; the sign
	 * survives the clamping, and says which bound *val gets.
	 */
	v = json_object_get_int64(child);
	if (v == INT64_MIN || v < min) {
		*val = min;
		return JSONV_BAD_VALUE;
	}
	if (v > max || (v == INT64_MAX &&
	    json_object_get_uint64(child) > (uint64_t)INT64_MAX)) {
		*val = max;
		return JSONV_BAD_VALUE;
	}
	*val = v;
	return JSONV_OK;
}
