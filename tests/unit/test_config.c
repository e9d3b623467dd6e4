/* test_config.c: settings table, file parsing, bounded integers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "tap.h"

static char *
write_file(const char *text)
{
	static char path[] = "/tmp/otpd-test-config-XXXXXX";
	FILE *f;
	int fd;

	memcpy(path + sizeof(path) - 7, "XXXXXX", 6);
	fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

int
main(void)
{
	struct config c;
	char err[256];
	int64_t v;
	char *path;

	ok(config_init(&c) == RC_OK, "defaults");
	ok(c.body_limit == 16384 && c.expires_max == 86400 && c.workers == 0,
	    "default numbers");
	ok(strcmp(c.log_level, "info") == 0 && strcmp(c.socket, "") == 0,
	    "default strings");
	ok(config_set(&c, "workers", "4", err, sizeof(err)) == RC_OK &&
	    c.workers == 4, "set an integer");
	ok(config_set(&c, "workers", "4x", err, sizeof(err)) == RC_CONFIG,
	    "trailing garbage refused");
	ok(config_set(&c, "workers", "100000", err, sizeof(err)) == RC_CONFIG,
	    "out of range refused");
	ok(config_set(&c, "log_level", "loud", err, sizeof(err)) == RC_CONFIG,
	    "bad level refused");
	ok(config_set(&c, "nope", "1", err, sizeof(err)) == RC_CONFIG &&
	    strstr(err, "nope") != NULL, "unknown key refused and named");

	path = write_file("# comment\n\n database = \"host=/tmp dbname=x\"\n"
	    "socket=127.0.0.1:9000\nbody_limit = 2048 \n");
	ok(path != NULL && config_load(&c, path, err, sizeof(err)) == RC_OK,
	    "file loads");
	ok(strcmp(c.database, "host=/tmp dbname=x") == 0, "quoted value");
	ok(strcmp(c.socket, "127.0.0.1:9000") == 0, "plain value");
	ok(c.body_limit == 2048, "integer value with blanks");
	unlink(path);

	path = write_file("workers = 2\nthis line is wrong\n");
	ok(config_load(&c, path, err, sizeof(err)) == RC_CONFIG &&
	    strstr(err, ":2:") != NULL, "error names the line");
	unlink(path);
	ok(config_load(&c, "/nonexistent/otpd.conf", err, sizeof(err)) ==
	    RC_CONFIG, "missing file is an error");

	{
		struct config_flags f = {0};

		path = write_file("workers = 3\nbody_limit = 4096\n");
		ok(config_flag(&f, "workers", "5") == RC_OK, "flag collected");
		ok(config_apply(&c, path, &f, err, sizeof(err)) == RC_OK &&
		    c.workers == 5 && c.body_limit == 4096,
		    "file first, then flags win");
		f.n = 0;
		ok(config_flag(&f, "workers", "x") == RC_OK &&
		    config_apply(&c, path, &f, err, sizeof(err)) == RC_CONFIG,
		    "a bad flag value is an error");
		while (config_flag(&f, "workers", "1") == RC_OK)
			;
		ok(f.n == CONFIG_FLAGS_MAX, "flags are capped");
		unlink(path);
	}

	ok(parse_int64("-5", -10, 10, &v) == RC_OK && v == -5, "negative");
	ok(parse_int64("", 0, 10, &v) == RC_INVALID, "empty");
	ok(parse_int64("99999999999999999999", 0, INT64_MAX, &v) ==
	    RC_INVALID, "overflow");
	config_free(&c);
	return done_testing();
}
