/* keyring.c: reads, checks and writes the server key file (format in
 * keyring.h); no error message ever carries key material. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "keyring.h"

#define KEYRING_FILE_MAX 65536		/* 32 keys need under 5 KiB */
#define KEYRING_HEX_LEN (4 * CRYPTO_KEY_LEN)	/* mac || enc in hex */
#define KEYRING_LINE_MAX (sizeof("key 2147483647 \n") + KEYRING_HEX_LEN)

static const char new_file_header[] =
    "# otpd key file, written by otpd-keygen.  Keep it secret: mode 0600,\n"
    "# owned by the user otpd runs as.  The last key line is the current\n"
    "# key; keep older lines while codes made under them may be checked.\n";

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Read all of path into *bufp (malloc'd, NUL-terminated; the caller wipes
 * and frees it) after checking, on the open descriptor, that it is a small
 * regular file that only its owner may read or write.
 */
static int
read_file(const char *path, char **bufp, size_t *lenp, struct stat *st,
    char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	ssize_t r;
	int fd, rc = RC_IO;

	*bufp = NULL;
	*lenp = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd == -1) {
		set_err(err, errlen, "could not open key file %s: %s", path,
		    strerror(errno));
		return RC_IO;
	}
	if (fstat(fd, st) == -1) {
		set_err(err, errlen, "could not stat key file %s: %s", path,
		    strerror(errno));
		goto out;
	}
	rc = RC_CONFIG;
	if (!S_ISREG(st->st_mode)) {
		set_err(err, errlen, "key file %s is not a regular file", path);
		goto out;
	}
	if ((st->st_mode & 077) != 0) {
		set_err(err, errlen, "key file %s is accessible by group or "
		    "others (mode %04o); chmod 600 it", path,
		    (unsigned int)(st->st_mode & 07777));
		goto out;
	}
	rc = RC_NOMEM;
	buf = malloc(KEYRING_FILE_MAX + 1);
	if (buf == NULL) {
		set_err(err, errlen, "out of memory reading key file %s", path);
		goto out;
	}
	rc = RC_IO;
	for (;;) {
		r = read(fd, buf + len, KEYRING_FILE_MAX + 1 - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			set_err(err, errlen, "could not read key file %s: %s",
			    path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > KEYRING_FILE_MAX) {
			set_err(err, errlen, "key file %s is larger than %d "
			    "bytes", path, KEYRING_FILE_MAX);
			rc = RC_CONFIG;
			goto out;
		}
	}
	buf[len] = '\0';
	*bufp = buf;
	*lenp = len;
	buf = NULL;
	rc = RC_OK;
out:
	if (buf != NULL) {
		crypto_wipe(buf, KEYRING_FILE_MAX + 1);
		free(buf);
	}
	close(fd);
	return rc;
}

static int
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* The next run of non-blank characters in [*pp, end), or length 0. */
static size_t
next_field(const char **pp, const char *end, const char **fieldp)
{
	const char *p = *pp;
	const char *f;

	while (p < end && is_blank(*p))
		p++;
	f = p;
	while (p < end && !is_blank(*p))
		p++;
	*fieldp = f;
	*pp = p;
	return (size_t)(p - f);
}

/* 1..2147483647 in plain decimal: no sign, no leading zero. */
static int
parse_id(const char *s, size_t n, int32_t *idp)
{
	int64_t v = 0;
	size_t i;

	if (n < 1 || n > 10 || s[0] == '0')
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > INT32_MAX)
		return -1;
	*idp = (int32_t)v;
	return 0;
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* n bytes from 2n hex digits at s; -1 on any other character. */
static int
parse_hex(const char *s, size_t n, uint8_t *out)
{
	size_t i;
	int hi, lo;

	for (i = 0; i < n; i++) {
		hi = hex_value(s[2 * i]);
		lo = hex_value(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* Add the key on [p, end) to kr; NULL, or why the line is refused. */
static const char *
parse_line(struct keyring *kr, const char *p, const char *end)
{
	struct keyring_key *k;
	const char *f;
	size_t n;
	int i;

	if (kr->n >= KEYRING_MAX)
		return "more than 32 keys";
	k = &kr->keys[kr->n];
	n = next_field(&p, end, &f);
	if (n != 3 || memcmp(f, "key", 3) != 0)
		return "expected \"key <id> <128 hex digits>\"";
	n = next_field(&p, end, &f);
	if (parse_id(f, n, &k->id) != 0)
		return "key id must be a decimal integer 1..2147483647";
	for (i = 0; i < kr->n; i++)
		if (kr->keys[i].id == k->id)
			return "duplicate key id";
	n = next_field(&p, end, &f);
	if (n != KEYRING_HEX_LEN ||
	    parse_hex(f, CRYPTO_KEY_LEN, k->mac) != 0 ||
	    parse_hex(f + 2 * CRYPTO_KEY_LEN, CRYPTO_KEY_LEN, k->enc) != 0)
		return "key must be 128 hex digits";
	if (next_field(&p, end, &f) != 0)
		return "unexpected text after the key";
	kr->n++;
	return NULL;
}

static int
parse_file(struct keyring *kr, const char *path, const char *buf,
    size_t len, char *err, size_t errlen)
{
	const char *p = buf, *end = buf + len, *eol, *first, *why;
	int lineno = 0;

	if (memchr(buf, '\0', len) != NULL) {
		set_err(err, errlen, "key file %s contains a NUL byte", path);
		return RC_CONFIG;
	}
	while (p < end) {
		lineno++;
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		first = p;
		while (first < eol && is_blank(*first))
			first++;
		if (first < eol && *first != '#') {
			why = parse_line(kr, first, eol);
			if (why != NULL) {
				set_err(err, errlen, "key file %s line %d: %s",
				    path, lineno, why);
				return RC_CONFIG;
			}
		}
		p = eol + 1;
	}
	if (kr->n == 0) {
		set_err(err, errlen, "key file %s holds no keys", path);
		return RC_CONFIG;
	}
	return RC_OK;
}

int
keyring_load(struct keyring *kr, const char *path, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int rc;

	keyring_wipe(kr);
	set_err(err, errlen, "%s", "");
	rc = read_file(path, &buf, &len, &st, err, errlen);
	if (rc != RC_OK)
		return rc;
	rc = parse_file(kr, path, buf, len, err, errlen);
	if (rc != RC_OK)
		keyring_wipe(kr);
	crypto_wipe(buf, len);
	free(buf);
	return rc;
}

const struct keyring_key *
keyring_current(const struct keyring *kr)
{
	if (kr->n <= 0)
		return NULL;
	return &kr->keys[kr->n - 1];
}

const struct keyring_key *
keyring_find(const struct keyring *kr, int32_t id)
{
	int i;

	for (i = 0; i < kr->n; i++)
		if (kr->keys[i].id == id)
			return &kr->keys[i];
	return NULL;
}

void
keyring_wipe(struct keyring *kr)
{
	crypto_wipe(kr, sizeof(*kr));
}

static int
write_all(int fd, const void *data, size_t n)
{
	const char *p = data;
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Make a new directory entry for path durable. */
static int
sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd, rc = -1;

	if (slash == NULL)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (dir == NULL)
		return -1;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd != -1) {
		rc = fsync(fd);
		close(fd);
	}
	free(dir);
	return rc;
}

/* A fresh random key as a key line for id; returns its length or 0. */
static size_t
make_key_line(int32_t id, char line[KEYRING_LINE_MAX])
{
	uint8_t raw[2 * CRYPTO_KEY_LEN];
	size_t n = 0;
	int w;

	w = snprintf(line, KEYRING_LINE_MAX, "key %d ", (int)id);
	if (w < 0 || (size_t)w + KEYRING_HEX_LEN + 2 > KEYRING_LINE_MAX)
		goto out;
	if (crypto_random(raw, sizeof(raw)) != RC_OK)
		goto out;
	crypto_hex(raw, sizeof(raw), line + w);
	n = (size_t)w + KEYRING_HEX_LEN;
	line[n++] = '\n';
	line[n] = '\0';
out:
	crypto_wipe(raw, sizeof(raw));
	return n;
}

/* Fill the new, empty file open on fd with the header and key 1. */
static int
write_new_file(int fd, const char *path, char *err, size_t errlen)
{
	char line[KEYRING_LINE_MAX];
	size_t n;
	int rc = RC_CRYPTO;

	n = make_key_line(1, line);
	if (n == 0) {
		set_err(err, errlen, "could not generate a random key");
		goto out;
	}
	rc = RC_IO;
	if (write_all(fd, new_file_header, sizeof(new_file_header) - 1) ||
	    write_all(fd, line, n) || fsync(fd) == -1) {
		set_err(err, errlen, "could not write key file %s: %s", path,
		    strerror(errno));
		goto out;
	}
	rc = RC_OK;
out:
	crypto_wipe(line, sizeof(line));
	return rc;
}

static int
create_file(int fd, const char *path, int32_t *idp, char *err,
    size_t errlen)
{
	int rc;

	rc = write_new_file(fd, path, err, errlen);
	if (close(fd) == -1 && rc == RC_OK) {
		set_err(err, errlen, "could not write key file %s: %s", path,
		    strerror(errno));
		rc = RC_IO;
	}
	if (rc != RC_OK) {
		unlink(path);
		return rc;
	}
	*idp = 1;
	if (sync_dir(path) == -1) {
		set_err(err, errlen, "wrote key file %s but could not sync "
		    "its directory: %s", path, strerror(errno));
		return RC_IO;
	}
	return RC_OK;
}

/* Write old || (newline) || line to tmp (open on fd), owned like st. */
static int
write_tmp(int fd, const char *tmp, const struct stat *st, const char *old,
    size_t oldlen, const char *line, size_t n, char *err, size_t errlen)
{
	if ((st->st_uid != geteuid() || st->st_gid != getegid()) &&
	    fchown(fd, st->st_uid, st->st_gid) == -1) {
		set_err(err, errlen, "could not give %s the owner of the key "
		    "file: %s", tmp, strerror(errno));
		return RC_IO;
	}
	if (write_all(fd, old, oldlen) ||
	    (oldlen > 0 && old[oldlen - 1] != '\n' && write_all(fd, "\n", 1)) ||
	    write_all(fd, line, n) || fsync(fd) == -1) {
		set_err(err, errlen, "could not write %s: %s", tmp,
		    strerror(errno));
		return RC_IO;
	}
	return RC_OK;
}

/*
 * Append a key to an existing, valid file by writing a complete copy
 * (comments kept) next to it and renaming it over the old one, so a
 * reader sees the old file or the new one, never half of either.  Two
 * otpd-keygen runs at once on one file may lose one key: run one at a
 * time.
 */
static int
append_key(const char *path, int32_t *idp, char *err, size_t errlen)
{
	struct keyring kr;
	struct stat st;
	char line[KEYRING_LINE_MAX];
	char *buf = NULL, *tmp = NULL;
	size_t len = 0, n, tmplen;
	int32_t id = 0;
	int i, fd = -1, rc, closed;

	memset(&kr, 0, sizeof(kr));
	rc = read_file(path, &buf, &len, &st, err, errlen);
	if (rc != RC_OK)
		goto out;
	rc = parse_file(&kr, path, buf, len, err, errlen);
	if (rc != RC_OK)
		goto out;
	rc = RC_CONFIG;
	for (i = 0; i < kr.n; i++)
		if (kr.keys[i].id > id)
			id = kr.keys[i].id;
	if (kr.n >= KEYRING_MAX || id == INT32_MAX) {
		set_err(err, errlen, "key file %s is full (at most %d keys, "
		    "ids up to 2147483647); remove old keys first", path,
		    KEYRING_MAX);
		goto out;
	}
	rc = RC_CRYPTO;
	n = make_key_line(id + 1, line);
	if (n == 0) {
		set_err(err, errlen, "could not generate a random key");
		goto out;
	}
	rc = RC_NOMEM;
	tmplen = strlen(path) + sizeof(".tmpXXXXXX");
	tmp = malloc(tmplen);
	if (tmp == NULL) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	snprintf(tmp, tmplen, "%s.tmpXXXXXX", path);
	rc = RC_IO;
	fd = mkostemp(tmp, O_CLOEXEC);	/* mode 0600 */
	if (fd == -1) {
		set_err(err, errlen, "could not create a temporary file next "
		    "to %s: %s", path, strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	rc = write_tmp(fd, tmp, &st, buf, len, line, n, err, errlen);
	if (rc != RC_OK)
		goto out;
	rc = RC_IO;
	closed = close(fd);
	fd = -1;
	if (closed == -1 || rename(tmp, path) == -1) {
		set_err(err, errlen, "could not replace key file %s: %s", path,
		    strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	*idp = id + 1;
	rc = RC_OK;
	if (sync_dir(path) == -1) {
		set_err(err, errlen, "wrote key file %s but could not sync "
		    "its directory: %s", path, strerror(errno));
		rc = RC_IO;
	}
out:
	if (fd != -1)
		close(fd);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	crypto_wipe(line, sizeof(line));
	keyring_wipe(&kr);
	if (buf != NULL) {
		crypto_wipe(buf, len);
		free(buf);
	}
	return rc;
}

/* Needs crypto_init first.  Without create_only an existing file must
 * load cleanly (permissions included) before a key is added to it. */
int
keyring_generate(const char *path, int create_only, int32_t *idp,
    char *err, size_t errlen)
{
	int fd;

	*idp = 0;
	set_err(err, errlen, "%s", "");
	/* O_EXCL decides "absent" atomically: no check-then-create race. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY,
	    0600);
	if (fd != -1)
		return create_file(fd, path, idp, err, errlen);
	if (errno != EEXIST) {
		set_err(err, errlen, "could not create key file %s: %s", path,
		    strerror(errno));
		return RC_IO;
	}
	if (create_only) {
		set_err(err, errlen, "key file %s already exists", path);
		return RC_CONFIG;
	}
	return append_key(path, idp, err, errlen);
}
