/* store.c: the responder's PostgreSQL statements and connection handling
 * (connect after fork, prepare at every connect, reconnect after a failure,
 * map errors to result codes and log them once). */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "store.h"

struct store {
	PGconn *conn;
	char *conninfo;
	bool ready;		/* connected and statements prepared */
};

struct statement {
	const char *name;
	const char *sql;
};

#define TS_UTC(col) "to_char(" col " AT TIME ZONE 'UTC', " \
	"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

static const struct statement statements[] = {
	{"ping", "SELECT 1"},
	{"auth",
	    "SELECT id FROM otp.clients WHERE api_key_hash = $1 AND enabled"},
	{"issue_lookup",
	    "SELECT c.id, p.id, p.max_attempts, p.lock_seconds,"
	    " (SELECT t.template_id FROM otp.templates t"
	    "  WHERE t.client_id = c.id AND t.channel = $2 AND"
	    "  CASE WHEN $4::text IS NULL THEN t.is_default"
	    "  ELSE t.template_id = $4 END LIMIT 1)"
	    " FROM otp.clients c LEFT JOIN otp.providers p"
	    " ON p.client_id = c.id AND p.channel = $2 AND p.name = $3"
	    " WHERE c.api_key_hash = $1 AND c.enabled"},
	{"issue_insert",
	    "WITH c AS (INSERT INTO otp.codes (id, client_id, provider_id,"
	    " channel, destination, code_hash, key_id, created_at, expires_at,"
	    " max_attempts, lock_seconds) VALUES ($1, $2, $3, $4, $5, $6, $7,"
	    " now(), now() + make_interval(secs => $8::int), $9, $10)"
	    " RETURNING id, created_at, expires_at),"
	    " o AS (INSERT INTO otp.outbox (id, client_id, provider_id, channel,"
	    " destination, template_id, code_sealed, key_id, created_at,"
	    " expires_at, next_attempt_at) SELECT id, $2, $3, $4, $5, $11, $12,"
	    " $7, created_at, expires_at, created_at FROM c)"
	    " SELECT " TS_UTC("created_at") ", " TS_UTC("expires_at") ","
	    " pg_notify('otpd_outbox', '') FROM c"},
	{"verify_lookup",
	    "SELECT c.id, k.code_hash, k.key_id, k.consumed_at IS NOT NULL,"
	    " k.expires_at <= now(), COALESCE(k.locked_until > now(), false),"
	    " GREATEST(1, ceil(extract(epoch FROM k.locked_until - now())))::int"
	    " FROM otp.clients c LEFT JOIN otp.codes k"
	    " ON k.id = $2 AND k.client_id = c.id"
	    " WHERE c.api_key_hash = $1 AND c.enabled"},
	{"verify_success",
	    "WITH u AS (UPDATE otp.codes SET consumed_at = now()"
	    " WHERE id = $1 AND client_id = $2 AND consumed_at IS NULL"
	    " AND expires_at > now() AND (locked_until IS NULL OR"
	    " locked_until <= now())"
	    " RETURNING id, client_id, destination, expires_at),"
	    " a AS (INSERT INTO otp.attempts (code_id, client_id, destination,"
	    " outcome, expires_at) SELECT id, client_id, destination,"
	    " 'success', expires_at FROM u)"
	    " SELECT count(*) FROM u"},
	/* a lock that has run out starts a fresh count of failures */
	{"verify_failure",
	    "WITH u AS (UPDATE otp.codes SET"
	    " failed_attempts = CASE WHEN locked_until IS NOT NULL THEN 1"
	    " ELSE failed_attempts + 1 END,"
	    " locked_until = CASE WHEN (CASE WHEN locked_until IS NOT NULL"
	    " THEN 1 ELSE failed_attempts + 1 END) >= max_attempts"
	    " THEN now() + make_interval(secs => lock_seconds) END"
	    " WHERE id = $1 AND client_id = $2 AND consumed_at IS NULL"
	    " AND expires_at > now() AND (locked_until IS NULL OR"
	    " locked_until <= now())"
	    " RETURNING id, client_id, destination, expires_at),"
	    " a AS (INSERT INTO otp.attempts (code_id, client_id, destination,"
	    " outcome, expires_at) SELECT id, client_id, destination,"
	    " 'mismatch', expires_at FROM u)"
	    " SELECT count(*) FROM u"},
	{"attempt_note",
	    "INSERT INTO otp.attempts (code_id, client_id, destination,"
	    " outcome, expires_at) SELECT id, client_id, destination, $2,"
	    " expires_at FROM otp.codes WHERE id = $1"},
	{"outbox_pending",
	    "SELECT count(*), COALESCE(extract(epoch FROM now() -"
	    " min(next_attempt_at) FILTER (WHERE next_attempt_at <= now())), 0)"
	    " FROM otp.outbox WHERE status = 'pending'"},
	{"delivery_counts",
	    "SELECT c.name, p.name, p.kind, d.outcome, d.n"
	    " FROM otp.delivery_counts d"
	    " JOIN otp.providers p ON p.id = d.provider_id"
	    " JOIN otp.clients c ON c.id = p.client_id ORDER BY 1, 2, 3, 4"},
};

#define NSTATEMENTS (sizeof(statements) / sizeof(statements[0]))

struct store *
store_new(const char *conninfo)
{
	struct store *st;

	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	st->conninfo = strdup(conninfo);
	if (st->conninfo == NULL) {
		free(st);
		return NULL;
	}
	return st;
}

static void
store_disconnect(struct store *st)
{
	PQfinish(st->conn);
	st->conn = NULL;
	st->ready = false;
}

void
store_free(struct store *st)
{
	if (st == NULL)
		return;
	store_disconnect(st);
	free(st->conninfo);
	free(st);
}

/* first line of a libpq message, for a one-line log entry */
static const char *
first_line(const char *msg, char *out, size_t outlen)
{
	size_t n = strcspn(msg, "\n");

	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, msg, n);
	out[n] = '\0';
	return out;
}

static int
store_connect(struct store *st)
{
	/* the operator's conninfo (dbname, expanded) overrides our defaults */
	const char *keys[] = {"connect_timeout", "application_name", "dbname",
	    NULL};
	const char *vals[] = {"3", "otpd", st->conninfo, NULL};
	char msg[256];
	size_t i;

	if (st->ready && PQstatus(st->conn) == CONNECTION_OK)
		return RC_OK;
	store_disconnect(st);
	st->conn = PQconnectdbParams(keys, vals, 1);
	if (st->conn == NULL)
		return RC_NOMEM;
	if (PQstatus(st->conn) != CONNECTION_OK) {
		log_warn("event=db_connect_failed error=\"%s\"",
		    first_line(PQerrorMessage(st->conn), msg, sizeof(msg)));
		store_disconnect(st);
		return RC_UNAVAILABLE;
	}
	for (i = 0; i < NSTATEMENTS; i++) {
		PGresult *res = PQprepare(st->conn, statements[i].name,
		    statements[i].sql, 0, NULL);
		bool good = PQresultStatus(res) == PGRES_COMMAND_OK;

		if (!good)
			log_error("event=db_prepare_failed statement=%s "
			    "error=\"%s\"", statements[i].name,
			    first_line(PQerrorMessage(st->conn), msg,
			    sizeof(msg)));
		PQclear(res);
		if (!good) {
			int down = PQstatus(st->conn) != CONNECTION_OK;

			store_disconnect(st);
			return down ? RC_UNAVAILABLE : RC_INTERNAL;
		}
	}
	st->ready = true;
	log_info("event=db_connected");
	return RC_OK;
}

/* map a failed result to a code, logging it once */
static int
store_fail(struct store *st, const char *name, PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : 0;
	const char *primary = res ?
	    PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char msg[256];

	metrics_db_error();
	if (PQstatus(st->conn) != CONNECTION_OK || state == NULL ||
	    strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0) {
		log_warn("event=db_unavailable statement=%s error=\"%s\"", name,
		    first_line(PQerrorMessage(st->conn), msg, sizeof(msg)));
		store_disconnect(st);
		return RC_UNAVAILABLE;
	}
	/* only SQLSTATE and the primary text: DETAIL may quote row values */
	log_error("event=db_error statement=%s sqlstate=%s error=\"%s\"", name,
	    state, first_line(primary ? primary : "", msg, sizeof(msg)));
	return RC_INTERNAL;
}

/*
 * Run a prepared statement.  Text parameters, except those flagged in
 * binary (a bit per parameter) which are bytea.  A statement that only
 * reads is retried once on a fresh connection, so the first request after a
 * database restart succeeds.
 */
static int
store_run(struct store *st, const char *name, int n, const char *const *vals,
    const int *lens, unsigned binary, bool retry, PGresult **resp)
{
	int fmts[16], i, rc;
	PGresult *res;
	ExecStatusType es;

	*resp = NULL;
	for (i = 0; i < n; i++)
		fmts[i] = (binary >> i) & 1;
	for (;;) {
		rc = store_connect(st);
		if (rc != RC_OK)
			return rc;
		res = PQexecPrepared(st->conn, name, n, vals, lens, fmts, 0);
		es = PQresultStatus(res);
		if (es == PGRES_TUPLES_OK || es == PGRES_COMMAND_OK) {
			*resp = res;
			return RC_OK;
		}
		rc = store_fail(st, name, res);
		PQclear(res);
		if (rc != RC_UNAVAILABLE || !retry)
			return rc;
		retry = false;
	}
}

int
store_ping(struct store *st)
{
	PGresult *res;
	int rc;

	rc = store_run(st, "ping", 0, NULL, NULL, 0, true, &res);
	PQclear(res);
	return rc;
}

/* parse a bigint column */
static int
get_i64(PGresult *res, int col, int64_t *out)
{
	return parse_int64(PQgetvalue(res, 0, col), INT64_MIN, INT64_MAX, out);
}

static int
get_int(PGresult *res, int col, int *out)
{
	int64_t v;
	int rc;

	rc = parse_int64(PQgetvalue(res, 0, col), INT32_MIN, INT32_MAX, &v);
	*out = (int)v;
	return rc;
}

static bool
get_bool(PGresult *res, int col)
{
	return PQgetvalue(res, 0, col)[0] == 't';
}

int
store_auth(struct store *st, const uint8_t key_hash[CRYPTO_TAG_LEN],
    int64_t *client_id)
{
	const char *vals[1] = {(const char *)key_hash};
	int lens[1] = {CRYPTO_TAG_LEN};
	PGresult *res;
	int rc;

	*client_id = 0;
	rc = store_run(st, "auth", 1, vals, lens, 1, true, &res);
	if (rc != RC_OK)
		return rc;
	if (PQntuples(res) != 1)
		rc = RC_UNAUTHORIZED;
	else
		rc = get_i64(res, 0, client_id);
	PQclear(res);
	return rc;
}

int
store_issue_lookup(struct store *st, const uint8_t key_hash[CRYPTO_TAG_LEN],
    const char *channel, const char *provider, const char *template_id,
    struct store_issue_ctx *ctx)
{
	const char *vals[4] = {(const char *)key_hash, channel, provider,
	    template_id};
	int lens[4] = {CRYPTO_TAG_LEN, 0, 0, 0};
	PGresult *res;
	int rc;

	memset(ctx, 0, sizeof(*ctx));
	rc = store_run(st, "issue_lookup", 4, vals, lens, 1, true, &res);
	if (rc != RC_OK)
		return rc;
	if (PQntuples(res) != 1) {
		rc = RC_UNAUTHORIZED;
		goto out;
	}
	rc = get_i64(res, 0, &ctx->client_id);
	if (rc != RC_OK || PQgetisnull(res, 0, 1))
		goto out;	/* no such provider: provider_id stays 0 */
	if (get_i64(res, 1, &ctx->provider_id) != RC_OK ||
	    get_int(res, 2, &ctx->max_attempts) != RC_OK ||
	    get_int(res, 3, &ctx->lock_seconds) != RC_OK) {
		rc = RC_INTERNAL;
		goto out;
	}
	if (!PQgetisnull(res, 0, 4)) {
		ctx->template_found = true;
		snprintf(ctx->template_id, sizeof(ctx->template_id), "%s",
		    PQgetvalue(res, 0, 4));
	}
out:
	PQclear(res);
	return rc;
}

int
store_issue_insert(struct store *st, const struct store_code *c,
    char *created, char *expires)
{
	char client[24], provider[24], key[16], exp[16], att[16], lock[16];
	const char *vals[12];
	int lens[12] = {0};
	PGresult *res;
	int rc;

	created[0] = expires[0] = '\0';
	snprintf(client, sizeof(client), "%lld", (long long)c->client_id);
	snprintf(provider, sizeof(provider), "%lld", (long long)c->provider_id);
	snprintf(key, sizeof(key), "%d", (int)c->key_id);
	snprintf(exp, sizeof(exp), "%d", c->expires_in);
	snprintf(att, sizeof(att), "%d", c->max_attempts);
	snprintf(lock, sizeof(lock), "%d", c->lock_seconds);
	vals[0] = c->otp_id;
	vals[1] = client;
	vals[2] = provider;
	vals[3] = c->channel;
	vals[4] = c->destination;
	vals[5] = (const char *)c->tag;
	lens[5] = CRYPTO_TAG_LEN;
	vals[6] = key;
	vals[7] = exp;
	vals[8] = att;
	vals[9] = lock;
	vals[10] = c->template_id;
	vals[11] = (const char *)c->sealed;
	lens[11] = (int)c->sealed_len;
	/* not retried: the insert may have committed before the failure */
	rc = store_run(st, "issue_insert", 12, vals, lens,
	    (1u << 5) | (1u << 11), false, &res);
	if (rc != RC_OK)
		return rc;
	if (PQntuples(res) != 1) {
		rc = RC_INTERNAL;
	} else {
		snprintf(created, STORE_TIME_MAX, "%s", PQgetvalue(res, 0, 0));
		snprintf(expires, STORE_TIME_MAX, "%s", PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	return rc;
}

/* decode bytea hex output ("\x0a1b...") of exactly n bytes */
static int
get_bytea(PGresult *res, int col, uint8_t *out, size_t n)
{
	const char *s = PQgetvalue(res, 0, col);
	size_t i;

	if (strlen(s) != 2 + 2 * n || s[0] != '\\' || s[1] != 'x')
		return RC_INTERNAL;
	for (i = 0; i < 2 * n; i++) {
		char ch = s[2 + i];
		int v;

		if (ch >= '0' && ch <= '9')
			v = ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			v = ch - 'a' + 10;
		else
			return RC_INTERNAL;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	return RC_OK;
}

int
store_verify_lookup(struct store *st, const uint8_t key_hash[CRYPTO_TAG_LEN],
    const char *otp_id, struct store_code_state *s)
{
	const char *vals[2] = {(const char *)key_hash, otp_id};
	int lens[2] = {CRYPTO_TAG_LEN, 0};
	int64_t key_id;
	PGresult *res;
	int rc;

	memset(s, 0, sizeof(*s));
	rc = store_run(st, "verify_lookup", 2, vals, lens, 1, true, &res);
	if (rc != RC_OK)
		return rc;
	if (PQntuples(res) != 1) {
		rc = RC_UNAUTHORIZED;
		goto out;
	}
	rc = get_i64(res, 0, &s->client_id);
	if (rc != RC_OK || PQgetisnull(res, 0, 1))
		goto out;
	if (get_bytea(res, 1, s->tag, CRYPTO_TAG_LEN) != RC_OK ||
	    get_i64(res, 2, &key_id) != RC_OK) {
		rc = RC_INTERNAL;
		goto out;
	}
	s->found = true;
	s->key_id = (int32_t)key_id;
	s->consumed = get_bool(res, 3);
	s->expired = get_bool(res, 4);
	s->locked = get_bool(res, 5);
	if (s->locked && get_int(res, 6, &s->retry_after) != RC_OK)
		s->retry_after = 1;
out:
	PQclear(res);
	return rc;
}

int
store_verify_finish(struct store *st, const char *otp_id, int64_t client_id,
    bool match, bool *applied)
{
	char client[24];
	const char *vals[2] = {otp_id, client};
	PGresult *res;
	int rc;

	*applied = false;
	snprintf(client, sizeof(client), "%lld", (long long)client_id);
	rc = store_run(st, match ? "verify_success" : "verify_failure", 2,
	    vals, NULL, 0, false, &res);
	if (rc != RC_OK)
		return rc;
	*applied = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "1") == 0;
	PQclear(res);
	return RC_OK;
}

int
store_attempt_note(struct store *st, const char *otp_id, const char *outcome)
{
	const char *vals[2] = {otp_id, outcome};
	PGresult *res;
	int rc;

	rc = store_run(st, "attempt_note", 2, vals, NULL, 0, false, &res);
	PQclear(res);
	return rc;
}

int
store_outbox_stats(struct store *st, struct store_outbox_stats *s,
    store_delivery_fn *fn, void *arg)
{
	PGresult *res;
	char *end;
	int rc, i;

	memset(s, 0, sizeof(*s));
	rc = store_run(st, "outbox_pending", 0, NULL, NULL, 0, true, &res);
	if (rc != RC_OK)
		return rc;
	if (PQntuples(res) == 1) {
		rc = get_i64(res, 0, &s->pending);
		s->oldest_due_seconds = strtod(PQgetvalue(res, 0, 1), &end);
	}
	PQclear(res);
	if (rc != RC_OK)
		return rc;
	rc = store_run(st, "delivery_counts", 0, NULL, NULL, 0, true, &res);
	if (rc != RC_OK)
		return rc;
	for (i = 0; i < PQntuples(res); i++)
		fn(arg, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		    PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
		    PQgetvalue(res, i, 4));
	PQclear(res);
	return RC_OK;
}
