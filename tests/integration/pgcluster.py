"""pgcluster.py: a throwaway PostgreSQL cluster for the integration tests.

    from pgcluster import PgCluster, PsqlError

    pg = PgCluster().start()      # initdb + pg_ctl start in a temp dir
    pg.psql("SELECT 1")           # -> "1\\n" (unaligned, tuples only)
    pg.conninfo                   # "host=... port=... user=postgres dbname=postgres"
    pg.dsn("otp")                 # the same for another database
    pg.create_database("otp")
    pg.pause(); pg.resume()       # a database outage, data kept
    pg.stop()                     # immediate stop, directory removed

It also works as a context manager.  The cluster listens only on a Unix
socket in its own directory (listen_addresses=''), with trust
authentication, fsync off and no sync at initdb: it is for tests only.
As root, initdb and pg_ctl run as the system user "otpdtest" (created if
absent), since PostgreSQL refuses to run as root.  Clients (psql, and what
the tests start) may run as any user: the socket directory is world
searchable and authentication is trust.
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile

PG_BINDIR = os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin")
TEST_USER = "otpdtest"


class PsqlError(Exception):
    """psql exited non-zero; stderr holds the server's message."""

    def __init__(self, sql, returncode, stdout, stderr):
        super().__init__("psql failed (%d): %s" % (returncode, stderr.strip()))
        self.sql = sql
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def free_port():
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_test_user():
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", TEST_USER],
                       check=True, capture_output=True)


class PgCluster:
    """One PostgreSQL server in a temporary directory.

    Attributes, valid after start(): basedir (the temp dir), datadir,
    sockdir, port, logfile (the server log), conninfo, user.
    """

    def __init__(self, bindir=PG_BINDIR, user="postgres", settings=None):
        self.bindir = bindir
        self.user = user
        self.settings = dict(settings or {})
        self.basedir = None
        self.datadir = None
        self.sockdir = None
        self.logfile = None
        self.port = None
        self._running = False
        self._as_root = os.geteuid() == 0

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        """initdb and start the server; returns self.  On failure the
        directory is removed and the exception carries the log."""
        self.basedir = tempfile.mkdtemp(prefix="otpd-pg-")
        self.datadir = os.path.join(self.basedir, "data")
        self.sockdir = os.path.join(self.basedir, "sock")
        self.logfile = os.path.join(self.basedir, "server.log")
        self.port = free_port()
        try:
            os.mkdir(self.sockdir)
            open(self.logfile, "w").close()
            # clients running as other users must reach the socket
            os.chmod(self.basedir, 0o755)
            os.chmod(self.sockdir, 0o755)
            if self._as_root:
                _ensure_test_user()
                pw = pwd.getpwnam(TEST_USER)
                for path in (self.basedir, self.sockdir, self.logfile):
                    os.chown(path, pw.pw_uid, pw.pw_gid)
            self._server_cmd(["initdb", "-A", "trust", "--nosync",
                              "-U", self.user, "-E", "UTF8",
                              "--locale=C", "-D", self.datadir])
            opts = ["-p %d" % self.port, "-k %s" % self.sockdir,
                    "-c listen_addresses=''", "-c fsync=off"]
            opts += ["-c %s=%s" % kv for kv in self.settings.items()]
            self._server_cmd(["pg_ctl", "-w", "-t", "60", "-D", self.datadir,
                              "-l", self.logfile, "-o", " ".join(opts),
                              "start"])
            self._running = True
        except Exception as e:
            out = getattr(e, "stderr", None) or ""
            log = self.read_log()
            self.stop()
            raise RuntimeError("could not start PostgreSQL: %s\n%s"
                               "--- server log ---\n%s" % (e, out, log)) from e
        return self

    def stop(self):
        """Stop the server (immediate mode) and remove its directory.
        Safe to call more than once."""
        if self._running:
            self._running = False
            try:
                self._server_cmd(["pg_ctl", "-w", "-D", self.datadir,
                                  "-m", "immediate", "stop"])
            except subprocess.CalledProcessError:
                pass
        if self.basedir is not None:
            shutil.rmtree(self.basedir, ignore_errors=True)
            self.basedir = None

    def pause(self):
        """Stop the server (fast mode) but keep its data, to test what
        clients do while the database is down."""
        self.pg_ctl("-m", "fast", "stop")

    def resume(self):
        """Start a paused server again with the options of its first
        start (pg_ctl restart reads them from postmaster.opts)."""
        self.pg_ctl("-t", "60", "-l", self.logfile, "restart")

    def pg_ctl(self, *args):
        """Run pg_ctl -w -D datadir ARGS (as the server's user); returns
        its stdout, raises subprocess.CalledProcessError on failure."""
        return self._server_cmd(["pg_ctl", "-w", "-D", self.datadir,
                                 *args])

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- connecting --------------------------------------------------------

    @property
    def conninfo(self):
        """libpq connection string for the postgres database."""
        return self.dsn("postgres")

    def dsn(self, dbname="postgres"):
        """libpq connection string for database dbname."""
        return "host=%s port=%d user=%s dbname=%s" % (
            self.sockdir, self.port, self.user, dbname)

    def env(self, dbname="postgres"):
        """os.environ plus PGHOST, PGPORT, PGUSER, PGDATABASE for this
        cluster, for programs that take libpq's defaults."""
        e = dict(os.environ)
        e.update(PGHOST=self.sockdir, PGPORT=str(self.port),
                 PGUSER=self.user, PGDATABASE=dbname)
        return e

    def psql(self, sql, dbname="postgres", check=True):
        """Run sql (one or more statements) with psql -X -q -A -t and
        ON_ERROR_STOP; returns stdout.  Raises PsqlError on failure when
        check is true; otherwise returns (returncode, stdout, stderr)."""
        p = subprocess.run([os.path.join(self.bindir, "psql"), "-X", "-q",
                            "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-d", self.dsn(dbname), "-f", "-"],
                           input=sql, capture_output=True, text=True,
                           env=self._client_env(), timeout=120)
        if not check:
            return p.returncode, p.stdout, p.stderr
        if p.returncode != 0:
            raise PsqlError(sql, p.returncode, p.stdout, p.stderr)
        return p.stdout

    def create_database(self, name, template=None):
        """CREATE DATABASE name, optionally from a template database."""
        sql = 'CREATE DATABASE "%s"' % name
        if template:
            sql += ' TEMPLATE "%s"' % template
        self.psql(sql + ";")

    # -- logs --------------------------------------------------------------

    def log_position(self):
        """The server log's current size, to read from later."""
        try:
            return os.path.getsize(self.logfile)
        except (OSError, TypeError):
            return 0

    def read_log(self, start=0):
        """The server log from byte start on ("" if there is none)."""
        try:
            with open(self.logfile, "r", errors="replace") as f:
                f.seek(start)
                return f.read()
        except (OSError, TypeError):
            return ""

    # -- internals ---------------------------------------------------------

    def _client_env(self):
        e = dict(os.environ)
        for k in ("PGSERVICE", "PGSERVICEFILE", "PGPASSFILE", "PGOPTIONS"):
            e.pop(k, None)
        return e

    def _server_cmd(self, argv):
        """Run a server binary, as TEST_USER when we are root."""
        argv = [os.path.join(self.bindir, argv[0])] + argv[1:]
        if self._as_root:
            argv = ["runuser", "-u", TEST_USER, "--"] + argv
        env = self._client_env()
        env.pop("PGDATA", None)
        env.update(LC_ALL="C", LANG="C")
        p = subprocess.run(argv, cwd=self.basedir, env=env,
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise subprocess.CalledProcessError(p.returncode, argv,
                                                p.stdout, p.stderr)
        return p.stdout
