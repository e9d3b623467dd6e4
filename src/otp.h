/* otp.h: the endpoints: issue a code (generate), check a code (validate),
 * and health.  No SQL text and no FastCGI here: store.c and http.c. */
#ifndef OTPD_OTP_H
#define OTPD_OTP_H

#include <stddef.h>
#include <stdint.h>

#include "rc.h"

struct config;
struct keyring;
struct request;
struct store;

#define OTP_CLIENT_CACHE 64

/*
 * A worker sends NOTIFY (which serialises the commits that carry one) at
 * most once per this many milliseconds; codes issued in between go out
 * without.  The sender therefore claims again this long twice over after
 * every notification, which picks those codes up.
 */
#define OTP_NOTIFY_INTERVAL_MS 20

/* Which client an API key hash belongs to, as last seen; only a hint: every
 * statement re-checks the key, so a stale entry costs one more round trip
 * and never grants access. */
struct otp_client_hint {
	uint8_t key_hash[32];
	int64_t client_id;
};

/* Everything a worker holds for its whole life. */
struct app {
	const struct config *cfg;
	const struct keyring *kr;
	struct store *st;
	struct otp_client_hint hints[OTP_CLIENT_CACHE];
	int64_t notified_ms;	/* monotonic time of the last NOTIFY */
};

/* Handlers: each writes exactly one answer to r. */
void otp_generate(struct app *app, struct request *r);
void otp_validate(struct app *app, struct request *r);
void otp_health(struct app *app, struct request *r);

/* otp_outbox_aad: the authenticated data that binds a sealed code to its
 * outbox row: "otpd/outbox/v1\n<otpId>\n<client id>\n<channel>\n
 * <destination>".  Returns its length, or 0 when it does not fit in outlen
 * bytes.  The sender rebuilds it to open the code. */
size_t otp_outbox_aad(char *out, size_t outlen, const char *otp_id,
    int64_t client_id, const char *channel, const char *destination);

#endif
