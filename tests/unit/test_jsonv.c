/* test_jsonv.c: unit tests of the strict JSON parser and typed getters. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "jsonv.h"
#include "tap.h"

/* A body to parse; len 0 means strlen(body). */
struct parse_case {
	const char *name;
	const char *body;
	size_t len;
	int rc;
};

static const struct parse_case parse_cases[] = {
	{ "plain object", "{\"a\":1}", 0, RC_OK },
	{ "empty object", "{}", 0, RC_OK },
	{ "whitespace around", " \t\r\n{ \"a\" : [ 1 , 2 ] }\r\n\t ", 0,
	    RC_OK },
	{ "all value kinds",
	    "{\"s\":\"x\",\"i\":-3,\"d\":1.5e-3,\"t\":true,\"f\":false,"
	    "\"n\":null,\"a\":[],\"o\":{}}", 0, RC_OK },
	{ "escapes", "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\"}", 0,
	    RC_OK },
	{ "surrogate pair escape", "{\"a\":\"\\ud83d\\ude00\"}", 0, RC_OK },
	{ "duplicate keys accepted", "{\"a\":1,\"a\":2}", 0, RC_OK },
	{ "minus zero", "{\"a\":-0}", 0, RC_OK },
	{ "huge exponent is a double", "{\"a\":1e400}", 0, RC_OK },
	{ "huge integer parses", "{\"a\":123456789012345678901234567890}", 0,
	    RC_OK },
	{ "utf-8 2, 3, 4 bytes",
	    "{\"a\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}", 0, RC_OK },
	{ "utf-8 U+10FFFF", "{\"a\":\"\xf4\x8f\xbf\xbf\"}", 0, RC_OK },
	{ "depth 8", "{\"a\":[[[[[[[1]]]]]]]}", 0, RC_OK },
	{ "empty body", "", 0, RC_INVALID },
	{ "only whitespace", "  \n", 0, RC_INVALID },
	{ "top-level array", "[1]", 0, RC_INVALID },
	{ "top-level string", "\"x\"", 0, RC_INVALID },
	{ "top-level number", "1", 0, RC_INVALID },
	{ "top-level null", "null", 0, RC_INVALID },
	{ "trailing garbage", "{\"a\":1}x", 0, RC_INVALID },
	{ "two objects", "{\"a\":1}{}", 0, RC_INVALID },
	{ "trailing form feed", "{\"a\":1}\f", 0, RC_INVALID },
	{ "truncated object", "{\"a\":1", 0, RC_INVALID },
	{ "truncated string", "{\"a\":\"x", 0, RC_INVALID },
	{ "single-quoted key", "{'a':1}", 0, RC_INVALID },
	{ "single-quoted value", "{\"a\":'x'}", 0, RC_INVALID },
	{ "block comment", "{\"a\":/*c*/1}", 0, RC_INVALID },
	{ "line comment", "{\"a\":1}//c", 0, RC_INVALID },
	{ "hash comment", "{\"a\":1}#c", 0, RC_INVALID },
	{ "NaN", "{\"a\":NaN}", 0, RC_INVALID },
	{ "Infinity", "{\"a\":Infinity}", 0, RC_INVALID },
	{ "-Infinity", "{\"a\":-Infinity}", 0, RC_INVALID },
	{ "leading zero", "{\"a\":01}", 0, RC_INVALID },
	{ "negative leading zero", "{\"a\":-01}", 0, RC_INVALID },
	{ "fraction without digits", "{\"a\":5.}", 0, RC_INVALID },
	{ "fraction without integer", "{\"a\":.5}", 0, RC_INVALID },
	{ "exponent without digits", "{\"a\":1e}", 0, RC_INVALID },
	{ "plus sign", "{\"a\":+1}", 0, RC_INVALID },
	{ "lone minus", "{\"a\":-}", 0, RC_INVALID },
	{ "hex number", "{\"a\":0x10}", 0, RC_INVALID },
	{ "trailing comma in object", "{\"a\":1,}", 0, RC_INVALID },
	{ "trailing comma in array", "{\"a\":[1,]}", 0, RC_INVALID },
	{ "missing comma", "{\"a\":1 \"b\":2}", 0, RC_INVALID },
	{ "missing colon", "{\"a\" 1}", 0, RC_INVALID },
	{ "unquoted key", "{a:1}", 0, RC_INVALID },
	{ "capitalised True", "{\"a\":True}", 0, RC_INVALID },
	{ "truncated literal", "{\"a\":tru}", 0, RC_INVALID },
	{ "raw tab in string", "{\"a\":\"x\ty\"}", 0, RC_INVALID },
	{ "raw newline in string", "{\"a\":\"x\ny\"}", 0, RC_INVALID },
	{ "bad escape \\x", "{\"a\":\"\\x41\"}", 0, RC_INVALID },
	{ "bad escape \\'", "{\"a\":\"\\'\"}", 0, RC_INVALID },
	{ "short \\u", "{\"a\":\"\\u12\"}", 0, RC_INVALID },
	{ "lone high surrogate", "{\"a\":\"\\ud800\"}", 0, RC_INVALID },
	{ "lone low surrogate", "{\"a\":\"\\udc00\"}", 0, RC_INVALID },
	{ "high surrogate then text", "{\"a\":\"\\ud800x\"}", 0, RC_INVALID },
	{ "two high surrogates", "{\"a\":\"\\ud800\\ud800\"}", 0, RC_INVALID },
	{ "reversed pair", "{\"a\":\"\\ude00\\ud83d\"}", 0, RC_INVALID },
	{ "utf-8 overlong NUL", "{\"a\":\"\xc0\x80\"}", 0, RC_INVALID },
	{ "utf-8 overlong 2-byte", "{\"a\":\"\xc1\xbf\"}", 0, RC_INVALID },
	{ "utf-8 overlong 3-byte", "{\"a\":\"\xe0\x80\xaf\"}", 0, RC_INVALID },
	{ "utf-8 overlong 4-byte", "{\"a\":\"\xf0\x80\x80\xaf\"}", 0,
	    RC_INVALID },
	{ "utf-8 surrogate D800", "{\"a\":\"\xed\xa0\x80\"}", 0, RC_INVALID },
	{ "utf-8 surrogate DFFF", "{\"a\":\"\xed\xbf\xbf\"}", 0, RC_INVALID },
	{ "utf-8 above U+10FFFF", "{\"a\":\"\xf4\x90\x80\x80\"}", 0,
	    RC_INVALID },
	{ "utf-8 F5 lead", "{\"a\":\"\xf5\x80\x80\x80\"}", 0, RC_INVALID },
	{ "utf-8 FF byte", "{\"a\":\"\xff\"}", 0, RC_INVALID },
	{ "utf-8 lone continuation", "{\"a\":\"\x80\"}", 0, RC_INVALID },
	{ "utf-8 truncated 3-byte", "{\"a\":\"\xe2\x82\"}", 0, RC_INVALID },
	{ "utf-8 truncated at end", "{\"a\":1}\xe2", 0, RC_INVALID },
	{ "utf-8 bad continuation", "{\"a\":\"\xe2\x28\xa1\"}", 0,
	    RC_INVALID },
	{ "byte order mark", "\xef\xbb\xbf{}", 0, RC_INVALID },
	{ "NUL inside", "{\"a\"\0:1}", 8, RC_INVALID },
	{ "NUL trailing", "{\"a\":1}\0", 8, RC_INVALID },
	{ "NUL inside string", "{\"a\":\"x\0y\"}", 11, RC_INVALID },
	{ "depth 9", "{\"a\":[[[[[[[[1]]]]]]]]}", 0, RC_INVALID },
	{ "objects depth 9",
	    "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":"
	    "{\"h\":{}}}}}}}}}",
	    0, RC_INVALID },
};

/* A getter call on get_body and what it must find. */
struct get_case {
	const char *name;
	const char *key;
	int is_int;
	int64_t min;
	int64_t max;
	enum jsonv_found found;
	int64_t ival;
	const char *sval;
	size_t slen;
};

static const char get_body[] =
    "{\"s\":\"hello\",\"empty\":\"\",\"nul\":\"a\\u0000b\","
    "\"utf\":\"\\u00e9\\ud83d\\ude00\",\"i\":8,\"neg\":-42,\"d\":8.0,"
    "\"e\":8e0,\"big\":1e400,\"sn\":\"8\",\"t\":true,\"n\":null,"
    "\"a\":[1],\"o\":{\"x\":1},\"mz\":-0,"
    "\"max\":9223372036854775807,\"over\":9223372036854775808,"
    "\"huge\":123456789012345678901234567890,"
    "\"nhuge\":-123456789012345678901234567890,"
    "\"min\":-9223372036854775808,\"under\":-9223372036854775809,"
    "\"dup\":1,\"dup\":2}";

#define W INT64_MIN, INT64_MAX

static const struct get_case get_cases[] = {
	{ "string", "s", 0, W, JSONV_OK, 0, "hello", 5 },
	{ "empty string", "empty", 0, W, JSONV_OK, 0, "", 0 },
	{ "string with U+0000", "nul", 0, W, JSONV_BAD_VALUE, 0, NULL, 0 },
	{ "string of escapes", "utf", 0, W, JSONV_OK, 0,
	    "\xc3\xa9\xf0\x9f\x98\x80", 6 },
	{ "string absent", "zz", 0, W, JSONV_MISSING, 0, NULL, 0 },
	{ "string null", "n", 0, W, JSONV_MISSING, 0, NULL, 0 },
	{ "string from int", "i", 0, W, JSONV_WRONG_TYPE, 0, NULL, 0 },
	{ "string from bool", "t", 0, W, JSONV_WRONG_TYPE, 0, NULL, 0 },
	{ "string from array", "a", 0, W, JSONV_WRONG_TYPE, 0, NULL, 0 },
	{ "string from object", "o", 0, W, JSONV_WRONG_TYPE, 0, NULL, 0 },
	{ "int", "i", 1, W, JSONV_OK, 8, NULL, 0 },
	{ "negative int", "neg", 1, W, JSONV_OK, -42, NULL, 0 },
	{ "int in range", "i", 1, 4, 12, JSONV_OK, 8, NULL, 0 },
	{ "int at min", "i", 1, 8, 12, JSONV_OK, 8, NULL, 0 },
	{ "int at max", "i", 1, 4, 8, JSONV_OK, 8, NULL, 0 },
	{ "int below min: min", "i", 1, 9, 12, JSONV_BAD_VALUE, 9, NULL, 0 },
	{ "int above max: max", "i", 1, 4, 7, JSONV_BAD_VALUE, 7, NULL, 0 },
	{ "minus zero", "mz", 1, W, JSONV_OK, 0, NULL, 0 },
	{ "int64 max", "max", 1, W, JSONV_OK, INT64_MAX, NULL, 0 },
	{ "above int64 max", "over", 1, W, JSONV_BAD_VALUE, INT64_MAX, NULL,
	    0 },
	{ "30 digits", "huge", 1, W, JSONV_BAD_VALUE, INT64_MAX, NULL, 0 },
	{ "int64 min (ambiguous)", "min", 1, W, JSONV_BAD_VALUE, INT64_MIN,
	    NULL, 0 },
	{ "below int64 min", "under", 1, W, JSONV_BAD_VALUE, INT64_MIN, NULL,
	    0 },
	{ "-30 digits", "nhuge", 1, W, JSONV_BAD_VALUE, INT64_MIN, NULL, 0 },
	/* the sign of a clamped literal picks the bound */
	{ "-30 digits in 1..86400: min", "nhuge", 1, 1, 86400,
	    JSONV_BAD_VALUE, 1, NULL, 0 },
	{ "below int64 min in 1..86400: min", "under", 1, 1, 86400,
	    JSONV_BAD_VALUE, 1, NULL, 0 },
	{ "int64 min in 1..86400: min", "min", 1, 1, 86400,
	    JSONV_BAD_VALUE, 1, NULL, 0 },
	{ "30 digits in 1..86400: max", "huge", 1, 1, 86400,
	    JSONV_BAD_VALUE, 86400, NULL, 0 },
	{ "above int64 max in 1..86400: max", "over", 1, 1, 86400,
	    JSONV_BAD_VALUE, 86400, NULL, 0 },
	{ "int64 max in 1..86400: max", "max", 1, 1, 86400,
	    JSONV_BAD_VALUE, 86400, NULL, 0 },
	{ "int from 8.0", "d", 1, W, JSONV_WRONG_TYPE, 0, NULL, 0 },
	{ "int from 8e0", "e", 1, W, JSONV_WRONG_TYPE, 0, NULL, 0 },
	{ "int from 1e400", "big", 1, W, JSONV_WRONG_TYPE, 0, NULL, 0 },
	{ "int from \"8\"", "sn", 1, W, JSONV_WRONG_TYPE, 0, NULL, 0 },
	{ "int from true", "t", 1, W, JSONV_WRONG_TYPE, 0, NULL, 0 },
	{ "int from array", "a", 1, W, JSONV_WRONG_TYPE, 0, NULL, 0 },
	{ "int from object", "o", 1, W, JSONV_WRONG_TYPE, 0, NULL, 0 },
	{ "int null", "n", 1, W, JSONV_MISSING, 0, NULL, 0 },
	{ "int absent", "zz", 1, W, JSONV_MISSING, 0, NULL, 0 },
	{ "duplicate key: last wins", "dup", 1, W, JSONV_OK, 2, NULL, 0 },
};

static void
test_parse_table(void)
{
	struct json_object *obj;
	const struct parse_case *c;
	size_t i, len;
	int rc;

	for (i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		c = &parse_cases[i];
		len = c->len != 0 ? c->len : strlen(c->body);
		obj = (struct json_object *)1;
		rc = jsonv_parse(c->body, len, &obj);
		ok(rc == c->rc && (rc == RC_OK) == (obj != NULL), c->name);
		json_object_put(obj);
	}
}

/* nested: n '[' then n ']' inside {"a": ...}; caller frees. */
static char *
nested(size_t n, size_t *lenp)
{
	char *s;
	size_t i;

	s = malloc(2 * n + 8);
	if (s == NULL)
		return NULL;
	memcpy(s, "{\"a\":", 5);
	for (i = 0; i < n; i++) {
		s[5 + i] = '[';
		s[5 + n + i] = ']';
	}
	s[5 + 2 * n] = '}';
	*lenp = 2 * n + 6;
	return s;
}

static void
test_deep(void)
{
	static const size_t depths[] = { 7, 8, 1000, 1000000 };
	struct json_object *obj;
	char *s;
	size_t i, len;
	int rc;

	for (i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) {
		s = nested(depths[i], &len);
		if (s == NULL) {
			ok(0, "nested: out of memory");
			continue;
		}
		obj = NULL;
		rc = jsonv_parse(s, len, &obj);
		/* the object itself is one level */
		if (depths[i] + 1 <= JSONV_MAX_DEPTH)
			ok(rc == RC_OK && obj != NULL, "nesting within depth");
		else
			ok(rc == RC_INVALID && obj == NULL,
			    "deep nesting refused without a crash");
		json_object_put(obj);
		free(s);
	}
}

/* test_unterminated: the parser reads exactly len bytes, no more. */
static void
test_unterminated(void)
{
	struct json_object *obj = NULL;
	char *s;
	int rc;

	s = malloc(7);
	if (s == NULL) {
		ok(0, "unterminated: out of memory");
		return;
	}
	memcpy(s, "{\"a\":1}", 7);
	rc = jsonv_parse(s, 7, &obj);
	ok(rc == RC_OK && obj != NULL, "body without a terminating NUL");
	json_object_put(obj);
	obj = NULL;
	rc = jsonv_parse(s, 6, &obj);
	ok(rc == RC_INVALID && obj == NULL, "len cuts the body short");
	free(s);
	rc = jsonv_parse(NULL, 0, &obj);
	ok(rc == RC_INVALID && obj == NULL, "NULL body");
}

static void
test_get_case(struct json_object *obj, const struct get_case *c)
{
	const char *sval = "untouched";
	size_t slen = 999;
	int64_t ival = 777;
	enum jsonv_found f;
	int good;

	if (c->is_int) {
		f = jsonv_int(obj, c->key, c->min, c->max, &ival);
		good = f == c->found && (f == JSONV_OK ||
		    f == JSONV_BAD_VALUE ? ival == c->ival : ival == 777);
	} else {
		f = jsonv_string(obj, c->key, &sval, &slen);
		if (f == JSONV_OK)
			good = slen == c->slen &&
			    memcmp(sval, c->sval, slen) == 0 &&
			    sval[slen] == '\0';
		else
			good = slen == 999 && strcmp(sval, "untouched") == 0;
		good = good && f == c->found;
	}
	ok(good, c->name);
}

static void
test_getters(void)
{
	struct json_object *obj = NULL;
	const char *s;
	size_t i, len;
	int64_t v;

	if (jsonv_parse(get_body, sizeof(get_body) - 1, &obj) != RC_OK) {
		ok(0, "getter body parses");
		return;
	}
	ok(1, "getter body parses");
	for (i = 0; i < sizeof(get_cases) / sizeof(get_cases[0]); i++)
		test_get_case(obj, &get_cases[i]);
	ok(jsonv_int(obj, "i", 12, 4, &v) == JSONV_BAD_VALUE,
	    "empty range refuses");
	ok(jsonv_string(NULL, "s", &s, &len) == JSONV_MISSING,
	    "NULL object is missing");
	ok(jsonv_int(obj, NULL, W, &v) == JSONV_MISSING, "NULL key is missing");
	json_object_put(obj);
}

int
main(void)
{
	test_parse_table();
	test_deep();
	test_unterminated();
	test_getters();
	return done_testing();
}
