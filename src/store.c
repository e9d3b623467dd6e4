/* store.c: the responder's PostgreSQL statements and connection handling
 * (connect after fork, prepare at every connect, reconnect after a failure,
 * map errors to result codes and log them once). */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "store.h"

struct store {
	PGconn *conn;
	char *conninfo;
	bool ready;		/* connected and statements prepared */
};

#define TS_UTC(col) "to_char(" col " AT TIME ZONE 'UTC', " \
	"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

static const struct db_statement statements[] = {
	{"ping", "SELECT 1"},
	{"auth",
	    "SELECT id FROM otp.clients WHERE api_key_hash = $1 AND enabled"},
	/* the key's client, and whether it has the provider and template
	 * named (true when NULL: not asked); only for bodies refused anyway */
	{"names",
	    "SELECT c.id, $3::text IS NULL OR EXISTS (SELECT 1"
	    " FROM otp.providers p WHERE p.client_id = c.id"
	    " AND p.channel = $2 AND p.name = $3),"
	    " $4::text IS NULL OR EXISTS (SELECT 1 FROM otp.templates t"
	    " WHERE t.client_id = c.id AND t.channel = $2"
	    " AND t.template_id = $4)"
	    " FROM otp.clients c WHERE c.api_key_hash = $1 AND c.enabled"},
	/*
	 * Generate in one statement.  k is the key's client with the named
	 * provider and template (NULLs when missing); the code is inserted
	 * only when all are there and the tag was made for this client.
	 */
	{"issue",
	    "WITH k AS (SELECT c.id AS client_id, p.id AS provider_id,"
	    " p.max_attempts, p.lock_seconds,"
	    " (SELECT t.template_id FROM otp.templates t"
	    "  WHERE t.client_id = c.id AND t.channel = $3 AND"
	    "  CASE WHEN $5::text IS NULL THEN t.is_default"
	    "  ELSE t.template_id = $5 END LIMIT 1) AS template_id"
	    " FROM otp.clients c LEFT JOIN otp.providers p"
	    " ON p.client_id = c.id AND p.channel = $3 AND p.name = $4"
	    " WHERE c.api_key_hash = $1 AND c.enabled),"
	    " ins AS (INSERT INTO otp.codes (id, client_id, provider_id,"
	    " channel, destination, code_hash, key_id, created_at, expires_at,"
	    " max_attempts, lock_seconds) SELECT $6, k.client_id,"
	    " k.provider_id, $3, $7, $8, $9, now(),"
	    " now() + make_interval(secs => $10::int), k.max_attempts,"
	    " k.lock_seconds FROM k WHERE k.client_id = $2"
	    " AND k.provider_id IS NOT NULL"
	    " AND ($5::text IS NULL OR k.template_id IS NOT NULL)"
	    " RETURNING id, created_at, expires_at),"
	    " o AS (INSERT INTO otp.outbox (id, client_id, provider_id, channel,"
	    " destination, template_id, code_sealed, key_id, created_at,"
	    " expires_at, next_attempt_at) SELECT ins.id, k.client_id,"
	    " k.provider_id, $3, $7, k.template_id, $11, $9, ins.created_at,"
	    " ins.expires_at, ins.created_at FROM ins, k)"
	    " SELECT k.client_id, k.provider_id IS NOT NULL,"
	    " k.template_id IS NOT NULL, " TS_UTC("ins.created_at") ","
	    " " TS_UTC("ins.expires_at") ","
	    " CASE WHEN ins.id IS NOT NULL AND $12::boolean"
	    " THEN pg_notify('otpd_outbox', '') END"
	    " FROM k LEFT JOIN ins ON true"},
	{"verify",
	    "SELECT outcome, client_id, retry_after"
	    " FROM otp.verify($1, $2, $3, $4, $5)"},
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

/* connected, statements prepared, and the server has not hung up */
static int
store_connect(struct store *st)
{
	int rc;

	if (st->ready && db_alive(st->conn))
		return RC_OK;
	store_disconnect(st);
	st->conn = db_connect(st->conninfo, "otpd", NULL, statements,
	    NSTATEMENTS, &rc);
	st->ready = st->conn != NULL;
	return rc;
}

/* map a failed result to a code, logged once; drop a dead connection */
static int
store_fail(struct store *st, const char *name, PGresult *res)
{
	int rc = db_failure(st->conn, name, res);

	metrics_db_error();
	if (rc == RC_UNAVAILABLE)
		store_disconnect(st);
	return rc;
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
store_names(struct store *st, const uint8_t key_hash[CRYPTO_TAG_LEN],
    const char *channel, const char *provider, const char *template_id,
    struct store_names *out)
{
	const char *vals[4] = {(const char *)key_hash, channel, provider,
	    template_id};
	int lens[4] = {CRYPTO_TAG_LEN};
	PGresult *res;
	int64_t client_id;
	int rc;

	out->provider_found = false;
	out->template_found = false;
	rc = store_run(st, "names", 4, vals, lens, 1, true, &res);
	if (rc != RC_OK)
		return rc;
	if (PQntuples(res) != 1) {
		rc = RC_UNAUTHORIZED;
	} else {
		rc = get_i64(res, 0, &client_id);
		out->provider_found = get_bool(res, 1);
		out->template_found = get_bool(res, 2);
	}
	PQclear(res);
	return rc;
}

int
store_issue(struct store *st, const struct store_code *c,
    struct store_issued *out)
{
	char client[24], key[16], exp[16];
	const char *vals[12];
	int lens[12] = {CRYPTO_TAG_LEN};
	PGresult *res;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(client, sizeof(client), "%lld", (long long)c->client_id);
	snprintf(key, sizeof(key), "%d", (int)c->key_id);
	snprintf(exp, sizeof(exp), "%d", c->expires_in);
	vals[0] = (const char *)c->key_hash;
	vals[1] = client;
	vals[2] = c->channel;
	vals[3] = c->provider;
	vals[4] = c->template_id;
	vals[5] = c->otp_id;
	vals[6] = c->destination;
	vals[7] = (const char *)c->tag;
	lens[7] = CRYPTO_TAG_LEN;
	vals[8] = key;
	vals[9] = exp;
	vals[10] = (const char *)c->sealed;
	lens[10] = (int)c->sealed_len;
	vals[11] = c->notify ? "t" : "f";
	/* not retried: the insert may have committed before the failure */
	rc = store_run(st, "issue", 12, vals, lens,
	    (1u << 0) | (1u << 7) | (1u << 10), false, &res);
	if (rc != RC_OK)
		return rc;
	if (PQntuples(res) != 1) {
		rc = RC_UNAUTHORIZED;
		goto out;
	}
	rc = get_i64(res, 0, &out->client_id);
	if (rc != RC_OK)
		goto out;
	out->names.provider_found = get_bool(res, 1);
	out->names.template_found = c->template_id == NULL || get_bool(res, 2);
	if (!out->names.provider_found || !out->names.template_found) {
		out->result = ISSUE_NOT_FOUND;
	} else if (PQgetisnull(res, 0, 3)) {
		out->result = ISSUE_STALE;
	} else {
		out->result = ISSUE_OK;
		snprintf(out->created, STORE_TIME_MAX, "%s",
		    PQgetvalue(res, 0, 3));
		snprintf(out->expires, STORE_TIME_MAX, "%s",
		    PQgetvalue(res, 0, 4));
	}
out:
	PQclear(res);
	return rc;
}

int
store_verify(struct store *st, const uint8_t key_hash[CRYPTO_TAG_LEN],
    int64_t client_id, const char *otp_id, const char *key_ids,
    const uint8_t *tags, size_t tags_len, struct store_verified *out)
{
	static const struct {
		const char *name;
		enum store_verdict verdict;
	} outcomes[] = {
		{"ok", VERDICT_OK}, {"invalid", VERDICT_INVALID},
		{"locked", VERDICT_LOCKED}, {"unknown", VERDICT_UNKNOWN},
		{"stale", VERDICT_STALE},
	};
	char client[24];
	const char *vals[5] = {(const char *)key_hash, client, otp_id, key_ids,
	    (const char *)tags};
	int lens[5] = {CRYPTO_TAG_LEN, 0, 0, 0, (int)tags_len};
	const char *outcome;
	PGresult *res;
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(client, sizeof(client), "%lld", (long long)client_id);
	/* not retried: the attempt may have been recorded */
	rc = store_run(st, "verify", 5, vals, lens, (1u << 0) | (1u << 4),
	    false, &res);
	if (rc != RC_OK)
		return rc;
	rc = RC_INTERNAL;
	if (PQntuples(res) != 1)
		goto out;
	outcome = PQgetvalue(res, 0, 0);
	if (strcmp(outcome, "unauthorized") == 0) {
		rc = RC_UNAUTHORIZED;
		goto out;
	}
	for (i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++)
		if (strcmp(outcome, outcomes[i].name) == 0) {
			out->verdict = outcomes[i].verdict;
			rc = RC_OK;
		}
	if (rc == RC_OK)
		rc = get_i64(res, 1, &out->client_id);
	if (rc == RC_OK && out->verdict == VERDICT_LOCKED &&
	    get_int(res, 2, &out->retry_after) != RC_OK)
		out->retry_after = 1;
out:
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
