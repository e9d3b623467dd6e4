/* otpd-migrate.c: brings the database schema up to date by applying the
 * numbered SQL files (NNN_name.sql) in order, each once, each in its own
 * transaction, and recording them in otp.schema_version.
 *
 * A file is never applied twice, even if it changes: a change to the schema
 * or to a function goes in a new numbered file.  Files are plain SQL (no
 * psql meta-commands) and must not contain BEGIN, COMMIT or ROLLBACK,
 * which would break that one transaction. */

/* The autotools header, not src/config.h (the settings module): the angle
 * brackets skip this file's own directory. */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libpq-fe.h>

#ifndef PACKAGE_VERSION
#error "PACKAGE_VERSION is not defined: the wrong config.h was included"
#endif
#ifndef PKGDATADIR
#define PKGDATADIR "/usr/local/share/otpd"
#endif

#define PROG		"otpd-migrate"
#define VERSIONS	1000			/* NNN: 000 to 999 */
#define SQL_MAX		(4 * 1024 * 1024)	/* bytes in one file */
#define LOCK_KEY	"8031079678318676327"	/* "otpd-mig" as an int8 */

/* What the directory holds and what the database has applied, by version. */
struct plan {
	char *file[VERSIONS];		/* file name, or NULL */
	char *applied[VERSIONS];	/* name recorded when applied, or NULL */
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: " PROG " [-d CONNINFO] [-s SQLDIR] [--status]\n"
	    "\n"
	    "Applies the files NNN_*.sql of SQLDIR that the database has not\n"
	    "had yet, in order, each in its own transaction.\n"
	    "\n"
	    "  -d, --database=CONNINFO  libpq connection string or URI\n"
	    "                           (default: \"\", the PG* variables)\n"
	    "  -s, --sqldir=DIR         default: " PKGDATADIR "/sql\n"
	    "      --status             print the version and the pending\n"
	    "                           files; change nothing\n"
	    "  -V, --version            print the version and exit\n"
	    "      --help               print this help and exit\n");
}

static void
plan_free(struct plan *p)
{
	int v;

	for (v = 0; v < VERSIONS; v++) {
		free(p->file[v]);
		free(p->applied[v]);
		p->file[v] = NULL;
		p->applied[v] = NULL;
	}
}

/* sql_version: the number of a file named NNN_*.sql, or -1 for any other
 * name. */
static int
sql_version(const char *name)
{
	size_t len = strlen(name);
	int i;

	if (len < 8 || name[3] != '_' || strcmp(name + len - 4, ".sql") != 0)
		return -1;
	for (i = 0; i < 3; i++)
		if (name[i] < '0' || name[i] > '9')
			return -1;
	return (name[0] - '0') * 100 + (name[1] - '0') * 10 + (name[2] - '0');
}

/* parse_version: "0" to "999" as a number, or -1. */
static int
parse_version(const char *s)
{
	int v = 0;
	size_t i;

	if (s[0] == '\0' || strlen(s) > 3)
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* plan_read_dir: fill p->file from dir.  Two files with one number are an
 * error: which one to apply would be a guess. */
static int
plan_read_dir(struct plan *p, const char *dir)
{
	DIR *d = NULL;
	struct dirent *de;
	int v, rc = -1;

	d = opendir(dir);
	if (d == NULL) {
		fprintf(stderr, PROG ": could not open directory \"%s\": %s\n",
		    dir, strerror(errno));
		goto out;
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (de == NULL)
			break;
		v = sql_version(de->d_name);
		if (v < 0)
			continue;
		if (p->file[v] != NULL) {
			fprintf(stderr, PROG ": files \"%s\" and \"%s\" have "
			    "the same number\n", p->file[v], de->d_name);
			goto out;
		}
		p->file[v] = strdup(de->d_name);
		if (p->file[v] == NULL) {
			fprintf(stderr, PROG ": out of memory\n");
			goto out;
		}
	}
	if (errno != 0) {
		fprintf(stderr, PROG ": could not read directory \"%s\": %s\n",
		    dir, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (d != NULL)
		closedir(d);
	return rc;
}

/* read_sql: the whole of dir/name as a NUL-terminated string in *textp,
 * which the caller frees.  Refuses files over SQL_MAX and files with NUL
 * bytes, which PQexec would silently cut short. */
static int
read_sql(const char *dir, const char *name, char **textp)
{
	char path[4096];
	struct stat st;
	FILE *f = NULL;
	char *buf = NULL;
	size_t len;
	int n, rc = -1;

	*textp = NULL;
	n = snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		fprintf(stderr, PROG ": path too long: %s/%s\n", dir, name);
		goto out;
	}
	f = fopen(path, "rb");
	if (f == NULL || fstat(fileno(f), &st) != 0) {
		fprintf(stderr, PROG ": could not open \"%s\": %s\n", path,
		    strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > SQL_MAX) {
		fprintf(stderr, PROG ": \"%s\" is not a regular file of at "
		    "most %d bytes\n", path, SQL_MAX);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		goto out;
	}
	len = fread(buf, 1, (size_t)st.st_size, f);
	if (ferror(f) || len != (size_t)st.st_size || fgetc(f) != EOF) {
		fprintf(stderr, PROG ": could not read \"%s\": the file "
		    "changed or could not be read\n", path);
		goto out;
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len) != NULL) {
		fprintf(stderr, PROG ": \"%s\" contains a NUL byte\n", path);
		goto out;
	}
	*textp = buf;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	if (f != NULL)
		fclose(f);
	return rc;
}

/* error_line: the 1-based line of sql that holds the 1-based character
 * position pos (PostgreSQL counts characters, not bytes), or 0. */
static int
error_line(const char *sql, const char *pos)
{
	long want = 0, chars = 0;
	int line = 1;
	const char *s;

	if (pos == NULL)
		return 0;
	for (s = pos; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || want > 100000000L)
			return 0;
		want = want * 10 + (*s - '0');
	}
	for (s = sql; *s != '\0'; s++) {
		if (((unsigned char)*s & 0xC0) == 0x80)
			continue;	/* UTF-8 continuation byte */
		if (++chars >= want)
			return line;
		if (*s == '\n')
			line++;
	}
	return 0;
}

/* report: "otpd-migrate: could not WHAT: message (line N)" and the
 * server's detail and hint, if any.  sql may be NULL. */
static void
report(const char *what, const PGresult *res, PGconn *conn, const char *sql)
{
	const char *msg = NULL, *detail = NULL, *hint = NULL;
	int line = 0;

	if (res != NULL) {
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
		hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
		if (sql != NULL)
			line = error_line(sql, PQresultErrorField(res,
			    PG_DIAG_STATEMENT_POSITION));
	}
	if (msg == NULL) {
		/* no result from the server: the connection's own message */
		msg = PQerrorMessage(conn);
		fprintf(stderr, PROG ": could not %s: %.*s\n", what,
		    (int)strcspn(msg, "\n"), msg);
		return;
	}
	if (line > 0)
		fprintf(stderr, PROG ": could not %s: %s (line %d)\n", what,
		    msg, line);
	else
		fprintf(stderr, PROG ": could not %s: %s\n", what, msg);
	if (detail != NULL)
		fprintf(stderr, "DETAIL: %s\n", detail);
	if (hint != NULL)
		fprintf(stderr, "HINT: %s\n", hint);
}

/* exec_ok: run sql (one or more statements) and report a failure as
 * "could not WHAT". */
static bool
exec_ok(PGconn *conn, const char *sql, const char *what)
{
	PGresult *res;
	ExecStatusType st;
	bool ok;

	res = PQexec(conn, sql);
	st = PQresultStatus(res);
	ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ||
	    st == PGRES_EMPTY_QUERY;
	if (!ok)
		report(what, res, conn, NULL);
	PQclear(res);
	return ok;
}

/* plan_read_applied: fill p->applied from otp.schema_version.  When the
 * table does not exist (only possible with --status, which creates
 * nothing), nothing has been applied. */
static int
plan_read_applied(struct plan *p, PGconn *conn)
{
	PGresult *res = NULL;
	const char *sql = "SELECT version, name FROM otp.schema_version "
	    "WHERE version BETWEEN 0 AND 999";
	int i, v, rc = -1;

	res = PQexec(conn, "SELECT to_regclass('otp.schema_version') IS NULL");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		report("read the schema version", res, conn, NULL);
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
		rc = 0;
		goto out;
	}
	PQclear(res);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		report("read the schema version", res, conn, NULL);
		goto out;
	}
	for (i = 0; i < PQntuples(res); i++) {
		v = parse_version(PQgetvalue(res, i, 0));
		if (v < 0)
			continue;	/* excluded by the query */
		free(p->applied[v]);
		p->applied[v] = strdup(PQgetvalue(res, i, 1));
		if (p->applied[v] == NULL) {
			fprintf(stderr, PROG ": out of memory\n");
			goto out;
		}
	}
	rc = 0;
out:
	PQclear(res);
	return rc;
}

/* apply_one: BEGIN; the file; INSERT its version; COMMIT.  On any error the
 * transaction is rolled back and nothing of the file remains. */
static int
apply_one(PGconn *conn, const char *dir, int v, const char *name)
{
	char what[300], vtext[8];
	const char *params[2];
	PGresult *res = NULL;
	ExecStatusType st;
	char *sql = NULL;
	int rc = -1;

	snprintf(what, sizeof(what), "apply %s", name);
	snprintf(vtext, sizeof(vtext), "%d", v);
	if (read_sql(dir, name, &sql) != 0)
		goto out;
	if (!exec_ok(conn, "BEGIN", what))
		goto out;
	res = PQexec(conn, sql);
	st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
	    st != PGRES_EMPTY_QUERY) {
		report(what, res, conn, sql);
		goto rollback;
	}
	if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
		fprintf(stderr, PROG ": could not %s: the file ended the "
		    "transaction; remove BEGIN, COMMIT and ROLLBACK from it\n",
		    what);
		goto rollback;
	}
	PQclear(res);
	params[0] = vtext;
	params[1] = name;
	res = PQexecParams(conn, "INSERT INTO otp.schema_version "
	    "(version, name) VALUES ($1::int, $2)", 2, NULL, params, NULL,
	    NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		report(what, res, conn, NULL);
		goto rollback;
	}
	if (!exec_ok(conn, "COMMIT", what))
		goto out;
	printf("applied %s\n", name);
	fflush(stdout);
	rc = 0;
	goto out;
rollback:
	if (PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "ROLLBACK"));
out:
	PQclear(res);
	free(sql);
	return rc;
}

/* warn_renamed: a file whose number was applied under another name is not
 * applied again; say so, since it is probably a mistake. */
static void
warn_renamed(const struct plan *p)
{
	int v;

	for (v = 0; v < VERSIONS; v++)
		if (p->file[v] != NULL && p->applied[v] != NULL &&
		    strcmp(p->file[v], p->applied[v]) != 0)
			fprintf(stderr, PROG ": warning: version %d was applied "
			    "as \"%s\"; \"%s\" is skipped\n", v, p->applied[v],
			    p->file[v]);
}

static int
current_version(const struct plan *p)
{
	int v;

	for (v = VERSIONS - 1; v >= 0; v--)
		if (p->applied[v] != NULL)
			return v;
	return 0;
}

static int
lock_and_prepare(PGconn *conn)
{
	PGresult *res;
	const char *params[1] = { LOCK_KEY };
	bool got;

	res = PQexecParams(conn, "SELECT pg_try_advisory_lock($1::int8)", 1,
	    NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		report("take the migration lock", res, conn, NULL);
		PQclear(res);
		return -1;
	}
	got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!got) {
		fprintf(stderr, PROG ": waiting for another " PROG "\n");
		res = PQexecParams(conn, "SELECT pg_advisory_lock($1::int8)",
		    1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			report("take the migration lock", res, conn, NULL);
			PQclear(res);
			return -1;
		}
		PQclear(res);
	}
	if (!exec_ok(conn, "CREATE SCHEMA IF NOT EXISTS otp; "
	    "CREATE TABLE IF NOT EXISTS otp.schema_version ("
	    "version int PRIMARY KEY, name text NOT NULL, "
	    "applied_at timestamptz NOT NULL DEFAULT now())",
	    "create otp.schema_version"))
		return -1;
	return 0;
}

static int
migrate(PGconn *conn, const char *dir, bool status_only)
{
	struct plan p;
	int v, rc = -1;

	memset(&p, 0, sizeof(p));
	if (plan_read_dir(&p, dir) != 0)
		goto out;
	if (!status_only && lock_and_prepare(conn) != 0)
		goto out;
	if (plan_read_applied(&p, conn) != 0)
		goto out;
	warn_renamed(&p);
	if (status_only) {
		printf("schema version %d\n", current_version(&p));
		for (v = 0; v < VERSIONS; v++)
			if (p.file[v] != NULL && p.applied[v] == NULL)
				printf("pending %s\n", p.file[v]);
		rc = 0;
		goto out;
	}
	for (v = 0; v < VERSIONS; v++) {
		if (p.file[v] == NULL || p.applied[v] != NULL)
			continue;
		if (apply_one(conn, dir, v, p.file[v]) != 0)
			goto out;
		p.applied[v] = strdup(p.file[v]);
		if (p.applied[v] == NULL) {
			fprintf(stderr, PROG ": out of memory\n");
			goto out;
		}
	}
	printf("schema version %d\n", current_version(&p));
	rc = 0;
out:
	plan_free(&p);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "database", required_argument, NULL, 'd' },
		{ "sqldir", required_argument, NULL, 's' },
		{ "status", no_argument, NULL, 'S' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	const char *keys[] = { "dbname", "fallback_application_name", NULL };
	const char *vals[] = { "", PROG, NULL };
	const char *dir = PKGDATADIR "/sql";
	bool status_only = false;
	PGconn *conn = NULL;
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, "d:s:V", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			vals[0] = optarg;
			break;
		case 's':
			dir = optarg;
			break;
		case 'S':
			status_only = true;
			break;
		case 'V':
			printf(PROG " " PACKAGE_VERSION "\n");
			return 0;
		case 'H':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, PROG ": unexpected argument \"%s\"\n",
		    argv[optind]);
		usage(stderr);
		return 1;
	}

	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		report("connect to the database", NULL, conn, NULL);
		goto out;
	}
	/* "schema already exists, skipping" and the like are noise here */
	if (!exec_ok(conn, "SET client_min_messages = warning",
	    "configure the session"))
		goto out;
	if (migrate(conn, dir, status_only) == 0)
		rc = 0;
out:
	PQfinish(conn);
	return rc;
}
