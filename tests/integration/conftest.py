"""conftest.py: the stack the integration tests talk to, started once per
session: a throwaway PostgreSQL cluster (pgcluster.py) with the otp schema
applied by otpd-migrate, a key file from otpd-keygen, otpd (FastCGI on a
free loopback port, 8 workers) and nginx in front of it with the shipped
deploy/nginx/otpd.conf (only paths and ports substituted).  Everything lives
in one temporary directory and is removed at the end, also when tests fail;
then the otpd, nginx and PostgreSQL logs are printed.

The binaries come from $OTPD_BUILD/src (default: this checkout's src/), so
the same suite runs against the ASan+UBSan build; a sanitizer report in the
otpd log fails the session.

Fixtures for the tests:
    stack          the Stack object (urls, pg cluster, logs, helpers)
    api            api(path, body=None, key=None, headers=None, method=None)
                   -> (status, headers, parsed JSON or raw text)
    make_client    make_client(name=None, max_attempts=5, lock_seconds=300)
                   -> API key of a new client with providers "generic" for
                   email and sms (kind file) and template TEMPLATE_ID
    code_for       code_for(otp_id) -> the code, decrypted from the outbox
    db             db(sql) -> list of rows (lists of strings) from otpd's db
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pgcluster import PgCluster, free_port  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get("OTPD_BUILD") or REPO)
DB_NAME = "otpd"
TEMPLATE_ID = "otp-default-a1562ab2"
TEMPLATE_BODY = "Your code is {{code}}. It expires in {{minutes}} minutes."
OUTBOX_AAD_PREFIX = b"otpd/outbox/v1\n"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")

_failed_tests = []


def binary(name):
    """Path of one of our programs in the build under test."""
    path = os.path.join(BUILD, "src", name)
    if not os.access(path, os.X_OK):
        pytest.exit("%s is missing: build first (make, or set OTPD_BUILD)"
                    % path, returncode=1)
    return path


def wait_for(what, check, timeout=20.0, interval=0.05):
    """Call check() until it returns a true value; fail after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = check()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - kept for the message
            last = e
        time.sleep(interval)
    raise RuntimeError("timed out waiting for %s (last error: %r)"
                       % (what, last))


def tcp_open(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def read_text(path, limit=200000):
    try:
        with open(path, "r", errors="replace") as f:
            data = f.read()
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    if len(data) > limit:
        data = "(... %d bytes cut ...)\n" % (len(data) - limit) + \
            data[-limit:]
    return data


def load_keys(path):
    """The key file as {id: (hmac_key, aes_key)}."""
    keys = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "key":
                raw = bytes.fromhex(parts[2])
                assert len(raw) == 64, "key %s is not 64 bytes" % parts[1]
                keys[int(parts[1])] = (raw[:32], raw[32:])
    assert keys, "no key in %s" % path
    return keys


class Stack:
    """The running services and what the tests need to reach them."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="otpd-it-")
        os.chmod(self.tmp, 0o755)
        self.pg = None
        self.otpd = None
        self.nginx = None
        self.otpd_port = None
        self.http_port = None
        self.spool = os.path.join(self.tmp, "spool")
        self.keyfile = os.path.join(self.tmp, "otpd.key")
        self.otpd_log = os.path.join(self.tmp, "otpd.log")
        self.nginx_dir = os.path.join(self.tmp, "nginx")
        self.nginx_error_log = os.path.join(self.nginx_dir, "error.log")
        self.nginx_access_log = os.path.join(self.nginx_dir, "access.log")
        self._keys = None

    # -- start and stop ----------------------------------------------------

    def start(self):
        os.makedirs(self.spool)
        self.pg = PgCluster().start()
        self.pg.create_database(DB_NAME)
        self.run([binary("otpd-migrate"), "-d", self.conninfo,
                  "-s", os.path.join(REPO, "sql")])
        self.run([binary("otpd-keygen"), self.keyfile])
        self.start_otpd()
        self.start_nginx()
        wait_for("GET /otp/health to answer 200",
                 lambda: self.request("GET", "/otp/health")[0] == 200)
        return self

    @property
    def conninfo(self):
        return self.pg.dsn(DB_NAME)

    def run(self, argv):
        p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s%s" % (
                " ".join(argv), p.returncode, p.stdout, p.stderr))
        return p.stdout

    def start_otpd(self):
        self.otpd_port = free_port()
        conf = os.path.join(self.tmp, "otpd.conf")
        # 8 workers: the concurrency tests in test_api.py need that many
        # transactions running at once to catch a non-atomic validation
        with open(conf, "w") as f:
            f.write('# written by conftest.py\n'
                    'database = "%s"\n'
                    'socket = 127.0.0.1:%d\n'
                    'workers = 8\n'
                    'key_file = %s\n'
                    'body_limit = 16384\n'
                    'log_level = debug\n'
                    'expires_max = 86400\n'
                    % (self.conninfo, self.otpd_port, self.keyfile))
        log = open(self.otpd_log, "ab")
        self.otpd = subprocess.Popen([binary("otpd"), "-c", conf],
                                     stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()

        def up():
            if self.otpd.poll() is not None:
                raise RuntimeError("otpd exited with %d:\n%s" % (
                    self.otpd.returncode, read_text(self.otpd_log)))
            return tcp_open(self.otpd_port)
        wait_for("otpd to listen", up)

    def start_nginx(self):
        self.http_port = free_port()
        d = self.nginx_dir
        os.makedirs(os.path.join(d, "tmp"))
        shutil.copy("/etc/nginx/fastcgi_params",
                    os.path.join(d, "fastcgi_params"))
        with open(os.path.join(REPO, "deploy", "nginx", "otpd.conf")) as f:
            site = f.read()
        site = site.replace("@LISTEN@", "127.0.0.1:%d" % self.http_port)
        site = site.replace("@OTPD_SOCKET@", "127.0.0.1:%d" % self.otpd_port)
        assert not re.search(r"@[A-Z_]+@", site), "unsubstituted placeholder"
        with open(os.path.join(d, "otpd-site.conf"), "w") as f:
            f.write(site)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log info;
events { worker_connections 512; }
http {
	access_log %(d)s/access.log;
	client_body_temp_path %(d)s/tmp/body;
	fastcgi_temp_path %(d)s/tmp/fastcgi;
	proxy_temp_path %(d)s/tmp/proxy;
	uwsgi_temp_path %(d)s/tmp/uwsgi;
	scgi_temp_path %(d)s/tmp/scgi;
	include otpd-site.conf;
}
""" % {"d": d})
        log = open(self.nginx_error_log, "ab")
        self.nginx = subprocess.Popen(
            ["nginx", "-p", d, "-c", conf, "-e", self.nginx_error_log,
             "-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()

        def up():
            if self.nginx.poll() is not None:
                raise RuntimeError("nginx exited with %d:\n%s" % (
                    self.nginx.returncode, read_text(self.nginx_error_log)))
            return tcp_open(self.http_port)
        wait_for("nginx to listen", up)

    @staticmethod
    def _stop(proc, sig=signal.SIGTERM, timeout=30):
        """Stop a process we started (by its pid); returns its exit code."""
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def stop_services(self):
        """Stop nginx and otpd; returns otpd's exit code."""
        self._stop(self.nginx, signal.SIGQUIT)
        return self._stop(self.otpd, signal.SIGTERM)

    def stop(self):
        """Stop everything (PostgreSQL last, its directory removed)."""
        self.stop_services()
        if self.pg is not None:
            self.pg.stop()

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def dump_logs(self, out=sys.stderr):
        for title, path in (("otpd", self.otpd_log),
                            ("nginx error", self.nginx_error_log),
                            ("nginx access", self.nginx_access_log)):
            out.write("\n----- %s log (%s) -----\n%s" % (
                title, path, read_text(path)))
        if self.pg is not None:
            out.write("\n----- PostgreSQL log -----\n%s" % self.pg.read_log())
        out.flush()

    def sanitizer_reports(self):
        text = read_text(self.otpd_log, limit=10 ** 9)
        return [line for line in text.splitlines()
                if any(m in line for m in SANITIZER_MARKS)]

    # -- PostgreSQL outage (the cluster keeps its data) ----------------------

    def pg_pause(self):
        """Stop the PostgreSQL server but keep its data directory."""
        self.pg._server_cmd(["pg_ctl", "-w", "-D", self.pg.datadir,
                             "-m", "fast", "stop"])

    def pg_resume(self):
        """Start it again with the options of its first start (pg_ctl
        restart reads them from postmaster.opts)."""
        self.pg._server_cmd(["pg_ctl", "-w", "-t", "60", "-D",
                             self.pg.datadir, "-l", self.pg.logfile,
                             "restart"])

    # -- HTTP ----------------------------------------------------------------

    def request(self, method, path, body=None, headers=None, timeout=30):
        """One HTTP request on a new connection; body is bytes or None.
        Returns (status, {lower-case header: value}, raw bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port,
                                          timeout=timeout)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            return resp.status, hdrs, data
        finally:
            conn.close()

    def api(self, path, body=None, key=None, headers=None, method=None):
        """Call the API through nginx.  body: a dict/list (sent as JSON),
        str or bytes (sent as is) or None.  Content-Type is
        application/json whenever there is a body unless headers set it
        (a header value of None leaves that header out).  Returns (status,
        headers, parsed JSON, or the raw text when it is not JSON)."""
        if not path.startswith("/"):
            path = "/otp/" + path
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        hdrs = {}
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        if key is not None:
            hdrs["x-api-key"] = key
        for k, v in (headers or {}).items():
            hdrs = {h: x for h, x in hdrs.items() if h.lower() != k.lower()}
            if v is not None:
                hdrs[k] = v
        if method is None:
            method = "GET" if body is None else "POST"
        status, rh, data = self.request(method, path, body, hdrs)
        try:
            parsed = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            parsed = data.decode("utf-8", "replace")
        return status, rh, parsed

    # -- database ------------------------------------------------------------

    def db(self, sql):
        """Rows of the last statement's result, each a list of strings."""
        out = self.pg.psql(sql, dbname=DB_NAME)
        return [line.split("|") for line in out.splitlines() if line != ""]

    def make_client(self, name=None, max_attempts=5, lock_seconds=300):
        """A new client with providers "generic" (kind file) for email and
        sms and the template TEMPLATE_ID on both; returns its API key."""
        name = name or "client-" + uuid.uuid4().hex[:12]
        esc = name.replace("'", "''")
        rows = self.db("""
SELECT otp.create_client('%(n)s');
SELECT otp.add_provider('%(n)s', 'email', 'generic', 'file',
	'{"path": "%(s)s/%(n)s-email.jsonl"}', %(m)d, %(l)d) \\g /dev/null
SELECT otp.add_provider('%(n)s', 'sms', 'generic', 'file',
	'{"path": "%(s)s/%(n)s-sms.jsonl"}', %(m)d, %(l)d) \\g /dev/null
SELECT otp.set_template('%(n)s', '%(t)s', 'email', 'Your code', '%(b)s')
	\\g /dev/null
SELECT otp.set_template('%(n)s', '%(t)s', 'sms', NULL, '%(b)s') \\g /dev/null
""" % {"n": esc, "s": self.spool, "m": max_attempts, "l": lock_seconds,
            "t": TEMPLATE_ID, "b": TEMPLATE_BODY})
        key = rows[0][0]
        assert key, "create_client returned no key"
        return key

    def code_for(self, otp_id):
        """The code of otp_id, decrypted from its outbox row with the key
        file (AES-256-GCM, nonce || ciphertext || tag, the row's identity
        as authenticated data)."""
        rows = self.db(
            "SELECT encode(code_sealed, 'hex'), key_id, client_id, channel, "
            "destination FROM otp.outbox WHERE id = '%s'" % otp_id)
        assert len(rows) == 1, "no outbox row for %s" % otp_id
        sealed_hex, key_id, client_id, channel, destination = rows[0]
        assert sealed_hex, "outbox row %s has no code_sealed" % otp_id
        if self._keys is None:
            self._keys = load_keys(self.keyfile)
        sealed = bytes.fromhex(sealed_hex)
        aad = OUTBOX_AAD_PREFIX + ("%s\n%s\n%s\n%s" % (
            otp_id, client_id, channel, destination)).encode()
        aes = AESGCM(self._keys[int(key_id)][1])
        return aes.decrypt(sealed[:12], sealed[12:], aad).decode()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        _failed_tests.append(item.nodeid)


@pytest.fixture(scope="session")
def stack():
    s = Stack()
    try:
        try:
            s.start()
        except BaseException:
            s.stop_services()
            s.dump_logs()
            raise
        yield s
        rc = s.stop_services()
        if _failed_tests:
            sys.stderr.write("\n%d test(s) failed; server logs follow\n"
                             % len(_failed_tests))
            s.dump_logs()
        reports = s.sanitizer_reports()
        if reports:
            if not _failed_tests:
                s.dump_logs()
            pytest.fail("sanitizer reports in the otpd log:\n"
                        + "\n".join(reports[:40]), pytrace=False)
        if rc != 0:
            if not _failed_tests:
                s.dump_logs()
            pytest.fail("otpd exited with %s on SIGTERM (expected 0)" % rc,
                        pytrace=False)
    finally:
        s.stop()
        s.cleanup()


@pytest.fixture(scope="session")
def api(stack):
    return stack.api


@pytest.fixture(scope="session")
def make_client(stack):
    return stack.make_client


@pytest.fixture(scope="session")
def code_for(stack):
    return stack.code_for


@pytest.fixture(scope="session")
def db(stack):
    return stack.db
