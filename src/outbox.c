/* outbox.c: the sender's PostgreSQL connection: LISTEN/NOTIFY, claiming
 * jobs and acknowledging outcomes through the functions of
 * sql/003_sender.sql, each one prepared statement and one round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "buf.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "outbox.h"

#define OUTBOX_ACK_MAX (4 * 1024 * 1024)	/* bytes of one ack batch */

struct outbox {
	PGconn *conn;
	char *conninfo;
	char worker[OUTBOX_WORKER_MAX];
	bool woken;		/* a notification was drained */
};

static const struct db_statement statements[] = {
	{"claim", "SELECT id, status, client_id, provider_id, channel,"
	    " destination,"
	    " code_sealed, key_id, attempts, expires_at, expires_text,"
	    " minutes, kind, config, subject, body,"
	    " (extract(epoch FROM expires_at::timestamptz) * 1000)::bigint"
	    " FROM otp.outbox_claim($1::int, $2::int, $3, $4::int)"},
	{"ack", "SELECT otp.outbox_ack($1::jsonb, $2, $3::int)"},
	{"next_due", "SELECT otp.outbox_next_due()"},
};

#define NSTATEMENTS (sizeof(statements) / sizeof(statements[0]))

/* column numbers of "claim" */
enum {
	C_ID, C_STATUS, C_CLIENT, C_PROVIDER, C_CHANNEL, C_DEST, C_SEALED, C_KEY,
	C_ATTEMPTS, C_EXPIRES, C_EXPTEXT, C_MINUTES, C_KIND, C_CONFIG,
	C_SUBJECT, C_BODY, C_EXPIRES_MS, C_NCOLS
};

struct outbox *
outbox_new(const char *conninfo, const char *worker)
{
	struct outbox *ob;

	ob = calloc(1, sizeof(*ob));
	if (ob == NULL)
		return NULL;
	ob->conninfo = strdup(conninfo);
	if (ob->conninfo == NULL) {
		free(ob);
		return NULL;
	}
	snprintf(ob->worker, sizeof(ob->worker), "%s", worker);
	return ob;
}

static void
outbox_disconnect(struct outbox *ob)
{
	PQfinish(ob->conn);
	ob->conn = NULL;
}

void
outbox_free(struct outbox *ob)
{
	if (ob == NULL)
		return;
	outbox_disconnect(ob);
	free(ob->conninfo);
	free(ob);
}

int
outbox_connect(struct outbox *ob)
{
	int rc;

	if (db_alive(ob->conn))
		return RC_OK;
	outbox_disconnect(ob);
	ob->conn = db_connect(ob->conninfo, "otpd-sender", "LISTEN otpd_outbox",
	    statements, NSTATEMENTS, &rc);
	if (rc == RC_OK)
		log_info("event=db_listening listen=otpd_outbox");
	return rc;
}

int
outbox_socket(const struct outbox *ob)
{
	return ob->conn != NULL ? PQsocket(ob->conn) : -1;
}

static void
outbox_drain(struct outbox *ob)
{
	PGnotify *n;

	while ((n = PQnotifies(ob->conn)) != NULL) {
		ob->woken = true;
		PQfreemem(n);
	}
}

int
outbox_notified(struct outbox *ob, bool *woken)
{
	*woken = false;
	if (ob->conn == NULL)
		return RC_UNAVAILABLE;
	if (PQconsumeInput(ob->conn) == 0 ||
	    PQstatus(ob->conn) != CONNECTION_OK) {
		log_warn("event=db_unavailable during=listen");
		outbox_disconnect(ob);
		return RC_UNAVAILABLE;
	}
	outbox_drain(ob);
	*woken = ob->woken;
	ob->woken = false;
	return RC_OK;
}

/* run a prepared statement with text parameters; logs failures once */
static int
outbox_run(struct outbox *ob, const char *name, int n,
    const char *const *vals, PGresult **resp)
{
	PGresult *res;

	*resp = NULL;
	if (ob->conn == NULL)
		return RC_UNAVAILABLE;
	res = PQexecPrepared(ob->conn, name, n, vals, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		outbox_drain(ob);
		*resp = res;
		return RC_OK;
	}
	if (db_failure(ob->conn, name, res) == RC_UNAVAILABLE) {
		PQclear(res);
		outbox_disconnect(ob);
		return RC_UNAVAILABLE;
	}
	PQclear(res);
	return RC_INTERNAL;
}

/* bytea hex output into a new allocation */
static int
outbox_bytea(const char *s, uint8_t **out, size_t *outlen)
{
	size_t max = strlen(s) / 2;
	int rc;

	*out = malloc(max > 0 ? max : 1);
	if (*out == NULL)
		return RC_NOMEM;
	rc = db_bytea(s, *out, max, outlen);
	if (rc != RC_OK) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

static char *
dup_or_null(PGresult *res, int row, int col, int *rc)
{
	char *s;

	if (PQgetisnull(res, row, col))
		return NULL;
	s = strdup(PQgetvalue(res, row, col));
	if (s == NULL)
		*rc = RC_NOMEM;
	return s;
}

static int
copy_text(char *dst, size_t dstlen, const char *src)
{
	if (strlen(src) >= dstlen)
		return RC_INTERNAL;
	memcpy(dst, src, strlen(src) + 1);
	return RC_OK;
}

/* one row of "claim" into j */
static int
outbox_job_read(PGresult *res, int row, struct outbox_job *j)
{
	int64_t v;
	int rc = RC_OK;

	if (copy_text(j->id, sizeof(j->id), PQgetvalue(res, row, C_ID)) ||
	    copy_text(j->expires_at, sizeof(j->expires_at),
	    PQgetvalue(res, row, C_EXPIRES)) ||
	    copy_text(j->expires_text, sizeof(j->expires_text),
	    PQgetvalue(res, row, C_EXPTEXT)) ||
	    copy_text(j->kind, sizeof(j->kind), PQgetvalue(res, row, C_KIND)))
		return RC_INTERNAL;
	if (parse_int64(PQgetvalue(res, row, C_CLIENT), 1, INT64_MAX,
	    &j->client_id) != RC_OK ||
	    parse_int64(PQgetvalue(res, row, C_PROVIDER), 1, INT64_MAX,
	    &j->provider_id) != RC_OK ||
	    parse_int64(PQgetvalue(res, row, C_EXPIRES_MS), 0, INT64_MAX,
	    &j->expires_ms) != RC_OK)
		return RC_INTERNAL;
	if (parse_int64(PQgetvalue(res, row, C_KEY), 1, INT32_MAX, &v) != RC_OK)
		return RC_INTERNAL;
	j->key_id = (int32_t)v;
	if (parse_int64(PQgetvalue(res, row, C_ATTEMPTS), 0, INT32_MAX, &v) !=
	    RC_OK)
		return RC_INTERNAL;
	j->attempts = (int)v;
	if (parse_int64(PQgetvalue(res, row, C_MINUTES), 0, INT32_MAX, &v) !=
	    RC_OK)
		return RC_INTERNAL;
	j->minutes = (int)v;
	j->channel = strcmp(PQgetvalue(res, row, C_CHANNEL), "sms") == 0 ?
	    CHANNEL_SMS : CHANNEL_EMAIL;
	if (PQgetisnull(res, row, C_SEALED))
		return RC_INTERNAL;
	rc = outbox_bytea(PQgetvalue(res, row, C_SEALED), &j->sealed,
	    &j->sealed_len);
	if (rc != RC_OK)
		return rc;
	j->destination = dup_or_null(res, row, C_DEST, &rc);
	j->config = dup_or_null(res, row, C_CONFIG, &rc);
	j->subject = dup_or_null(res, row, C_SUBJECT, &rc);
	j->body = dup_or_null(res, row, C_BODY, &rc);
	if (rc == RC_OK && (j->destination == NULL || j->config == NULL))
		rc = RC_INTERNAL;
	return rc;
}

int
outbox_claim(struct outbox *ob, int max, int lease_seconds, int max_attempts,
    struct outbox_job *jobs, int *n, int *claimed)
{
	char smax[16], slease[16], satt[16];
	const char *vals[4] = {smax, slease, ob->worker, satt};
	PGresult *res;
	int i, rows, rc;

	*n = *claimed = 0;
	memset(jobs, 0, sizeof(*jobs) * (size_t)max);
	snprintf(smax, sizeof(smax), "%d", max);
	snprintf(slease, sizeof(slease), "%d", lease_seconds);
	snprintf(satt, sizeof(satt), "%d", max_attempts);
	rc = outbox_run(ob, "claim", 4, vals, &res);
	if (rc != RC_OK)
		return rc;
	rows = PQntuples(res);
	if (rows > max || PQnfields(res) != C_NCOLS)
		rc = RC_INTERNAL;
	else
		*claimed = rows;
	for (i = 0; rc == RC_OK && i < rows; i++) {
		struct outbox_job *j = &jobs[*n];

		if (strcmp(PQgetvalue(res, i, C_STATUS), "pending") != 0) {
			log_info("event=job_settled id=%s status=%s",
			    PQgetvalue(res, i, C_ID),
			    PQgetvalue(res, i, C_STATUS));
			continue;
		}
		if (outbox_job_read(res, i, j) != RC_OK) {
			/* the row stays leased and is claimed again later */
			log_error("event=claim_bad_row id=%s",
			    PQgetvalue(res, i, C_ID));
			outbox_job_clear(j);
			continue;
		}
		(*n)++;
	}
	PQclear(res);
	return rc;
}

const char *
outbox_outcome_name(enum outbox_outcome o)
{
	switch (o) {
	case OUTBOX_SENT:
		return "sent";
	case OUTBOX_RETRY:
		return "retry";
	case OUTBOX_FAILED:
		return "failed";
	case OUTBOX_RELEASE:
		return "release";
	}
	return "release";
}

static int
ack_json(struct buf *b, const struct outbox_ack *acks, int n)
{
	int i, rc = buf_puts(b, "[");

	for (i = 0; rc == RC_OK && i < n; i++) {
		const struct outbox_ack *a = &acks[i];

		rc = buf_printf(b, "%s{\"id\":\"%s\",\"outcome\":\"%s\","
		    "\"delay\":%.3f", i > 0 ? "," : "", a->id,
		    outbox_outcome_name(a->outcome), a->delay);
		if (rc == RC_OK && a->message_id != NULL) {
			rc = buf_puts(b, ",\"message_id\":");
			if (rc == RC_OK)
				rc = buf_json_string(b, a->message_id,
				    strlen(a->message_id));
		}
		if (rc == RC_OK && a->error != NULL) {
			rc = buf_puts(b, ",\"error\":");
			if (rc == RC_OK)
				rc = buf_json_string(b, a->error,
				    strlen(a->error));
		}
		if (rc == RC_OK)
			rc = buf_puts(b, "}");
	}
	if (rc == RC_OK)
		rc = buf_puts(b, "]");
	return rc;
}

int
outbox_ack(struct outbox *ob, const struct outbox_ack *acks, int n,
    int max_attempts, int *changed)
{
	char satt[16];
	const char *vals[3];
	struct buf b;
	PGresult *res = NULL;
	int64_t v = 0;
	int rc;

	if (changed != NULL)
		*changed = 0;
	if (n == 0)
		return RC_OK;
	buf_init(&b, OUTBOX_ACK_MAX);
	rc = ack_json(&b, acks, n);
	if (rc != RC_OK)
		goto out;
	snprintf(satt, sizeof(satt), "%d", max_attempts);
	vals[0] = b.data;
	vals[1] = ob->worker;
	vals[2] = satt;
	rc = outbox_run(ob, "ack", 3, vals, &res);
	if (rc != RC_OK)
		goto out;
	if (PQntuples(res) != 1 || parse_int64(PQgetvalue(res, 0, 0), 0,
	    INT32_MAX, &v) != RC_OK)
		rc = RC_INTERNAL;
	if (changed != NULL)
		*changed = (int)v;
out:
	PQclear(res);
	buf_free(&b);
	return rc;
}

int
outbox_next_due(struct outbox *ob, double *seconds)
{
	PGresult *res;
	char *end;
	int rc;

	*seconds = -1;
	rc = outbox_run(ob, "next_due", 0, NULL, &res);
	if (rc != RC_OK)
		return rc;
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
		*seconds = strtod(PQgetvalue(res, 0, 0), &end);
		if (*end != '\0' || *seconds < 0)
			*seconds = 0;
	}
	PQclear(res);
	return RC_OK;
}

void
outbox_job_clear(struct outbox_job *j)
{
	if (j->sealed != NULL)
		crypto_wipe(j->sealed, j->sealed_len);
	free(j->sealed);
	free(j->destination);
	free(j->config);
	free(j->subject);
	free(j->body);
	memset(j, 0, sizeof(*j));
}
