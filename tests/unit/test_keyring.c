/* test_keyring.c: key file generation, rotation, permission checks and
 * strict parsing for keyring.c. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "keyring.h"
#include "tap.h"

#define HEX64 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define HEX128 HEX64 HEX64
#define OTHER128 \
	"ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100" \
	"0123456789ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef"

static char dir[] = "/tmp/otpd-test-keyring-XXXXXX";
static char path[sizeof(dir) + 32];

static int
write_file(const char *p, const char *text, mode_t mode)
{
	size_t n = strlen(text);
	int fd, rc = -1;

	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	if (fchmod(fd, mode) == 0 && write(fd, text, n) == (ssize_t)n)
		rc = 0;
	close(fd);
	return rc;
}

/* 1 when the file at p contains text. */
static int
file_has(const char *p, const char *text)
{
	char buf[8192];
	ssize_t n;
	int fd;

	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return 0;
	buf[n] = '\0';
	return strstr(buf, text) != NULL;
}

static mode_t
file_mode(const char *p)
{
	struct stat st;

	if (stat(p, &st) == -1)
		return (mode_t)-1;
	return st.st_mode & 07777;
}

static void
test_generate(void)
{
	struct keyring kr;
	struct keyring_key k1;
	const struct keyring_key *k;
	char err[256];
	int32_t id = -1;

	ok(keyring_generate(path, 1, &id, err, sizeof(err)) == RC_OK &&
	    id == 1, "create a new key file");
	ok(file_mode(path) == 0600, "new key file has mode 0600");
	ok(file_has(path, "# otpd key file"), "new key file has a header");
	ok(keyring_load(&kr, path, err, sizeof(err)) == RC_OK && kr.n == 1,
	    "load the new key file");
	k = keyring_current(&kr);
	ok(k != NULL && k->id == 1, "key 1 is current");
	memcpy(&k1, k, sizeof(k1));
	ok(keyring_generate(path, 1, &id, err, sizeof(err)) != RC_OK &&
	    id == 0 && strstr(err, "exists") != NULL,
	    "create-only refuses an existing file");
	ok(keyring_generate(path, 0, &id, err, sizeof(err)) == RC_OK &&
	    id == 2, "append key 2");
	ok(file_mode(path) == 0600, "rewritten key file has mode 0600");
	ok(keyring_load(&kr, path, err, sizeof(err)) == RC_OK && kr.n == 2,
	    "load two keys");
	k = keyring_current(&kr);
	ok(k != NULL && k->id == 2, "key 2 is current");
	ok(k != NULL && memcmp(k->mac, k1.mac, sizeof(k1.mac)) != 0 &&
	    memcmp(k->enc, k1.enc, sizeof(k1.enc)) != 0, "key 2 is new");
	k = keyring_find(&kr, 1);
	ok(k != NULL && memcmp(k, &k1, sizeof(k1)) == 0,
	    "key 1 still found, unchanged");
	ok(keyring_find(&kr, 3) == NULL, "unknown id not found");
	keyring_wipe(&kr);
	ok(kr.n == 0 && kr.keys[0].mac[0] == 0 && kr.keys[1].enc[31] == 0 &&
	    keyring_current(&kr) == NULL, "wipe clears the ring");
	crypto_wipe(&k1, sizeof(k1));
}

static void
test_permissions(void)
{
	struct keyring kr;
	char err[256];
	int32_t id;

	ok(chmod(path, 0644) == 0 && keyring_load(&kr, path, err,
	    sizeof(err)) == RC_CONFIG && kr.n == 0 &&
	    strstr(err, "(mode 0644); chmod 600") != NULL,
	    "mode 0644 refused with advice");
	ok(chmod(path, 0640) == 0 && keyring_load(&kr, path, err,
	    sizeof(err)) == RC_CONFIG, "mode 0640 refused");
	ok(chmod(path, 0602) == 0 && keyring_load(&kr, path, err,
	    sizeof(err)) == RC_CONFIG, "mode 0602 refused");
	ok(chmod(path, 0644) == 0 && keyring_generate(path, 0, &id, err,
	    sizeof(err)) == RC_CONFIG, "no key added to an open file");
	ok(chmod(path, 0400) == 0 && keyring_load(&kr, path, err,
	    sizeof(err)) == RC_OK && kr.n == 2, "mode 0400 accepted");
	ok(chmod(path, 0600) == 0, "restore mode");
	ok(keyring_load(&kr, dir, err, sizeof(err)) != RC_OK,
	    "a directory is refused");
	ok(keyring_load(&kr, "/nonexistent/otpd-keys", err, sizeof(err)) ==
	    RC_IO, "a missing file is an i/o error");
	keyring_wipe(&kr);
}

struct parse_case {
	const char *name;
	const char *text;
	int good;	/* load succeeds */
	int n;		/* keys when good */
};

static const struct parse_case parse_cases[] = {
	{"one key", "key 1 " HEX128 "\n", 1, 1},
	{"no final newline", "key 7 " HEX128, 1, 1},
	{"comments, blanks, tabs and crlf ok",
	    "# keys\n\n   \n\t# indented comment\nkey 1 " HEX128 "\r\n"
	    "  key\t2  " OTHER128 " \n# end\n", 1, 2},
	{"largest id", "key 2147483647 " HEX128 "\n", 1, 1},
	{"bad hex", "key 1 g" HEX128 "\n", 0, 0},
	{"bad hex in the middle",
	    "key 1 " HEX64 "x" HEX64 "\n", 0, 0},
	{"odd length key", "key 1 0" HEX128 "\n", 0, 0},
	{"duplicate id", "key 1 " HEX128 "\nkey 1 " OTHER128 "\n", 0, 0},
	{"id 0", "key 0 " HEX128 "\n", 0, 0},
	{"negative id", "key -1 " HEX128 "\n", 0, 0},
	{"plus sign", "key +1 " HEX128 "\n", 0, 0},
	{"leading zero", "key 01 " HEX128 "\n", 0, 0},
	{"id too large", "key 2147483648 " HEX128 "\n", 0, 0},
	{"id not a number", "key one " HEX128 "\n", 0, 0},
	{"garbage line", "hello world\n", 0, 0},
	{"garbage after a good line", "key 1 " HEX128 "\nxyz\n", 0, 0},
	{"key word only", "key\n", 0, 0},
	{"missing key", "key 1\n", 0, 0},
	{"trailing text", "key 1 " HEX128 " extra\n", 0, 0},
	{"upper-case keyword", "KEY 1 " HEX128 "\n", 0, 0},
	{"empty file", "", 0, 0},
	{"only comments", "# nothing here\n\n", 0, 0},
};

/* A key short by one byte (126 digits): HEX128 minus its last two. */
static void
test_short_key(void)
{
	struct keyring kr;
	char text[256], err[256];

	snprintf(text, sizeof(text), "key 1 %.*s\n", 126, HEX128);
	ok(write_file(path, text, 0600) == 0 && keyring_load(&kr, path, err,
	    sizeof(err)) == RC_CONFIG && strstr(err, "line 1") != NULL,
	    "key short by one byte refused");
	snprintf(text, sizeof(text), "key 1 %s00\n", HEX128);
	ok(write_file(path, text, 0600) == 0 && keyring_load(&kr, path, err,
	    sizeof(err)) == RC_CONFIG, "key long by one byte refused");
}

/* Run as root, a rotated file must stay readable by the user otpd runs as. */
static void
test_owner(void)
{
	struct stat st;
	char err[256];
	int32_t id;

	if (geteuid() != 0) {
		ok(1, "append keeps the owner # SKIP not root");
		return;
	}
	ok(write_file(path, "key 1 " HEX128 "\n", 0600) == 0 &&
	    chown(path, 65534, 65534) == 0 &&
	    keyring_generate(path, 0, &id, err, sizeof(err)) == RC_OK &&
	    stat(path, &st) == 0 && st.st_uid == 65534 && st.st_gid == 65534,
	    "append keeps the owner");
}

static void
test_parse(void)
{
	const struct parse_case *c;
	struct keyring kr;
	char err[256], name[160];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		c = &parse_cases[i];
		rc = write_file(path, c->text, 0600) == 0 ?
		    keyring_load(&kr, path, err, sizeof(err)) : RC_IO;
		snprintf(name, sizeof(name), "parse: %s", c->name);
		if (c->good)
			ok(rc == RC_OK && kr.n == c->n, name);
		else
			ok(rc == RC_CONFIG && kr.n == 0 && err[0] != '\0' &&
			    strstr(err, HEX64) == NULL &&
			    strstr(err, "00112233") == NULL, name);
	}
	ok(write_file(path, "key 1 " HEX128 "\nkey 5 " OTHER128 "\n", 0600) ==
	    0 && keyring_load(&kr, path, err, sizeof(err)) == RC_OK &&
	    keyring_current(&kr)->id == 5 && keyring_find(&kr, 1) != NULL &&
	    keyring_find(&kr, 1)->mac[1] == 0x11 &&
	    keyring_find(&kr, 1)->enc[31] == 0xff &&
	    keyring_current(&kr)->enc[1] == 0x23, "parsed key bytes");
	keyring_wipe(&kr);
}

static void
test_limits(void)
{
	struct keyring kr;
	char text[8192], err[256];
	size_t n = 0, cut = 0;
	int32_t id;
	int i;

	for (i = 1; i <= KEYRING_MAX + 1; i++) {
		if (i == KEYRING_MAX + 1)
			cut = n;
		n += (size_t)snprintf(text + n, sizeof(text) - n,
		    "key %d %s\n", i, HEX128);
	}
	ok(write_file(path, text, 0600) == 0 && keyring_load(&kr, path, err,
	    sizeof(err)) == RC_CONFIG && strstr(err, "more than 32") != NULL,
	    "33 keys refused");
	text[cut] = '\0';
	ok(write_file(path, text, 0600) == 0 && keyring_load(&kr, path, err,
	    sizeof(err)) == RC_OK && kr.n == KEYRING_MAX, "32 keys load");
	ok(keyring_generate(path, 0, &id, err, sizeof(err)) == RC_CONFIG &&
	    id == 0, "no 33rd key is added");
	ok(write_file(path, "key 2147483647 " HEX128 "\n", 0600) == 0 &&
	    keyring_generate(path, 0, &id, err, sizeof(err)) == RC_CONFIG,
	    "no id after 2147483647");
	ok(write_file(path, "# mine\nkey 4 " HEX128, 0600) == 0 &&
	    keyring_generate(path, 0, &id, err, sizeof(err)) == RC_OK &&
	    id == 5 && keyring_load(&kr, path, err, sizeof(err)) == RC_OK &&
	    kr.n == 2 && keyring_current(&kr)->id == 5,
	    "append after a file without a final newline");
	ok(file_has(path, "# mine\nkey 4 " HEX128 "\nkey 5 "),
	    "append keeps comments and old lines");
	ok(unlink(path) == 0 && keyring_generate(path, 0, &id, err,
	    sizeof(err)) == RC_OK && id == 1, "append creates a missing file");
	keyring_wipe(&kr);
}

int
main(void)
{
	int made;

	ok(crypto_init() == RC_OK, "crypto_init");
	made = mkdtemp(dir) != NULL;
	ok(made, "temporary directory");
	if (!made)
		return done_testing();
	snprintf(path, sizeof(path), "%s/keys", dir);
	test_generate();
	test_permissions();
	test_parse();
	test_short_key();
	test_limits();
	test_owner();
	unlink(path);
	ok(rmdir(dir) == 0, "no temporary files left behind");
	return done_testing();
}
