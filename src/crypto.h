/* crypto.h: all use of libgcrypt: init, CSPRNG, codes, ids, SHA-256,
 * HMAC-SHA-256, AES-256-GCM, constant-time compare, wiping. */
#ifndef OTPD_CRYPTO_H
#define OTPD_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "rc.h"

#define CRYPTO_TAG_LEN 32	/* HMAC-SHA-256 / SHA-256 output */
#define CRYPTO_KEY_LEN 32
#define CRYPTO_NONCE_LEN 12	/* AES-GCM nonce */
#define CRYPTO_GCM_TAG_LEN 16
#define CRYPTO_SEAL_OVERHEAD (CRYPTO_NONCE_LEN + CRYPTO_GCM_TAG_LEN)
#define CRYPTO_UUID_LEN 36	/* text form, without the NUL */
#define CRYPTO_CODE_MAX 64

enum crypto_alphabet {
	CRYPTO_NUMERIC,		/* 0-9 */
	CRYPTO_ALPHANUMERIC,	/* A-Z a-z 0-9: 62 characters */
};

/* crypto_init: check the libgcrypt version and finish its initialisation.
 * Call once at start-up, before fork().  Safe to call again. */
int crypto_init(void) WARN_UNUSED;

/* crypto_random: fill buf with n bytes from libgcrypt's CSPRNG (strong
 * level).  Independent in every forked process. */
int crypto_random(void *buf, size_t n) WARN_UNUSED;

/* crypto_code: write len (1..CRYPTO_CODE_MAX) characters drawn uniformly
 * from the alphabet, with rejection sampling (no modulo bias), and a NUL,
 * into out (at least len + 1 bytes). */
int crypto_code(char *out, size_t len, enum crypto_alphabet a) WARN_UNUSED;

/* crypto_uuid: write a random (version 4) UUID in lower-case text form and a
 * NUL into out (CRYPTO_UUID_LEN + 1 bytes). */
int crypto_uuid(char *out) WARN_UNUSED;

/* crypto_sha256: out = SHA-256(data). */
void crypto_sha256(const void *data, size_t len, uint8_t out[CRYPTO_TAG_LEN]);

/* crypto_code_tag: out = HMAC-SHA-256(key, "otpd-code-v1" 0 client_id(decimal)
 * 0 otp_id 0 code).  Binds a stored tag to its client and row. */
int crypto_code_tag(const uint8_t key[CRYPTO_KEY_LEN], int64_t client_id,
    const char *otp_id, const char *code, size_t code_len,
    uint8_t out[CRYPTO_TAG_LEN]) WARN_UNUSED;

/* crypto_hmac_sha256: out = HMAC-SHA-256(key, data). */
int crypto_hmac_sha256(const void *key, size_t keylen, const void *data,
    size_t len, uint8_t out[CRYPTO_TAG_LEN]) WARN_UNUSED;

/* crypto_equal: 1 when the n bytes at a and b are equal, else 0; the time
 * taken does not depend on the contents. */
int crypto_equal(const void *a, const void *b, size_t n);

/* crypto_seal: AES-256-GCM.  out (ptlen + CRYPTO_SEAL_OVERHEAD bytes) gets
 * a fresh random nonce || ciphertext || tag; aad is authenticated. */
int crypto_seal(const uint8_t key[CRYPTO_KEY_LEN], const void *aad,
    size_t aadlen, const void *pt, size_t ptlen, uint8_t *out) WARN_UNUSED;

/* crypto_open: reverse of crypto_seal.  pt gets inlen - CRYPTO_SEAL_OVERHEAD
 * bytes.  RC_CRYPTO when the tag does not verify (pt is then wiped). */
int crypto_open(const uint8_t key[CRYPTO_KEY_LEN], const void *aad,
    size_t aadlen, const uint8_t *in, size_t inlen, void *pt) WARN_UNUSED;

/* crypto_wipe: zero n bytes at p in a way the compiler cannot drop. */
void crypto_wipe(void *p, size_t n);

/* crypto_hex: write 2*n lower-case hex digits and a NUL into out. */
void crypto_hex(const void *in, size_t n, char *out);

#endif
