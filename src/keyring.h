/* keyring.h: the server key file: HMAC and AES keys with ids, for rotation.
 *
 * File format (text, mode 0600 or stricter, owner-only):
 *   # comment lines and blank lines are ignored
 *   key <id> <128 hex digits>
 * id is a decimal integer 1..2147483647, unique in the file.  The 64 bytes
 * are the HMAC key (first 32) and the AES-256-GCM key (last 32).  The LAST
 * key line is the current key, used for new codes; the others still verify
 * and decrypt what was made under them. */
#ifndef OTPD_KEYRING_H
#define OTPD_KEYRING_H

#include <stdint.h>

#include "crypto.h"
#include "rc.h"

#define KEYRING_MAX 32

struct keyring_key {
	int32_t id;
	uint8_t mac[CRYPTO_KEY_LEN];
	uint8_t enc[CRYPTO_KEY_LEN];
};

struct keyring {
	int n;
	struct keyring_key keys[KEYRING_MAX];
};

/* keyring_load: read path into kr (cleared first).  Refuses a file that is
 * readable or writable by group or others, or malformed; err (errlen bytes,
 * owned by the caller) gets a message without any key material. */
int keyring_load(struct keyring *kr, const char *path, char *err,
    size_t errlen) WARN_UNUSED;

/* keyring_current: the key for new codes (the last one); NULL if empty. */
const struct keyring_key *keyring_current(const struct keyring *kr);

/* keyring_find: the key with this id, or NULL. */
const struct keyring_key *keyring_find(const struct keyring *kr, int32_t id);

/* keyring_generate: add a fresh random key to path (creating it with mode
 * 0600 when absent; id = highest id + 1) so that it becomes the current key.
 * With create_only, fails if path exists.  *idp gets the new id. */
int keyring_generate(const char *path, int create_only, int32_t *idp,
    char *err, size_t errlen) WARN_UNUSED;

/* keyring_wipe: erase all key material in kr. */
void keyring_wipe(struct keyring *kr);

#endif
