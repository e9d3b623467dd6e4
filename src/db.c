/* db.c: connection set-up, liveness and error mapping shared by store.c
 * (the responder) and outbox.c (the sender). */
#include <poll.h>
#include <string.h>

#include "db.h"
#include "log.h"

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
db_setup(PGconn *conn, const char *setup, const struct db_statement *stmts,
    size_t n)
{
	char msg[256];
	PGresult *res;
	bool good = true;
	size_t i;

	if (setup != NULL) {
		res = PQexec(conn, setup);
		good = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
		if (!good)
			log_error("event=db_setup_failed error=\"%s\"",
			    first_line(PQerrorMessage(conn), msg, sizeof(msg)));
	}
	for (i = 0; good && i < n; i++) {
		res = PQprepare(conn, stmts[i].name, stmts[i].sql, 0, NULL);
		good = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
		if (!good)
			log_error("event=db_prepare_failed statement=%s "
			    "error=\"%s\" hint=\"run otpd-migrate\"",
			    stmts[i].name, first_line(PQerrorMessage(conn), msg,
			    sizeof(msg)));
	}
	if (good)
		return RC_OK;
	return PQstatus(conn) == CONNECTION_OK ? RC_INTERNAL : RC_UNAVAILABLE;
}

PGconn *
db_connect(const char *conninfo, const char *appname, const char *setup,
    const struct db_statement *stmts, size_t n, int *rc)
{
	/* the operator's conninfo (dbname, expanded) overrides our defaults */
	const char *keys[] = {"connect_timeout", "application_name", "dbname",
	    NULL};
	const char *vals[] = {"3", appname, conninfo, NULL};
	char msg[256];
	PGconn *conn;

	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL) {
		*rc = RC_NOMEM;
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		log_warn("event=db_connect_failed error=\"%s\"",
		    first_line(PQerrorMessage(conn), msg, sizeof(msg)));
		PQfinish(conn);
		*rc = RC_UNAVAILABLE;
		return NULL;
	}
	*rc = db_setup(conn, setup, stmts, n);
	if (*rc != RC_OK) {
		PQfinish(conn);
		return NULL;
	}
	log_info("event=db_connected");
	return conn;
}

bool
db_alive(PGconn *conn)
{
	struct pollfd pfd;
	int i;

	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
		return false;
	/*
	 * Idle with nothing to read is the usual case: one poll(2).  A server
	 * that shut down sent an error and then closed, so read until the
	 * socket is quiet: the end of the stream shows on the second read.
	 * Notifications read on the way stay queued for PQnotifies().
	 */
	for (i = 0; i < 8; i++) {
		pfd.fd = PQsocket(conn);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, 0) <= 0)
			break;
		if (PQconsumeInput(conn) != 1)
			return false;
	}
	return PQstatus(conn) == CONNECTION_OK;
}

int
db_failure(PGconn *conn, const char *name, const PGresult *res)
{
	const char *state = NULL, *primary = NULL;
	char msg[256];

	if (res != NULL) {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	}
	if (PQstatus(conn) != CONNECTION_OK || state == NULL ||
	    strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0) {
		log_warn("event=db_unavailable statement=%s error=\"%s\"", name,
		    first_line(PQerrorMessage(conn), msg, sizeof(msg)));
		return RC_UNAVAILABLE;
	}
	/* only SQLSTATE and the primary text: DETAIL may quote row values */
	log_error("event=db_error statement=%s sqlstate=%s error=\"%s\"", name,
	    state, first_line(primary ? primary : "", msg, sizeof(msg)));
	return RC_INTERNAL;
}

static int
hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

int
db_bytea(const char *s, uint8_t *out, size_t max, size_t *len)
{
	size_t n = strlen(s), i;

	*len = 0;
	if (n < 2 || s[0] != '\\' || s[1] != 'x' || n % 2 != 0 ||
	    (n - 2) / 2 > max)
		return RC_INTERNAL;
	for (i = 2; i < n; i += 2) {
		int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);

		if (hi < 0 || lo < 0)
			return RC_INTERNAL;
		out[(i - 2) / 2] = (uint8_t)(hi << 4 | lo);
	}
	*len = (n - 2) / 2;
	return RC_OK;
}
