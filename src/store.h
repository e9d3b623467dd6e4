/* store.h: all PostgreSQL access of the responder: one connection per
 * worker, opened after fork, statements prepared at every (re)connect.
 * Every function answers RC_UNAVAILABLE while the database cannot be
 * reached and reconnects on the next call. */
#ifndef OTPD_STORE_H
#define OTPD_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "crypto.h"
#include "rc.h"

struct store;

#define STORE_NAME_MAX 201
#define STORE_TIME_MAX 40

/* What generate needs to know before it can issue a code. */
struct store_issue_ctx {
	int64_t client_id;
	int64_t provider_id;		/* 0: no such provider */
	int max_attempts;
	int lock_seconds;
	bool template_found;
	char template_id[STORE_NAME_MAX];	/* "" when built-in */
};

/* One code and its outbox row, ready to insert. */
struct store_code {
	const char *otp_id;
	int64_t client_id;
	int64_t provider_id;
	const char *channel;
	const char *destination;
	const uint8_t *tag;		/* CRYPTO_TAG_LEN bytes */
	int32_t key_id;
	int expires_in;
	int max_attempts;
	int lock_seconds;
	const char *template_id;	/* NULL: built-in */
	const uint8_t *sealed;
	size_t sealed_len;
};

/* The state of a code as seen by its client, for validation. */
struct store_code_state {
	int64_t client_id;
	bool found;		/* false: unknown, or another client's */
	bool consumed;
	bool expired;
	bool locked;
	int retry_after;	/* seconds, when locked */
	int32_t key_id;
	uint8_t tag[CRYPTO_TAG_LEN];
};

/* Outbox figures for /otp/metrics. */
struct store_outbox_stats {
	int64_t pending;
	double oldest_due_seconds;	/* 0 when nothing is due */
};

/* A callback for each (client, provider, kind, outcome, total) row. */
typedef void store_delivery_fn(void *arg, const char *client,
    const char *provider, const char *kind, const char *outcome,
    const char *total);

/* store_new: a store that will connect to conninfo on first use; NULL when
 * out of memory.  Call in the worker, after fork. */
struct store *store_new(const char *conninfo);

/* store_free: close the connection and free st (NULL is fine). */
void store_free(struct store *st);

/* store_ping: RC_OK when the database answers. */
int store_ping(struct store *st) WARN_UNUSED;

/* store_auth: *client_id of the enabled client whose API key hashes to
 * key_hash, else RC_UNAUTHORIZED. */
int store_auth(struct store *st, const uint8_t key_hash[CRYPTO_TAG_LEN],
    int64_t *client_id) WARN_UNUSED;

/* store_issue_lookup: authenticate and find provider and template in one
 * round trip.  template_id NULL asks for the client's default. */
int store_issue_lookup(struct store *st,
    const uint8_t key_hash[CRYPTO_TAG_LEN], const char *channel,
    const char *provider, const char *template_id,
    struct store_issue_ctx *ctx) WARN_UNUSED;

/* store_issue_insert: insert the code and its outbox row in one statement
 * (one transaction) and wake the senders; created and expires (each
 * STORE_TIME_MAX bytes) get RFC 3339 UTC times. */
int store_issue_insert(struct store *st, const struct store_code *c,
    char *created, char *expires) WARN_UNUSED;

/* store_verify_lookup: authenticate and read the code otp_id of that client
 * in one round trip. */
int store_verify_lookup(struct store *st,
    const uint8_t key_hash[CRYPTO_TAG_LEN], const char *otp_id,
    struct store_code_state *state) WARN_UNUSED;

/* store_verify_finish: record the outcome of a comparison atomically: on a
 * match consume the code, else count a failure and lock at max_attempts;
 * either way add an attempt row.  *applied is false when the code changed
 * meanwhile (consumed, expired or locked by a concurrent request) and
 * nothing was written. */
int store_verify_finish(struct store *st, const char *otp_id,
    int64_t client_id, bool match, bool *applied) WARN_UNUSED;

/* store_attempt_note: add an attempt row with outcome ("locked",
 * "expired", "consumed") for a code that was not compared. */
int store_attempt_note(struct store *st, const char *otp_id,
    const char *outcome) WARN_UNUSED;

/* store_outbox_stats: pending jobs and the age of the oldest due one, then
 * each delivery total through fn. */
int store_outbox_stats(struct store *st, struct store_outbox_stats *s,
    store_delivery_fn *fn, void *arg) WARN_UNUSED;

#endif
