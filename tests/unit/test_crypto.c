/* test_crypto.c: known answers, tamper checks, code distribution and
 * fork independence for crypto.c. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gcrypt.h>

#include "crypto.h"
#include "tap.h"

#define DIST_DRAWS 200000

static const char numeric_chars[] = "0123456789";
static const char alnum_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* 1 when the hex text of the n bytes at p equals want. */
static int
hex_is(const uint8_t *p, size_t n, const char *want)
{
	char got[2 * 256 + 1];

	if (n > 256)
		return 0;
	crypto_hex(p, n, got);
	return strcmp(got, want) == 0;
}

static void
test_known_answers(void)
{
	uint8_t out[CRYPTO_TAG_LEN], key[131];

	crypto_sha256("abc", 3, out);
	ok(hex_is(out, sizeof(out), "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad"), "sha256 of abc");
	crypto_sha256("", 0, out);
	ok(hex_is(out, sizeof(out), "e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855"), "sha256 of empty input");

	/* RFC 4231 test cases 1, 2 and 6. */
	memset(key, 0x0b, 20);
	ok(crypto_hmac_sha256(key, 20, "Hi There", 8, out) == RC_OK &&
	    hex_is(out, sizeof(out), "b0344c61d8db38535ca8afceaf0bf12b"
	    "881dc200c9833da726e9376c2e32cff7"), "hmac rfc 4231 case 1");
	ok(crypto_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28,
	    out) == RC_OK && hex_is(out, sizeof(out),
	    "5bdcc146bf60754e6a042426089575c7"
	    "5a003f089d2739839dec58b964ec3843"), "hmac rfc 4231 case 2");
	memset(key, 0xaa, sizeof(key));
	ok(crypto_hmac_sha256(key, sizeof(key),
	    "Test Using Larger Than Block-Size Key - Hash Key First", 54,
	    out) == RC_OK && hex_is(out, sizeof(out),
	    "60e431591ee0b67f0d8a26aacbf5b77f"
	    "8e0bc6213728c5140546040f0ee37f54"), "hmac rfc 4231 case 6");
}

static void
test_code_tag(void)
{
	uint8_t key[CRYPTO_KEY_LEN], key2[CRYPTO_KEY_LEN];
	uint8_t t[CRYPTO_TAG_LEN], u[CRYPTO_TAG_LEN], m[CRYPTO_TAG_LEN];
	static const char msg[] = "otpd-code-v1\0" "42\0" "otp-a\0" "123456";

	memset(key, 0x11, sizeof(key));
	memset(key2, 0x22, sizeof(key2));
	ok(crypto_code_tag(key, 42, "otp-a", "123456", 6, t) == RC_OK,
	    "code tag computes");
	ok(crypto_hmac_sha256(key, sizeof(key), msg, sizeof(msg) - 1, m) ==
	    RC_OK && memcmp(t, m, sizeof(t)) == 0,
	    "code tag is hmac over the documented message");
	ok(crypto_code_tag(key, 42, "otp-a", "123456", 6, u) == RC_OK &&
	    memcmp(t, u, sizeof(t)) == 0, "code tag is deterministic");
	ok(crypto_code_tag(key, 43, "otp-a", "123456", 6, u) == RC_OK &&
	    memcmp(t, u, sizeof(t)) != 0, "code tag depends on client id");
	ok(crypto_code_tag(key, 42, "otp-b", "123456", 6, u) == RC_OK &&
	    memcmp(t, u, sizeof(t)) != 0, "code tag depends on otp id");
	ok(crypto_code_tag(key, 42, "otp-a", "123457", 6, u) == RC_OK &&
	    memcmp(t, u, sizeof(t)) != 0, "code tag depends on code");
	ok(crypto_code_tag(key2, 42, "otp-a", "123456", 6, u) == RC_OK &&
	    memcmp(t, u, sizeof(t)) != 0, "code tag depends on key");
	ok(crypto_code_tag(key, 4, "2otp-a", "123456", 6, u) == RC_OK &&
	    memcmp(t, u, sizeof(t)) != 0, "client id and otp id do not blur");
	ok(crypto_code_tag(key, 42, "otp-a1", "23456", 5, u) == RC_OK &&
	    memcmp(t, u, sizeof(t)) != 0, "otp id and code do not blur");
	ok(crypto_code_tag(key, -7, "x", "1", 1, u) == RC_OK,
	    "negative client id is accepted");
}

static void
test_equal(void)
{
	uint8_t a[32], b[32];

	memset(a, 0x5a, sizeof(a));
	memcpy(b, a, sizeof(b));
	ok(crypto_equal(a, b, sizeof(a)) == 1, "equal buffers compare equal");
	b[31] ^= 0x01;
	ok(crypto_equal(a, b, sizeof(a)) == 0, "last byte differs");
	ok(crypto_equal(a, b, 31) == 1, "equal up to the difference");
	b[31] = a[31];
	b[0] ^= 0x80;
	ok(crypto_equal(a, b, sizeof(a)) == 0, "first byte differs");
	ok(crypto_equal(a, b, 0) == 1, "empty ranges are equal");
	b[0] = (uint8_t)~a[0];
	ok(crypto_equal(a, b, 1) == 0, "all bits differ");
}

static void
test_seal(void)
{
	static const char pt[] = "+15551234567 and some more text";
	uint8_t key[CRYPTO_KEY_LEN], bad[CRYPTO_KEY_LEN];
	uint8_t box[sizeof(pt) + CRYPTO_SEAL_OVERHEAD];
	uint8_t box2[sizeof(box)], tmp[sizeof(box)];
	uint8_t empty[CRYPTO_SEAL_OVERHEAD];
	char out[sizeof(pt)];

	memset(key, 0x33, sizeof(key));
	memcpy(bad, key, sizeof(bad));
	bad[0] ^= 1;
	ok(crypto_seal(key, "row-1", 5, pt, sizeof(pt), box) == RC_OK,
	    "seal");
	ok(memcmp(box + CRYPTO_NONCE_LEN, pt, sizeof(pt)) != 0,
	    "ciphertext is not the plaintext");
	ok(crypto_open(key, "row-1", 5, box, sizeof(box), out) == RC_OK &&
	    memcmp(out, pt, sizeof(pt)) == 0, "open round trip");
	ok(crypto_seal(key, "row-1", 5, pt, sizeof(pt), box2) == RC_OK &&
	    memcmp(box, box2, CRYPTO_NONCE_LEN) != 0 &&
	    memcmp(box, box2, sizeof(box)) != 0, "fresh nonce per seal");
	ok(crypto_open(key, "row-2", 5, box, sizeof(box), out) == RC_CRYPTO,
	    "wrong aad fails");
	ok(crypto_open(key, NULL, 0, box, sizeof(box), out) == RC_CRYPTO,
	    "missing aad fails");
	ok(crypto_open(bad, "row-1", 5, box, sizeof(box), out) == RC_CRYPTO,
	    "wrong key fails");
	memset(out, 'x', sizeof(out));
	memcpy(tmp, box, sizeof(box));
	tmp[CRYPTO_NONCE_LEN + 3] ^= 0x04;
	ok(crypto_open(key, "row-1", 5, tmp, sizeof(tmp), out) == RC_CRYPTO,
	    "flipped ciphertext bit fails");
	ok(out[0] == 0 && memcmp(out, out + 1, sizeof(out) - 1) == 0,
	    "plaintext wiped after failure");
	memcpy(tmp, box, sizeof(box));
	tmp[sizeof(tmp) - 1] ^= 0x80;
	ok(crypto_open(key, "row-1", 5, tmp, sizeof(tmp), out) == RC_CRYPTO,
	    "flipped tag bit fails");
	memcpy(tmp, box, sizeof(box));
	tmp[0] ^= 0x01;
	ok(crypto_open(key, "row-1", 5, tmp, sizeof(tmp), out) == RC_CRYPTO,
	    "flipped nonce bit fails");
	ok(crypto_open(key, "row-1", 5, box, CRYPTO_SEAL_OVERHEAD - 1, out) ==
	    RC_CRYPTO, "short input fails");
	ok(crypto_seal(key, NULL, 0, NULL, 0, empty) == RC_OK &&
	    crypto_open(key, NULL, 0, empty, sizeof(empty), NULL) == RC_OK,
	    "empty plaintext round trip");
	empty[CRYPTO_NONCE_LEN] ^= 1;
	ok(crypto_open(key, NULL, 0, empty, sizeof(empty), NULL) == RC_CRYPTO,
	    "empty plaintext tag checked");
}

static int
only_from(const char *s, const char *chars)
{
	return s[strspn(s, chars)] == '\0';
}

static void
test_code_shape(void)
{
	char c[CRYPTO_CODE_MAX + 2];
	int good = 1;
	size_t len;

	for (len = 1; len <= CRYPTO_CODE_MAX; len++) {
		memset(c, 'Z', sizeof(c));
		if (crypto_code(c, len, CRYPTO_NUMERIC) != RC_OK ||
		    strlen(c) != len || !only_from(c, numeric_chars) ||
		    c[len + 1] != 'Z')
			good = 0;
		memset(c, '!', sizeof(c));
		if (crypto_code(c, len, CRYPTO_ALPHANUMERIC) != RC_OK ||
		    strlen(c) != len || !only_from(c, alnum_chars) ||
		    c[len + 1] != '!')
			good = 0;
	}
	ok(good, "codes of every length have the length, alphabet and NUL");
	ok(crypto_code(c, 0, CRYPTO_NUMERIC) == RC_INVALID && c[0] == '\0',
	    "length 0 refused");
	ok(crypto_code(c, CRYPTO_CODE_MAX + 1, CRYPTO_NUMERIC) == RC_INVALID,
	    "length over the maximum refused");
	ok(crypto_code(c, 6, (enum crypto_alphabet)7) == RC_INVALID,
	    "unknown alphabet refused");
}

/* Pearson's chi-square of DIST_DRAWS characters of alphabet a. */
static double
chi_square(enum crypto_alphabet a, const char *chars)
{
	long count[256] = {0};
	char c[CRYPTO_CODE_MAX + 1];
	size_t nchars = strlen(chars), i, k;
	double expect = (double)DIST_DRAWS / (double)nchars, chi = 0, d;
	long drawn = 0;

	while (drawn < DIST_DRAWS) {
		k = DIST_DRAWS - drawn < CRYPTO_CODE_MAX ?
		    (size_t)(DIST_DRAWS - drawn) : CRYPTO_CODE_MAX;
		if (crypto_code(c, k, a) != RC_OK)
			return 1e9;
		for (i = 0; i < k; i++)
			count[(unsigned char)c[i]]++;
		drawn += (long)k;
	}
	for (i = 0; i < nchars; i++) {
		d = (double)count[(unsigned char)chars[i]] - expect;
		chi += d * d / expect;
	}
	printf("# chi-square %.1f over %zu characters\n", chi, nchars);
	return chi;
}

static void
test_code_distribution(void)
{
	/* p < 1e-5 for 9 dof and about 1e-6 for 61 dof. */
	ok(chi_square(CRYPTO_NUMERIC, numeric_chars) < 40.0,
	    "numeric digits are uniform (chi-square, 9 dof)");
	ok(chi_square(CRYPTO_ALPHANUMERIC, alnum_chars) < 130.0,
	    "alphanumerics are uniform (chi-square, 61 dof)");
}

static int
uuid_shape_ok(const char *u)
{
	size_t i;

	if (strlen(u) != CRYPTO_UUID_LEN)
		return 0;
	for (i = 0; i < CRYPTO_UUID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (u[i] != '-')
				return 0;
		} else if (strchr("0123456789abcdef", u[i]) == NULL ||
		    u[i] == '\0') {
			return 0;
		}
	}
	return u[14] == '4' && strchr("89ab", u[19]) != NULL;
}

static void
test_uuid(void)
{
	char u[CRYPTO_UUID_LEN + 1], v[CRYPTO_UUID_LEN + 1];
	int good = 1, i;

	for (i = 0; i < 200; i++)
		if (crypto_uuid(u) != RC_OK || !uuid_shape_ok(u))
			good = 0;
	ok(good, "uuids are lower-case version 4 variant 1");
	ok(crypto_uuid(v) == RC_OK && strcmp(u, v) != 0, "uuids differ");
}

/* Fork a child that writes 32 random bytes to a pipe; -1 on failure. */
static pid_t
spawn_drawer(int *fdp)
{
	uint8_t r[32];
	int fds[2];
	pid_t pid;

	if (pipe(fds) == -1)
		return -1;
	/* Else the child may flush our TAP lines again (valgrind's exit
	 * hooks do, even after _exit). */
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		if (crypto_random(r, sizeof(r)) != RC_OK ||
		    write(fds[1], r, sizeof(r)) != (ssize_t)sizeof(r))
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	*fdp = fds[0];
	return pid;
}

static int
read_full(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = read(fd, buf + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static void
test_fork(void)
{
	uint8_t a[32], b[32], p[32];
	int fa = -1, fb = -1, sa = -1, sb = -1, good;
	pid_t ca, cb;

	ca = spawn_drawer(&fa);
	cb = spawn_drawer(&fb);
	good = ca > 0 && cb > 0 && crypto_random(p, sizeof(p)) == RC_OK &&
	    read_full(fa, a, sizeof(a)) == 0 &&
	    read_full(fb, b, sizeof(b)) == 0;
	if (ca > 0)
		waitpid(ca, &sa, 0);
	if (cb > 0)
		waitpid(cb, &sb, 0);
	close(fa);
	close(fb);
	ok(good && sa == 0 && sb == 0, "two forked children drew bytes");
	ok(good && memcmp(a, b, sizeof(a)) != 0,
	    "children draw different bytes");
	ok(good && memcmp(a, p, sizeof(a)) != 0 &&
	    memcmp(b, p, sizeof(b)) != 0, "children differ from the parent");
}

int
main(void)
{
	uint8_t z[8];
	int type = 0;

	ok(crypto_init() == RC_OK, "crypto_init");
	ok(crypto_init() == RC_OK, "crypto_init again");
	gcry_control(GCRYCTL_GET_CURRENT_RNG_TYPE, &type);
	ok(type == GCRY_RNG_TYPE_SYSTEM || type == GCRY_RNG_TYPE_FIPS,
	    "stateless system rng (or fips drbg) in use");
	ok(crypto_random(z, 0) == RC_OK, "zero-length draw");
	memset(z, 0xff, sizeof(z));
	crypto_wipe(z, sizeof(z));
	ok(z[0] == 0 && z[7] == 0, "wipe zeroes");
	crypto_hex("\x00\x9f\xff", 3, (char *)z);
	ok(strcmp((char *)z, "009fff") == 0, "hex is lower case");
	test_known_answers();
	test_code_tag();
	test_equal();
	test_seal();
	test_code_shape();
	test_code_distribution();
	test_uuid();
	test_fork();
	return done_testing();
}
