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

/* One code and its outbox row, to insert if the key, the provider and the
 * template check out. */
struct store_code {
	const uint8_t *key_hash;	/* SHA-256 of the API key */
	int64_t client_id;		/* the client the tag was made for */
	const char *channel;
	const char *provider;
	const char *template_id;	/* NULL: the client's default */
	const char *otp_id;
	const char *destination;
	const uint8_t *tag;		/* CRYPTO_TAG_LEN bytes */
	int32_t key_id;
	int expires_in;
	const uint8_t *sealed;
	size_t sealed_len;
	bool notify;			/* wake the senders with NOTIFY */
};

enum store_issue_result {
	ISSUE_OK = 0,		/* inserted; created and expires set */
	ISSUE_STALE,		/* the key belongs to client_id: redo */
	ISSUE_NOT_FOUND,	/* the provider or the template: see below */
};

/* Whether the key's client has the provider and the template a request
 * names (a template counts as found when none was named). */
struct store_names {
	bool provider_found;
	bool template_found;
};

struct store_issued {
	enum store_issue_result result;
	int64_t client_id;	/* the key's client */
	struct store_names names;	/* with ISSUE_NOT_FOUND */
	char created[STORE_TIME_MAX];	/* RFC 3339 UTC */
	char expires[STORE_TIME_MAX];
};

enum store_verdict {
	VERDICT_OK = 0,		/* matched; consumed now */
	VERDICT_INVALID,	/* mismatch, expired or consumed */
	VERDICT_LOCKED,		/* too many failures; retry_after set */
	VERDICT_UNKNOWN,	/* no such code for this client */
	VERDICT_STALE,		/* the key belongs to client_id: redo */
};

struct store_verified {
	enum store_verdict verdict;
	int64_t client_id;
	int retry_after;
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

/* store_names: like store_auth(), and whether the key's client has the
 * provider and the template named for channel (a NULL name is not looked
 * up and counts as found).  For a body refused anyway, so that all its
 * problems are listed. */
int store_names(struct store *st, const uint8_t key_hash[CRYPTO_TAG_LEN],
    const char *channel, const char *provider, const char *template_id,
    struct store_names *out) WARN_UNUSED;

/* store_issue: in one statement (one round trip, one transaction):
 * authenticate, find provider and template, and unless one is missing or
 * c->client_id is not the key's client, insert the code and its outbox row
 * and, with c->notify, wake the senders.  RC_UNAUTHORIZED for an unknown or disabled key. */
int store_issue(struct store *st, const struct store_code *c,
    struct store_issued *out) WARN_UNUSED;

/* store_verify: otp.verify() in one round trip: authenticate, lock the code
 * of client_id, compare the tag for its key (tags holds CRYPTO_TAG_LEN bytes
 * per id in key_ids, a PostgreSQL int[] literal such as "{1,2}") and record
 * the attempt.  RC_UNAUTHORIZED for an unknown or disabled key. */
int store_verify(struct store *st, const uint8_t key_hash[CRYPTO_TAG_LEN],
    int64_t client_id, const char *otp_id, const char *key_ids,
    const uint8_t *tags, size_t tags_len, struct store_verified *out)
    WARN_UNUSED;

/* store_outbox_stats: pending jobs and the age of the oldest due one, then
 * each delivery total through fn. */
int store_outbox_stats(struct store *st, struct store_outbox_stats *s,
    store_delivery_fn *fn, void *arg) WARN_UNUSED;

#endif
