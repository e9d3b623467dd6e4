/* test_buf.c: capped buffers and JSON string escaping. */
#include <string.h>

#include "buf.h"
#include "tap.h"

int
main(void)
{
	struct buf b;
	char big[300];

	buf_init(&b, 16);
	ok(buf_puts(&b, "0123456789") == RC_OK, "append under the cap");
	ok(buf_puts(&b, "abcdef") == RC_OK, "append up to the cap");
	ok(b.len == 16 && strcmp(b.data, "0123456789abcdef") == 0,
	    "content and NUL");
	ok(buf_puts(&b, "x") == RC_TOO_LARGE, "one byte past the cap refused");
	ok(b.len == 16, "refused append leaves the buffer as it was");
	buf_reset(&b);
	ok(b.len == 0 && b.data[0] == '\0', "reset empties");
	ok(buf_printf(&b, "%d-%s", 42, "x") == RC_OK &&
	    strcmp(b.data, "42-x") == 0, "printf");
	ok(buf_printf(&b, "%s", "0123456789abcdef") == RC_TOO_LARGE,
	    "printf past the cap refused");
	buf_free(&b);

	buf_init(&b, 1024);
	ok(buf_json_string(&b, "a\"b\\c\n\r\t\x01", 9) == RC_OK &&
	    strcmp(b.data, "\"a\\\"b\\\\c\\n\\r\\t\\u0001\"") == 0,
	    "json escaping");
	buf_reset(&b);
	ok(buf_json_string(&b, "a\0b", 3) == RC_OK &&
	    strcmp(b.data, "\"a\\u0000b\"") == 0, "embedded NUL escaped");
	buf_reset(&b);
	ok(buf_json_string(&b, "caf\xc3\xa9", 5) == RC_OK &&
	    strcmp(b.data, "\"caf\xc3\xa9\"") == 0, "UTF-8 kept as is");
	buf_free(&b);

	buf_init(&b, 100000);
	memset(big, 'z', sizeof(big));
	ok(buf_append(&b, big, sizeof(big)) == RC_OK && b.len == 300 &&
	    b.cap >= 301, "growth past the first allocation");
	buf_free(&b);
	ok(b.data == NULL && b.len == 0, "free");
	return done_testing();
}
