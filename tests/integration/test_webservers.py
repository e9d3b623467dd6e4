"""test_webservers.py: otpd behind each shipped web server configuration:
deploy/nginx, deploy/lighttpd and deploy/apache, each with otpd on a unix
socket and on TCP (the two variants every file shows).

Each web server is started in the foreground on a free loopback port from
a minimal main configuration written here around the shipped file, which
is changed only where the file says to (paths and ports; for the TCP
variant the one line the file says to swap).  Through it: generate and
validate (the code decrypted from the outbox), a 404 from otpd, 413 for a
body over 16 KiB answered by the web server itself, with a Content-Length
and chunked (Apache refuses every chunked body with a JSON 411 instead, as
its file explains), 415, REQUEST_URI arriving as the path, /otp/metrics
answering 200 from 127.0.0.1 and a JSON 403 from 127.0.0.2 (another
loopback address, outside the allow list), also when the path is spelled
otherwise, and the server's answers to a header line over 8 KiB, a request
line over 8 KiB and a request it cannot parse (JSON from nginx; lighttpd
and Apache answer those before their otpd configuration applies, with
their own pages: only the status is checked).  With otpd unreachable, each
server answers a JSON 503 for it.

The otpd instances here have body_limit 65536, four times the web
servers' limit, so a 413 proves that the web server refused the body.

Who may connect to the unix socket: the web servers run their workers as
the unprivileged user they use in production (www-data) when the tests run
as root, and otpd's socket lives in a setgid directory of group www-data,
so it gets that group and otpd's mode 0660: exactly what
deploy/systemd/otpd.socket sets up (SocketGroup=www-data, SocketMode=0660).
Neither running the workers as root nor widening the socket's mode is
needed.  Not as root, everything runs as the current user.

A missing web server is installed from Debian's packages when the tests
run as root (dev.sh deps installs them too); otherwise its tests fail.
"""

import grp
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest

from conftest import REPO, binary, read_text, tcp_open
from pgcluster import free_port

AS_ROOT = os.geteuid() == 0
WEB_USER = "www-data" if AS_ROOT else None
BODY_LIMIT = 16384            # what the shipped configurations allow
OTPD_BODY_LIMIT = 65536       # larger, so 413 must come from the server
FORBIDDEN = {"success": False, "message": "Forbidden.",
             "errors": ["Forbidden."]}
TOO_LARGE = {"success": False, "message": "Request body is too large.",
             "errors": ["Request body is too large."]}
VALIDATED = {"success": True, "message": "OTP validated successfully."}
LENGTH_REQUIRED = {"success": False, "message": "Content-Length is required.",
                   "errors": ["Content-Length is required."]}
BAD_REQUEST = {"success": False, "message": "Bad request.",
               "errors": ["Bad request."]}
HEADER_TOO_LARGE = {"success": False, "message": "Request header too large.",
                    "errors": ["Request header too large."]}
URI_TOO_LONG = {"success": False, "message": "Request URI too long.",
                "errors": ["Request URI too long."]}
UNAVAILABLE = {"success": False, "message": "Service temporarily unavailable."}
# other spellings of /otp/metrics: none may answer with the metrics
METRICS_DISGUISES = ["/otp/metrics?x=1", "/otp/metrics%3F", "/otp/metrics%3Fx",
                     "/otp/%6detrics", "/otp/%6Detrics", "/otp/metrics/",
                     "/otp//metrics", "/otp/./metrics", "/otp/x/../metrics",
                     "/otp/metrics;x", "/otp/metrics%00", "/otp/metrics%20",
                     "/OTP/metrics", "/otp/Metrics", "//otp/metrics"]
DEBIAN_PACKAGE = {"nginx": "nginx-light", "lighttpd": "lighttpd",
                  "apache2": "apache2"}
APACHE_MODULES = ("mpm_event", "authz_core", "authz_host", "proxy",
                  "proxy_fcgi", "rewrite", "headers")
APACHE_MODDIR = "/usr/lib/apache2/modules"


def ensure_program(name):
    """The path of web server name, installed from Debian if missing."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path:
        return path
    pkg = DEBIAN_PACKAGE[name]
    if AS_ROOT:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-q",
                        "--no-install-recommends", pkg], env=env,
                       capture_output=True, timeout=600)
        path = shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if not path:
        pytest.fail("%s is missing: install the Debian package %s "
                    "(./dev.sh deps does)" % (name, pkg), pytrace=False)
    return path


def stop(proc, sig=signal.SIGTERM, timeout=20):
    """Stop a process we started, by its pid; returns its exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # the session it was started in: what it forked goes too
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def wait_up(proc, what, check, logs, timeout=20.0):
    """Wait until check() is true; fail at once if proc exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s: exited with %d%s" % (
                what, proc.returncode, logs()))
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for %s%s" % (what, logs()))


def swap_line(text, active, alternative):
    """Comment out the active line and uncomment the alternative one, as
    the shipped file tells the operator to; both must be there once."""
    lines = text.split("\n")
    a = [i for i, l in enumerate(lines) if l.strip() == active]
    b = [i for i, l in enumerate(lines) if l.strip() == "#" + alternative]
    assert len(a) == 1, "no single active line %r" % active
    assert len(b) == 1, "no single commented line %r" % alternative
    indent = lines[a[0]][:len(lines[a[0]]) - len(lines[a[0]].lstrip())]
    lines[a[0]] = indent + "#" + active
    lines[b[0]] = indent + alternative
    return "\n".join(lines)


def code_lines(text):
    """The configuration without its comments."""
    return re.sub(r"(?m)^\s*#.*$", "", text)


# ---------------------------------------------------------------- backends

class Backends:
    """Two otpd instances on the test cluster: one on a unix socket, one
    on a loopback TCP port."""

    def __init__(self, stack):
        self.stack = stack
        self.tmp = tempfile.mkdtemp(prefix="otpd-web-")
        os.chmod(self.tmp, 0o755)
        self.sockdir = os.path.join(self.tmp, "sock")
        os.mkdir(self.sockdir)
        if AS_ROOT:
            os.chown(self.sockdir, 0, grp.getgrnam(WEB_USER).gr_gid)
            os.chmod(self.sockdir, 0o2750)
        self.socket = os.path.join(self.sockdir, "otpd.sock")
        self.port = free_port()
        self.procs = {}
        self.logs = {}

    def start(self):
        self._start("unix", self.socket)
        self._start("tcp", "127.0.0.1:%d" % self.port)
        return self

    def _start(self, variant, where):
        conf = os.path.join(self.tmp, "otpd-%s.conf" % variant)
        log = os.path.join(self.tmp, "otpd-%s.log" % variant)
        with open(conf, "w") as f:
            f.write('# written by test_webservers.py\n'
                    'database = "%s"\nsocket = %s\nworkers = 1\n'
                    'key_file = %s\nbody_limit = %d\nlog_level = info\n'
                    % (self.stack.conninfo, where, self.stack.keyfile,
                       OTPD_BODY_LIMIT))
        with open(log, "ab") as out:
            proc = subprocess.Popen([binary("otpd"), "-c", conf],
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs[variant] = proc
        self.logs[variant] = log

        def up():
            if variant == "tcp":
                return tcp_open(self.port)
            with socket.socket(socket.AF_UNIX) as s:
                return s.connect_ex(self.socket) == 0
        wait_up(proc, "otpd on %s" % where, up,
                lambda: "\n" + read_text(log))

    def log(self, variant):
        return read_text(self.logs[variant])

    def stop(self):
        """Stop both; returns {variant: exit code}."""
        return {v: stop(p) for v, p in self.procs.items()}

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def backends(stack):
    b = Backends(stack)
    try:
        b.start()
        yield b
        codes = b.stop()
        assert codes == {"unix": 0, "tcp": 0}, \
            "otpd did not stop cleanly on SIGTERM: %r" % codes
    finally:
        b.stop()
        b.cleanup()


@pytest.fixture(scope="module")
def api_key(make_client):
    return make_client()


# ---------------------------------------------------------------- servers

class WebServer:
    """One web server in its own directory; subclasses write the main
    configuration around the shipped file and know how to run it."""

    name = None
    program = None

    def __init__(self, backends, variant, socket_path=None, tag=""):
        self.program_path = ensure_program(self.program)
        self.backends = backends
        self.variant = variant
        self.socket = socket_path or backends.socket
        self.dir = os.path.join(backends.tmp, "%s-%s%s" % (self.name,
                                                           variant, tag))
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.error_log = os.path.join(self.dir, "error.log")
        self.access_log = os.path.join(self.dir, "access.log")
        self.console_log = os.path.join(self.dir, "console.log")
        self.proc = None
        if AS_ROOT:
            # its own directory, as /var/log/<server> is: some servers
            # open their logs after giving up root
            pw = pwd.getpwnam(WEB_USER)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)

    def shipped(self):
        with open(os.path.join(REPO, "deploy", self.name, "otpd.conf")) as f:
            return f.read()

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def argv(self):
        raise NotImplementedError

    def start(self):
        self.configure()
        with open(self.console_log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
                cwd=self.dir)
        wait_up(self.proc, "%s to listen" % self.name,
                lambda: tcp_open(self.port), self.logs)
        return self

    def stop(self):
        return stop(self.proc, signal.SIGTERM)

    def logs(self):
        return "".join("\n----- %s %s (%s) -----\n%s" % (
            self.name, t, p, read_text(p)) for t, p in (
                ("output", self.console_log), ("error log", self.error_log),
                ("access log", self.access_log)))


class Nginx(WebServer):
    name = "nginx"
    program = "nginx"
    # (status, JSON body or None when the server answers with its own
    # HTML page) for a chunked body of at most / over 16 KiB, a header
    # line over 8 KiB, a request line over 8 KiB, a malformed request
    CHUNKED_SMALL = (200, None)
    CHUNKED_LARGE = (413, TOO_LARGE)
    LONG_HEADER = (400, HEADER_TOO_LARGE)
    LONG_URI = (414, URI_TOO_LONG)
    MALFORMED = (400, BAD_REQUEST)

    def configure(self):
        d = self.dir
        os.makedirs(os.path.join(d, "tmp"))
        shutil.copy("/etc/nginx/fastcgi_params",
                    os.path.join(d, "fastcgi_params"))
        if self.variant == "unix":
            target = "unix:" + self.socket
        else:
            target = "127.0.0.1:%d" % self.backends.port
        site = self.shipped().replace("@LISTEN@", "127.0.0.1:%d" % self.port)
        site = site.replace("@OTPD_SOCKET@", target)
        assert "@" not in re.sub(r"@otpd_\w+", "", code_lines(site))
        self.write("otpd-site.conf", site)
        user = "user %s;\n" % WEB_USER if WEB_USER else ""
        self.conf = self.write("nginx.conf", """%(user)sworker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log info;
events { worker_connections 64; }
http {
	access_log %(d)s/access.log;
	client_body_temp_path %(d)s/tmp/body;
	fastcgi_temp_path %(d)s/tmp/fastcgi;
	proxy_temp_path %(d)s/tmp/proxy;
	uwsgi_temp_path %(d)s/tmp/uwsgi;
	scgi_temp_path %(d)s/tmp/scgi;
	include otpd-site.conf;
}
""" % {"d": d, "user": user})

    def argv(self):
        return [self.program_path, "-p", self.dir, "-c", self.conf,
                "-e", self.error_log, "-g", "daemon off;"]

    def stop(self):
        return stop(self.proc, signal.SIGQUIT)


class Lighttpd(WebServer):
    name = "lighttpd"
    program = "lighttpd"
    CHUNKED_SMALL = (200, None)
    CHUNKED_LARGE = (413, TOO_LARGE)
    # server.max-request-field-size (8 KiB) counts the request line too
    LONG_HEADER = (431, None)
    LONG_URI = (431, None)
    MALFORMED = (400, None)
    SHIPPED_SOCKET = '"socket" => "/run/otpd/otpd.sock",'
    SHIPPED_TCP = '"host" => "127.0.0.1", "port" => 9000,'
    SHIPPED_ERRORS = '"/usr/local/share/otpd/lighttpd/status-"'

    def configure(self):
        d = self.dir
        errors = os.path.join(d, "errors")
        shutil.copytree(os.path.join(REPO, "deploy", "lighttpd", "errors"),
                        errors)
        site = self.shipped()
        assert site.count(self.SHIPPED_ERRORS) == 1
        site = site.replace(self.SHIPPED_ERRORS,
                            '"%s/status-"' % errors)
        if self.variant == "unix":
            site = site.replace("/run/otpd/otpd.sock", self.socket)
        else:
            site = swap_line(site, self.SHIPPED_SOCKET, self.SHIPPED_TCP)
            site = site.replace('"port" => 9000,',
                                '"port" => %d,' % self.backends.port)
        assert "/run/otpd" not in code_lines(site)
        self.write("otpd-site.conf", site)
        os.makedirs(os.path.join(d, "htdocs"))
        user = ('server.username = "%s"\nserver.groupname = "%s"\n'
                % (WEB_USER, WEB_USER)) if WEB_USER else ""
        self.conf = self.write("lighttpd.conf", """\
# written by test_webservers.py around deploy/lighttpd/otpd.conf
server.document-root = "%(d)s/htdocs"
server.bind = "127.0.0.1"
server.port = %(port)d
server.pid-file = "%(d)s/lighttpd.pid"
server.errorlog = "%(d)s/error.log"
server.upload-dirs = ( "%(d)s" )
%(user)sserver.modules = ( "mod_accesslog" )
accesslog.filename = "%(d)s/access.log"
include "%(d)s/otpd-site.conf"
""" % {"d": d, "port": self.port, "user": user})

    def argv(self):
        return [self.program_path, "-D", "-f", self.conf]


class Apache(WebServer):
    name = "apache"
    program = "apache2"
    CHUNKED_SMALL = (411, LENGTH_REQUIRED)
    CHUNKED_LARGE = (411, LENGTH_REQUIRED)
    LONG_HEADER = (400, None)
    LONG_URI = (414, None)
    MALFORMED = (400, None)
    SHIPPED_UNIX = ('ProxyPass "/otp/" "unix:/run/otpd/otpd.sock|'
                    'fcgi://localhost/otp/" connectiontimeout=5 timeout=30')
    SHIPPED_TCP = ('ProxyPass "/otp/" "fcgi://127.0.0.1:9000/otp/" '
                   'connectiontimeout=5 timeout=30')

    def configure(self):
        d = self.dir
        site = self.shipped()
        assert site.count("<VirtualHost *:80>") == 1
        site = site.replace("<VirtualHost *:80>",
                            "<VirtualHost *:%d>" % self.port)
        if self.variant == "unix":
            site = site.replace("/run/otpd/otpd.sock", self.socket)
        else:
            site = swap_line(site, self.SHIPPED_UNIX, self.SHIPPED_TCP)
            site = site.replace("127.0.0.1:9000",
                                "127.0.0.1:%d" % self.backends.port)
        assert "/run/otpd" not in code_lines(site)
        self.write("otpd-site.conf", site)
        os.makedirs(os.path.join(d, "run"))
        modules = "".join("LoadModule %s_module %s/mod_%s.so\n"
                          % (m, APACHE_MODDIR, m) for m in APACHE_MODULES)
        user = ("User %s\nGroup %s\n" % (WEB_USER, WEB_USER)
                if WEB_USER else "")
        self.conf = self.write("apache2.conf", """\
# written by test_webservers.py around deploy/apache/otpd.conf
ServerRoot "%(d)s"
ServerName 127.0.0.1
DefaultRuntimeDir "%(d)s/run"
PidFile "%(d)s/apache2.pid"
Mutex file:%(d)s/run default
%(user)s%(modules)sStartServers 1
ServerLimit 1
ThreadsPerChild 16
MaxRequestWorkers 16
Listen 127.0.0.1:%(port)d
ErrorLog "%(d)s/error.log"
LogLevel warn
LogFormat "%%h %%l %%u %%t \\"%%r\\" %%>s %%b" common
CustomLog "%(d)s/access.log" common
Include "%(d)s/otpd-site.conf"
""" % {"d": d, "port": self.port, "user": user, "modules": modules})

    def argv(self):
        return [self.program_path, "-d", self.dir, "-f", self.conf,
                "-DFOREGROUND"]


SERVERS = {"nginx": Nginx, "lighttpd": Lighttpd, "apache": Apache}


# ---------------------------------------------------------------- HTTP

def parse_body(data):
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return data.decode("utf-8", "replace")


def request(port, method, path, body=None, headers=None, source=None,
            chunked=False):
    """One request on a new connection, from source (an address on this
    host) when given, the body sent with Content-Length or, chunked, in
    4 KiB chunks; returns (status, {lower-case header: value}, parsed
    JSON or text)."""
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=30,
        source_address=(source, 0) if source else None)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
            body = iter([body[i:i + 4096]
                         for i in range(0, len(body), 4096)])
        elif body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body, encode_chunked=chunked)
        resp = conn.getresponse()
        data = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()
    return resp.status, hdrs, parse_body(data)


def raw_request(port, data):
    """Send data as it is on a new connection; returns (status, {lower-case
    header: value}, parsed JSON or text) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        resp = http.client.HTTPResponse(s)
        resp.begin()
        body = resp.read()
        return (resp.status, {k.lower(): v for k, v in resp.getheaders()},
                parse_body(body))


def post(port, path, body, key, ctype="application/json", chunked=False):
    if isinstance(body, dict):
        body = json.dumps(body)
    headers = {"Content-Type": ctype}
    if key is not None:
        headers["x-api-key"] = key
    return request(port, "POST", path, body.encode(), headers,
                   chunked=chunked)


def gen_body():
    return {"channel": "email", "provider": "generic",
            "destination": "web-%s@example.com" % uuid.uuid4().hex[:8],
            "type": "numeric", "length": 6, "expiresInSeconds": 300}


def padded(n):
    """A valid generate body of exactly n bytes (trailing blanks)."""
    base = json.dumps(gen_body())
    assert len(base) <= n
    return base + " " * (n - len(base))


def is_json(headers):
    return headers.get("content-type", "").startswith("application/json")


def logged_paths(text, marker):
    return re.findall(r"event=request method=\S+ path=(\S*%s\S*) status=(\d+)"
                      % re.escape(marker), text)


def written(server):
    """How many code and outbox rows the database holds."""
    return server.backends.stack.db(
        "SELECT (SELECT count(*) FROM otp.codes),"
        " (SELECT count(*) FROM otp.outbox)")


def exercise(server, key, code_for):
    """The API through server: every check of this module."""
    port = server.port

    # generate + validate
    status, headers, body = post(port, "/otp/generate", gen_body(), key)
    assert status == 200 and is_json(headers), (status, body)
    code = code_for(body["otpId"])
    status, _, resp = post(port, "/otp/validate",
                           {"otpId": body["otpId"], "otp": code}, key)
    assert (status, resp) == (200, VALIDATED)

    # a 404 from otpd: the request reached it with its path
    status, headers, resp = post(port, "/otp/nope", gen_body(), key)
    assert status == 404 and is_json(headers), (status, resp)
    assert resp["success"] is False, resp

    # 413 from the web server (otpd itself would take up to 64 KiB):
    # exactly the limit passes, one byte more does not
    status, _, resp = post(port, "/otp/generate", padded(BODY_LIMIT), key)
    assert status == 200, (status, resp)
    before = written(server)
    for size in (BODY_LIMIT + 1, 100000):
        status, headers, resp = post(port, "/otp/generate", padded(size),
                                     key)
        assert (status, resp) == (413, TOO_LARGE), (size, status, resp)
        assert is_json(headers), headers
    assert written(server) == before

    # the same for a chunked body, which has no length to check up front
    # (Apache refuses every chunked body: 411)
    for size, (want, want_body) in ((BODY_LIMIT, server.CHUNKED_SMALL),
                                    (BODY_LIMIT + 1, server.CHUNKED_LARGE),
                                    (100000, server.CHUNKED_LARGE)):
        before = written(server)
        status, headers, resp = post(port, "/otp/generate", padded(size), key,
                                     chunked=True)
        assert status == want, (size, status, resp)
        assert is_json(headers), headers
        if want_body is not None:
            assert resp == want_body, (size, resp)
        if status != 200:
            assert written(server) == before, (size, status)

    # requests the server refuses before they reach otpd: a header line
    # over 8 KiB (a long x-api-key), a request line over 8 KiB, a header
    # line that is not one
    for what, data, (want, want_body) in (
            ("long header", b"GET /otp/health HTTP/1.1\r\nHost: x\r\n"
             b"x-api-key: " + b"k" * 10000 + b"\r\n\r\n",
             server.LONG_HEADER),
            ("long request line", b"GET /otp/health?" + b"q" * 10000 +
             b" HTTP/1.1\r\nHost: x\r\n\r\n", server.LONG_URI),
            ("malformed", b"GET /otp/health HTTP/1.1\r\nHost: x\r\n"
             b"no colon here\r\n\r\n", server.MALFORMED)):
        before = written(server)
        status, headers, resp = raw_request(port, data)
        assert status == want, (what, status, resp)
        if want_body is not None:
            assert resp == want_body and is_json(headers), (what, resp)
        assert written(server) == before, what

    # 415: Content-Type reaches otpd
    status, headers, resp = post(port, "/otp/generate", gen_body(), key,
                                 ctype="text/plain")
    assert status == 415 and is_json(headers), (status, resp)

    # REQUEST_URI is the path otpd routes on: the query is ignored, and
    # the logged path is what the client sent
    marker = "probe-" + uuid.uuid4().hex[:12]
    status, _, resp = request(port, "GET", "/otp/health?%s=1" % marker)
    assert status == 200, (status, resp)
    status, headers, resp = request(port, "GET", "/otp/%s?q=1" % marker)
    assert status == 404 and is_json(headers), (status, resp)
    log = server.backends.log(server.variant)
    assert ("/otp/%s" % marker, "404") in logged_paths(log, marker), \
        "otpd did not log path /otp/%s:\n%s" % (marker, log[-3000:])

    # /otp/metrics: 200 from 127.0.0.1, a JSON 403 from 127.0.0.2
    status, headers, text = request(port, "GET", "/otp/metrics")
    assert status == 200, (status, text)
    assert headers.get("content-type", "").startswith("text/plain"), headers
    assert "otpd_requests_total" in text
    status, headers, resp = request(port, "GET", "/otp/metrics",
                                    source="127.0.0.2")
    assert (status, resp) == (403, FORBIDDEN), (status, resp)
    assert is_json(headers), headers
    # no spelling of the path gets to the metrics from there
    for path in METRICS_DISGUISES:
        status, _, text = request(port, "GET", path, source="127.0.0.2")
        assert status != 200 or "otpd_requests_total" not in text, path
    # ... while the API itself answers from there
    status, _, _ = request(port, "GET", "/otp/health", source="127.0.0.2")
    assert status == 200


@pytest.mark.parametrize("name,variant", [
    ("nginx", "unix"), ("nginx", "tcp"),
    ("lighttpd", "unix"), ("lighttpd", "tcp"),
    ("apache", "unix"), ("apache", "tcp"),
])
def test_web_server(backends, api_key, code_for, name, variant):
    server = SERVERS[name](backends, variant)
    try:
        server.start()
        exercise(server, api_key, code_for)
        rc = server.stop()
        # lighttpd 1.4.69's main() returns 1 after some orderly stops
        assert rc == 0 or (name, rc) == ("lighttpd", 1), \
            "%s exited with %s on its stop signal" % (name, rc)
    except BaseException:
        server.stop()
        sys.stderr.write(server.logs())
        sys.stderr.write("\n----- otpd (%s) log -----\n%s"
                         % (variant, backends.log(variant)))
        raise


@pytest.mark.parametrize("name", ["nginx", "lighttpd", "apache"])
def test_otpd_unreachable(backends, name):
    """When otpd cannot be reached, the web server answers for it: 503 in
    JSON, like otpd's own 503, on every path (doc/openapi.yaml says so for
    each)."""
    dead = os.path.join(backends.sockdir, "nobody-listens.sock")
    server = SERVERS[name](backends, "unix", socket_path=dead, tag="-dead")
    try:
        server.start()
        for path in ("/otp/health", "/otp/metrics"):
            status, headers, resp = request(server.port, "GET", path)
            assert (status, resp) == (503, UNAVAILABLE), (path, status, resp)
            assert is_json(headers), headers
        status, headers, resp = post(server.port, "/otp/generate",
                                     gen_body(), "otpk_" + "0" * 64)
        assert (status, resp) == (503, UNAVAILABLE), (status, resp)
        assert is_json(headers), headers
    except BaseException:
        sys.stderr.write(server.logs())
        raise
    finally:
        server.stop()


def test_otpd_too_slow(backends):
    """When otpd accepts the connection but does not answer, each web
    server gives up after its shipped 30 s timeout and answers in JSON:
    nginx 503, lighttpd and Apache 504 (doc/openapi.yaml, GatewayTimeout).
    The three wait at the same time, so the test takes 30 s, not 90."""
    hang = os.path.join(backends.sockdir, "never-answers.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(hang)
    os.chmod(hang, 0o666)
    listener.listen(16)
    held = []
    stop = threading.Event()

    def hold():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except socket.timeout:
                pass
    acceptor = threading.Thread(target=hold, daemon=True)
    acceptor.start()
    expect = {"nginx": 503, "lighttpd": 504, "apache": 504}
    servers = {n: SERVERS[n](backends, "unix", socket_path=hang,
                             tag="-slow") for n in expect}
    answers = {}

    def ask(name):
        conn = http.client.HTTPConnection("127.0.0.1", servers[name].port,
                                          timeout=90)
        try:
            t = time.monotonic()
            conn.request("GET", "/otp/health")
            resp = conn.getresponse()
            answers[name] = (resp.status, resp.getheader("Content-Type"),
                             parse_body(resp.read()), time.monotonic() - t)
        finally:
            conn.close()
    try:
        for server in servers.values():
            server.start()
        askers = [threading.Thread(target=ask, args=(n,)) for n in expect]
        for a in askers:
            a.start()
        for a in askers:
            a.join(120)
        for name, status in expect.items():
            got = answers.get(name)
            assert got is not None, name
            assert got[:3] == (status, "application/json", UNAVAILABLE), \
                (name, got)
            # it did wait for otpd: not a refused connection
            assert got[3] >= 25, (name, got)
        assert held, "no web server connected"
    except BaseException:
        for server in servers.values():
            sys.stderr.write(server.logs())
        raise
    finally:
        stop.set()
        acceptor.join()
        for server in servers.values():
            server.stop()
        for c in held:
            c.close()
        listener.close()
