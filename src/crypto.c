/* crypto.c: every call into libgcrypt: start-up, the CSPRNG and its fork
 * safety, codes and UUIDs, SHA-256, HMAC-SHA-256, AES-256-GCM, constant-time
 * comparison and wiping. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <unistd.h>

#include <gcrypt.h>

#include "crypto.h"
#include "log.h"

/* configure.ac asks for libgcrypt >= 1.9; this checks the run-time copy. */
#define CRYPTO_GCRYPT_NEED "1.9.0"

#define CODE_TAG_LABEL "otpd-code-v1"

static const char numeric_chars[] = "0123456789";
static const char alnum_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

static int crypto_ready;
static pid_t crypto_pid;	/* process whose RNG state we last trusted */

static void
log_gcry(const char *op, gcry_error_t err)
{
	log_error("event=crypto_failed op=%s error=\"%s\"", op,
	    gcry_strerror(err));
}

/*
 * Fork safety.  We ask for libgcrypt's "system" RNG, which keeps no state
 * in the process: every gcry_randomize() reads getentropy(2), so parent
 * and workers can never share a stream.  That request is only advisory:
 * in FIPS mode libgcrypt uses its DRBG (which reseeds itself when getpid()
 * changes), and any other caller in the process may upgrade us to the
 * "standard" CSPRNG.  The standard CSPRNG notices a fork only through
 * getpid() and then mixes in little more than the new pid, so two workers
 * that the supervisor forks from the same parent state with a recycled pid
 * could be told apart only by clock readings.  Hence reseed_if_forked():
 * the first draw in a new process adds 32 bytes from the kernel to the
 * pool (a no-op for the system RNG and the DRBG, which ignore added bytes).
 */
static int
reseed_if_forked(void)
{
	uint8_t seed[32];
	gcry_error_t err;
	pid_t pid = getpid();
	int rc = RC_CRYPTO;

	if (pid == crypto_pid)
		return RC_OK;
	if (getentropy(seed, sizeof(seed)) == -1) {
		log_error("event=crypto_failed op=getentropy error=\"%s\"",
		    strerror(errno));
		goto out;
	}
	err = gcry_random_add_bytes(seed, sizeof(seed), -1);
	if (err) {
		log_gcry("random_add_bytes", err);
		goto out;
	}
	crypto_pid = pid;
	rc = RC_OK;
out:
	crypto_wipe(seed, sizeof(seed));
	return rc;
}

int
crypto_init(void)
{
	int type = 0;

	if (crypto_ready)
		return RC_OK;
	/* Must come before gcry_check_version to take effect. */
	gcry_control(GCRYCTL_SET_PREFERRED_RNG_TYPE, GCRY_RNG_TYPE_SYSTEM);
	if (gcry_check_version(CRYPTO_GCRYPT_NEED) == NULL) {
		log_error("event=crypto_failed op=check_version need=%s "
		    "have=%s", CRYPTO_GCRYPT_NEED, gcry_check_version(NULL));
		return RC_CRYPTO;
	}
	/*
	 * Keys live in ordinary memory that we wipe ourselves; secure memory
	 * would need mlock (root or RLIMIT_MEMLOCK) and prints warnings
	 * without it.
	 */
	gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
	gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
	gcry_control(GCRYCTL_GET_CURRENT_RNG_TYPE, &type);
	log_debug("event=crypto_ready libgcrypt=%s rng=%d",
	    gcry_check_version(NULL), type);
	crypto_pid = getpid();
	crypto_ready = 1;
	return RC_OK;
}

/* Defined for n == 0 (does nothing); RC_INTERNAL before crypto_init. */
int
crypto_random(void *buf, size_t n)
{
	int rc;

	if (!crypto_ready) {
		log_error("event=crypto_failed op=random error=\"crypto_init "
		    "not called\"");
		return RC_INTERNAL;
	}
	if (n == 0)
		return RC_OK;
	rc = reseed_if_forked();
	if (rc != RC_OK)
		return rc;
	/* libgcrypt aborts the process rather than return weak bytes. */
	gcry_randomize(buf, n, GCRY_STRONG_RANDOM);
	return RC_OK;
}

/* RC_INVALID for a bad len or alphabet; out is then an empty string. */
int
crypto_code(char *out, size_t len, enum crypto_alphabet a)
{
	uint8_t pool[2 * CRYPTO_CODE_MAX];
	const char *chars;
	size_t nchars, limit, used, i;
	int rc = RC_INVALID;

	if (a == CRYPTO_NUMERIC)
		chars = numeric_chars;
	else if (a == CRYPTO_ALPHANUMERIC)
		chars = alnum_chars;
	else
		goto out;
	if (len < 1 || len > CRYPTO_CODE_MAX)
		goto out;
	nchars = strlen(chars);
	/* Largest multiple of nchars that fits a byte: 250 or 248. */
	limit = 256 - 256 % nchars;
	used = sizeof(pool);
	for (i = 0; i < len;) {
		if (used == sizeof(pool)) {
			rc = crypto_random(pool, sizeof(pool));
			if (rc != RC_OK)
				goto out;
			used = 0;
		}
		if (pool[used] < limit)
			out[i++] = chars[pool[used] % nchars];
		used++;
	}
	out[len] = '\0';
	rc = RC_OK;
out:
	crypto_wipe(pool, sizeof(pool));
	if (rc != RC_OK && len >= 1 && len <= CRYPTO_CODE_MAX)
		crypto_wipe(out, len + 1);	/* no partial code left */
	else if (rc != RC_OK)
		out[0] = '\0';
	return rc;
}

int
crypto_uuid(char *out)
{
	static const size_t dash[] = {4, 6, 8, 10};
	uint8_t b[16];
	char *p = out;
	size_t i, d = 0;
	int rc;

	out[0] = '\0';
	rc = crypto_random(b, sizeof(b));
	if (rc != RC_OK)
		return rc;
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);	/* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);	/* variant 1, RFC 4122 */
	for (i = 0; i < sizeof(b); i++) {
		if (d < 4 && i == dash[d]) {
			*p++ = '-';
			d++;
		}
		crypto_hex(&b[i], 1, p);
		p += 2;
	}
	*p = '\0';
	return RC_OK;
}

void
crypto_sha256(const void *data, size_t len, uint8_t out[CRYPTO_TAG_LEN])
{
	gcry_md_hash_buffer(GCRY_MD_SHA256, out, data, len);
}

/* Open an HMAC-SHA-256 context keyed with key; logs its own failures. */
static int
hmac_open(gcry_mac_hd_t *hp, const void *key, size_t keylen)
{
	gcry_error_t err;

	err = gcry_mac_open(hp, GCRY_MAC_HMAC_SHA256, 0, NULL);
	if (err) {
		log_gcry("mac_open", err);
		*hp = NULL;
		return RC_CRYPTO;
	}
	err = gcry_mac_setkey(*hp, key, keylen);
	if (err) {
		log_gcry("mac_setkey", err);
		gcry_mac_close(*hp);
		*hp = NULL;
		return RC_CRYPTO;
	}
	return RC_OK;
}

/* Feed n bytes to h; an empty write is skipped (data may then be NULL). */
static int
hmac_write(gcry_mac_hd_t h, const void *data, size_t n)
{
	gcry_error_t err;

	if (n == 0)
		return RC_OK;
	err = gcry_mac_write(h, data, n);
	if (err) {
		log_gcry("mac_write", err);
		return RC_CRYPTO;
	}
	return RC_OK;
}

static int
hmac_finish(gcry_mac_hd_t h, uint8_t out[CRYPTO_TAG_LEN])
{
	gcry_error_t err;
	size_t outlen = CRYPTO_TAG_LEN;

	err = gcry_mac_read(h, out, &outlen);
	if (err || outlen != CRYPTO_TAG_LEN) {
		log_gcry("mac_read", err);
		return RC_CRYPTO;
	}
	return RC_OK;
}

/* out is all zero on failure. */
int
crypto_hmac_sha256(const void *key, size_t keylen, const void *data,
    size_t len, uint8_t out[CRYPTO_TAG_LEN])
{
	gcry_mac_hd_t h = NULL;
	int rc;

	memset(out, 0, CRYPTO_TAG_LEN);
	rc = hmac_open(&h, key, keylen);
	if (rc != RC_OK)
		goto out;
	rc = hmac_write(h, data, len);
	if (rc != RC_OK)
		goto out;
	rc = hmac_finish(h, out);
out:
	if (h != NULL)
		gcry_mac_close(h);
	if (rc != RC_OK)
		crypto_wipe(out, CRYPTO_TAG_LEN);
	return rc;
}

/*
 * Each variable field ends in a NUL (the C strings' own terminators, the
 * label's included), and the code comes last, so no two argument lists
 * give the same message.  out is all zero on failure.
 */
int
crypto_code_tag(const uint8_t key[CRYPTO_KEY_LEN], int64_t client_id,
    const char *otp_id, const char *code, size_t code_len,
    uint8_t out[CRYPTO_TAG_LEN])
{
	char dec[24];
	gcry_mac_hd_t h = NULL;
	int n, rc;

	memset(out, 0, CRYPTO_TAG_LEN);
	n = snprintf(dec, sizeof(dec), "%" PRId64, client_id);
	if (n < 0 || (size_t)n >= sizeof(dec))
		return RC_INTERNAL;
	rc = hmac_open(&h, key, CRYPTO_KEY_LEN);
	if (rc != RC_OK)
		goto out;
	rc = hmac_write(h, CODE_TAG_LABEL, sizeof(CODE_TAG_LABEL));
	if (rc == RC_OK)
		rc = hmac_write(h, dec, (size_t)n + 1);
	if (rc == RC_OK)
		rc = hmac_write(h, otp_id, strlen(otp_id) + 1);
	if (rc == RC_OK)
		rc = hmac_write(h, code, code_len);
	if (rc == RC_OK)
		rc = hmac_finish(h, out);
out:
	if (h != NULL)
		gcry_mac_close(h);
	if (rc != RC_OK)
		crypto_wipe(out, CRYPTO_TAG_LEN);
	return rc;
}

int
crypto_equal(const void *a, const void *b, size_t n)
{
	const volatile uint8_t *pa = a;
	const volatile uint8_t *pb = b;
	volatile uint8_t diff = 0;
	size_t i;

	for (i = 0; i < n; i++)
		diff |= pa[i] ^ pb[i];
	/* 1 when diff == 0, without a data-dependent branch. */
	return (int)(1 & (((unsigned int)diff - 1) >> 8));
}

/* A GCM context keyed with key and nonce; logs its own failures. */
static int
gcm_open(gcry_cipher_hd_t *hp, const uint8_t key[CRYPTO_KEY_LEN],
    const uint8_t nonce[CRYPTO_NONCE_LEN], const void *aad, size_t aadlen)
{
	gcry_error_t err;
	const char *op = "cipher_open";

	err = gcry_cipher_open(hp, GCRY_CIPHER_AES256, GCRY_CIPHER_MODE_GCM, 0);
	if (err) {
		*hp = NULL;
		goto out;
	}
	op = "cipher_setkey";
	err = gcry_cipher_setkey(*hp, key, CRYPTO_KEY_LEN);
	if (err)
		goto out;
	op = "cipher_setiv";
	err = gcry_cipher_setiv(*hp, nonce, CRYPTO_NONCE_LEN);
	if (err)
		goto out;
	op = "cipher_authenticate";
	if (aadlen > 0)
		err = gcry_cipher_authenticate(*hp, aad, aadlen);
out:
	if (err) {
		log_gcry(op, err);
		gcry_cipher_close(*hp);	/* accepts NULL */
		*hp = NULL;
		return RC_CRYPTO;
	}
	return RC_OK;
}

/* out is all zero on failure. */
int
crypto_seal(const uint8_t key[CRYPTO_KEY_LEN], const void *aad,
    size_t aadlen, const void *pt, size_t ptlen, uint8_t *out)
{
	gcry_cipher_hd_t h = NULL;
	gcry_error_t err = 0;
	uint8_t *ct = out + CRYPTO_NONCE_LEN;
	int rc;

	if (ptlen > SIZE_MAX - CRYPTO_SEAL_OVERHEAD)
		return RC_INVALID;
	rc = crypto_random(out, CRYPTO_NONCE_LEN);
	if (rc != RC_OK)
		goto out;
	rc = gcm_open(&h, key, out, aad, aadlen);
	if (rc != RC_OK)
		goto out;
	rc = RC_CRYPTO;
	if (ptlen > 0)
		err = gcry_cipher_encrypt(h, ct, ptlen, pt, ptlen);
	if (err) {
		log_gcry("cipher_encrypt", err);
		goto out;
	}
	err = gcry_cipher_gettag(h, ct + ptlen, CRYPTO_GCM_TAG_LEN);
	if (err) {
		log_gcry("cipher_gettag", err);
		goto out;
	}
	rc = RC_OK;
out:
	gcry_cipher_close(h);
	if (rc != RC_OK)
		crypto_wipe(out, ptlen + CRYPTO_SEAL_OVERHEAD);
	return rc;
}

/*
 * A tag mismatch is reported, not logged: only the caller knows which
 * row failed.  Input shorter than the overhead is RC_CRYPTO too (the
 * stored value is corrupt, not the client's request).
 */
int
crypto_open(const uint8_t key[CRYPTO_KEY_LEN], const void *aad,
    size_t aadlen, const uint8_t *in, size_t inlen, void *pt)
{
	gcry_cipher_hd_t h = NULL;
	gcry_error_t err = 0;
	size_t ctlen;
	int rc;

	if (inlen < CRYPTO_SEAL_OVERHEAD)
		return RC_CRYPTO;
	ctlen = inlen - CRYPTO_SEAL_OVERHEAD;
	rc = gcm_open(&h, key, in, aad, aadlen);
	if (rc != RC_OK)
		goto out;
	rc = RC_CRYPTO;
	if (ctlen > 0)
		err = gcry_cipher_decrypt(h, pt, ctlen, in + CRYPTO_NONCE_LEN,
		    ctlen);
	if (err) {
		log_gcry("cipher_decrypt", err);
		goto out;
	}
	err = gcry_cipher_checktag(h, in + CRYPTO_NONCE_LEN + ctlen,
	    CRYPTO_GCM_TAG_LEN);
	if (err) {
		if (gcry_err_code(err) != GPG_ERR_CHECKSUM)
			log_gcry("cipher_checktag", err);
		goto out;
	}
	rc = RC_OK;
out:
	gcry_cipher_close(h);
	if (rc != RC_OK && ctlen > 0)
		crypto_wipe(pt, ctlen);
	return rc;
}

void
crypto_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		explicit_bzero(p, n);
}

void
crypto_hex(const void *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *p = in;
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0x0f];
	}
	out[2 * n] = '\0';
}
