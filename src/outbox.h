/* outbox.h: the sender's side of otp.outbox: its own PostgreSQL connection
 * (which LISTENs on otpd_outbox), claiming due jobs in batches under a lease
 * and recording the outcomes of a batch of deliveries in one round trip.
 * The SQL is in sql/003_sender.sql (otp.outbox_claim, otp.outbox_ack,
 * otp.outbox_next_due).  Every function answers RC_UNAVAILABLE when the
 * database cannot be reached; the connection is then closed and
 * outbox_connect() opens a new one. */
#ifndef OTPD_OUTBOX_H
#define OTPD_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "rc.h"
#include "validate.h"

struct outbox;

#define OUTBOX_WORKER_MAX 128
#define OUTBOX_TIME_MAX 40

/* One claimed job: everything its delivery needs.  Strings are allocated
 * and released by outbox_job_clear(). */
struct outbox_job {
	char id[CRYPTO_UUID_LEN + 1];	/* the otpId */
	int64_t client_id;
	int64_t provider_id;
	enum channel channel;
	char *destination;
	uint8_t *sealed;		/* nonce || ciphertext || tag */
	size_t sealed_len;
	int32_t key_id;
	int attempts;			/* including this one */
	char expires_at[OUTBOX_TIME_MAX];	/* as generate answered */
	int64_t expires_ms;		/* the same, Unix time in ms */
	char expires_text[OUTBOX_TIME_MAX];	/* whole seconds, for texts */
	int minutes;			/* the code's lifetime, rounded up */
	char kind[16];			/* provider kind */
	char *config;			/* provider config, JSON text */
	char *subject;			/* template subject, or NULL */
	char *body;			/* template body; NULL: built-in */
};

enum outbox_outcome {
	OUTBOX_SENT = 0,
	OUTBOX_RETRY,		/* again after delay seconds */
	OUTBOX_FAILED,
	OUTBOX_RELEASE,		/* not attempted: hand it back at once */
};

/* One outcome to record.  Strings are borrowed; error and message_id are
 * printable ASCII (the caller scrubs them). */
struct outbox_ack {
	const char *id;
	enum outbox_outcome outcome;
	double delay;			/* seconds, OUTBOX_RETRY only */
	const char *message_id;		/* OUTBOX_SENT; may be NULL */
	const char *error;		/* OUTBOX_RETRY, OUTBOX_FAILED */
};

/* outbox_new: an outbox for conninfo whose leases carry worker's name (at
 * most OUTBOX_WORKER_MAX - 1 bytes); not connected yet.  NULL when out of
 * memory. */
struct outbox *outbox_new(const char *conninfo, const char *worker);

/* outbox_free: close the connection and free ob (NULL is fine). */
void outbox_free(struct outbox *ob);

/* outbox_connect: connect and LISTEN otpd_outbox unless connected. */
int outbox_connect(struct outbox *ob) WARN_UNUSED;

/* outbox_socket: the connection's socket for poll(2), or -1. */
int outbox_socket(const struct outbox *ob);

/* outbox_notified: read what the socket has and drain notifications;
 * *woken is set when at least one arrived (here or during earlier
 * statements). */
int outbox_notified(struct outbox *ob, bool *woken) WARN_UNUSED;

/* outbox_claim: claim up to max due jobs; those to deliver are leased for
 * lease_seconds and read into jobs (max entries, cleared first), *n of
 * them.  Jobs whose code expired or was consumed, and jobs past
 * max_attempts, are settled by the database instead; *claimed counts both
 * kinds, so *claimed < max means nothing more is due. */
int outbox_claim(struct outbox *ob, int max, int lease_seconds,
    int max_attempts, struct outbox_job *jobs, int *n, int *claimed)
    WARN_UNUSED;

/* outbox_ack: record n outcomes in one statement; *changed (may be NULL)
 * gets how many rows changed (a row whose lease another sender took over is
 * left alone unless it was sent). */
int outbox_ack(struct outbox *ob, const struct outbox_ack *acks, int n,
    int max_attempts, int *changed) WARN_UNUSED;

/* outbox_next_due: seconds until the next pending job is due (0: now), or
 * -1 when nothing is pending. */
int outbox_next_due(struct outbox *ob, double *seconds) WARN_UNUSED;

/* outbox_job_clear: wipe and free what j holds; j is then empty. */
void outbox_job_clear(struct outbox_job *j);

/* outbox_outcome_name: "sent", "retry", "failed" or "release". */
const char *outbox_outcome_name(enum outbox_outcome o);

#endif
