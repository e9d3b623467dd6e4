/* db.h: what the responder and the sender share about a PostgreSQL
 * connection: connect with our defaults and prepare a statement table,
 * notice a connection the server has closed, map failures to result codes
 * (logged once, without row values), decode bytea. */
#ifndef OTPD_DB_H
#define OTPD_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rc.h"

struct db_statement {
	const char *name;
	const char *sql;
};

/* db_connect: connect to conninfo (a conninfo string or URI; its settings
 * win over ours: connect_timeout 3, application_name appname), run setup
 * (e.g. "LISTEN x") when not NULL, and prepare the n statements.  Returns
 * the connection, or NULL with *rc set to RC_UNAVAILABLE (unreachable),
 * RC_INTERNAL (a statement does not prepare: schema not migrated) or
 * RC_NOMEM.  Failures are logged. */
PGconn *db_connect(const char *conninfo, const char *appname,
    const char *setup, const struct db_statement *stmts, size_t n, int *rc);

/* db_alive: false when the server has closed conn (say, it restarted while
 * we were idle), so that a statement that must not be retried is not sent
 * on a dead connection.  Reads pending input; notifications stay queued. */
bool db_alive(PGconn *conn);

/* db_failure: the code for a failed result of statement name, logged once:
 * RC_UNAVAILABLE when the connection is gone or the server is shutting
 * down (the caller then drops conn), RC_INTERNAL otherwise. */
int db_failure(PGconn *conn, const char *name, const PGresult *res);

/* db_bytea: decode PostgreSQL's hex output ("\x0a1b...") into out (max
 * bytes); *len gets the length.  RC_INTERNAL for anything else. */
int db_bytea(const char *s, uint8_t *out, size_t max, size_t *len)
    WARN_UNUSED;

#endif
