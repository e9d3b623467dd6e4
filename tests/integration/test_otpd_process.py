"""test_otpd_process.py: otpd as a process, spoken to in FastCGI directly
(no web server): --help/--version, configuration file and flags, the
listening socket on fd 0 (spawn-fcgi, systemd StandardInput=socket), the
supervisor restarting a worker that dies or could not be forked, and a
graceful stop that lets the request in progress finish and exits 0.  Also
what nginx cannot send or would hide: bodies that disagree with
CONTENT_LENGTH, and a metrics answer far larger than the other answers."""

import json
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid

import pytest

from conftest import binary, wait_for
from pgcluster import free_port

FCGI_BEGIN, FCGI_END, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT = 1, 3, 4, 5, 6


def record(rtype, content, req_id=1):
    return struct.pack("!BBHHBB", 1, rtype, req_id, len(content), 0, 0) \
        + content


def name_value(name, value):
    out = b""
    for s in (name, value):
        n = len(s)
        out += bytes([n]) if n < 128 else struct.pack("!I", n | 0x80000000)
    return out + name + value


def fcgi_head(method, uri, body=b"", content_length=None, headers=None):
    """A request's head (everything but its body): the begin and parameter
    records, and the empty parameter record that ends them."""
    params = {"REQUEST_METHOD": method, "REQUEST_URI": uri,
              "CONTENT_LENGTH": str(len(body) if content_length is None
                                    else content_length),
              "CONTENT_TYPE": "application/json"}
    params.update(headers or {})
    payload = b"".join(name_value(k.encode(), v.encode())
                       for k, v in params.items())
    return (record(FCGI_BEGIN, struct.pack("!HB5x", 1, 0))
            + record(FCGI_PARAMS, payload), record(FCGI_PARAMS, b""))


def fcgi_begin(sock, method, uri, body=b"", content_length=None,
               headers=None):
    """Send a request's head on sock."""
    sock.sendall(b"".join(fcgi_head(method, uri, body, content_length,
                                    headers)))


def fcgi_finish(sock, body=b""):
    """Send the body and read the answer: (status, raw head and body)."""
    if body:
        sock.sendall(record(FCGI_STDIN, body))
    sock.sendall(record(FCGI_STDIN, b""))
    out, buf = b"", b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 8:
            _, rtype, _, clen, plen, _ = struct.unpack("!BBHHBB", buf[:8])
            if len(buf) < 8 + clen + plen:
                break
            content = buf[8:8 + clen]
            buf = buf[8 + clen + plen:]
            if rtype == FCGI_STDOUT:
                out += content
            elif rtype == FCGI_END:
                status = int(out.split(b"Status: ", 1)[1][:3])
                return status, out
    raise AssertionError("no FastCGI end record; got %r" % out)


def fcgi(address, method, uri, body=b"", headers=None):
    with socket.create_connection(address, timeout=20) as sock:
        fcgi_begin(sock, method, uri, body, headers=headers)
        return fcgi_finish(sock, body)


def workers_of(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return sorted(int(p) for p in f.read().split())


def tcp_inode(local_port, remote_port=0):
    """The inode of the 127.0.0.1 TCP socket bound to local_port, connected
    to remote_port (0: the listening one), from /proc/net/tcp."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if (fields[1] == "0100007F:%04X" % local_port and
                    int(fields[2].split(":")[1], 16) == remote_port):
                return fields[9]
    return None


def holds_socket(pid, inode):
    """Whether process pid has the socket inode open (False once gone)."""
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except FileNotFoundError:
        return False
    links = set()
    for fd in fds:
        try:
            links.add(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except FileNotFoundError:
            pass
    return "socket:[%s]" % inode in links


def start(stack, args, **kw):
    log = open(os.path.join(stack.tmp, "otpd-process.log"), "ab")
    return subprocess.Popen([binary("otpd")] + args, stdout=log,
                            stderr=subprocess.STDOUT, **kw)


def common_args(stack):
    return ["-d", stack.conninfo, "-k", stack.keyfile, "-l", "warn"]


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=40)


def test_help_version_and_usage_errors():
    out = subprocess.run([binary("otpd"), "--help"], capture_output=True,
                         text=True)
    assert out.returncode == 0 and out.stdout.startswith("usage: otpd")
    out = subprocess.run([binary("otpd"), "--version"], capture_output=True,
                         text=True)
    assert out.returncode == 0 and out.stdout.startswith("otpd ")
    out = subprocess.run([binary("otpd"), "--no-such-flag"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "usage" in out.stderr


def test_configuration_errors_stop_start_up(stack, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("workers = many\n")
    out = subprocess.run([binary("otpd"), "-c", str(conf)],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "bad.conf:1: workers must be an integer" in out.stderr
    open_key = tmp_path / "open.key"
    open_key.write_bytes(open(stack.keyfile, "rb").read())
    os.chmod(open_key, 0o644)
    out = subprocess.run([binary("otpd"), "-s", "127.0.0.1:%d" % free_port(),
                          "-k", str(open_key)], capture_output=True,
                         text=True)
    assert out.returncode == 1 and "group or others" in out.stderr


def test_config_file_then_flags(stack, tmp_path):
    port = free_port()
    conf = tmp_path / "otpd.conf"
    conf.write_text("# flags win over this file\nworkers = 1\n"
                    "socket = 127.0.0.1:%d\ndatabase = \"%s\"\n"
                    "key_file = %s\nlog_level = warn\n"
                    % (free_port(), stack.conninfo, stack.keyfile))
    p = start(stack, ["-c", str(conf), "-s", "127.0.0.1:%d" % port,
                      "-n", "3"])
    try:
        wait_for("otpd's socket", lambda: len(workers_of(p.pid)) == 3 and
                 fcgi(("127.0.0.1", port), "GET", "/otp/health")[0] == 200)
    finally:
        assert stop(p) == 0


def test_listening_socket_on_fd0(stack):
    """spawn-fcgi and systemd (StandardInput=socket) hand otpd a listening
    socket as its standard input."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    address = lsock.getsockname()
    p = start(stack, common_args(stack) + ["-n", "1"], stdin=lsock.fileno())
    lsock.close()
    try:
        status, out = fcgi(address, "GET", "/otp/health")
        assert status == 200 and out.endswith(b'{"status":"ok"}'), out
    finally:
        assert stop(p) == 0


def test_dead_worker_is_replaced(stack):
    port = free_port()
    p = start(stack, common_args(stack) + ["-s", "127.0.0.1:%d" % port,
                                           "-n", "2"])
    try:
        wait_for("two workers", lambda: len(workers_of(p.pid)) == 2)
        before = workers_of(p.pid)
        os.kill(before[0], signal.SIGKILL)
        wait_for("a replacement", lambda: len(workers_of(p.pid)) == 2 and
                 before[0] not in workers_of(p.pid))
        for _ in range(6):
            assert fcgi(("127.0.0.1", port), "GET", "/otp/health")[0] == 200
        assert p.poll() is None
    finally:
        assert stop(p) == 0


def as_uid(uid, nproc=None):
    """A preexec_fn: become uid (root only), with RLIMIT_NPROC nproc."""
    def become():
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, nproc)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    return become


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to run otpd "
                    "under a uid of its own whose RLIMIT_NPROC counts only "
                    "otpd's processes")
def test_worker_that_could_not_be_forked_is_started_later(stack):
    """RLIMIT_NPROC makes fork fail with EAGAIN: the supervisor keeps
    trying (once a second, not in a busy loop) and the pool reaches its
    full size once forking works again."""
    uid = 2000000000 + os.getpid() % 1000000    # no one else runs as it
    d = os.path.join(stack.tmp, "fork-%d" % uid)
    os.mkdir(d)
    otpd = shutil.copy(binary("otpd"), d)   # its build may be under /root
    key = shutil.copy(stack.keyfile, d)
    os.chown(key, uid, uid)
    log_path = os.path.join(d, "otpd.log")
    port = free_port()

    def log():
        with open(log_path) as f:
            return f.read()

    def allow(nproc):
        # only a process of the same uid may raise another's limit here
        subprocess.run(["prlimit", "--pid", str(p.pid),
                        "--nproc=%d:64" % nproc], check=True,
                       preexec_fn=as_uid(uid))

    t0 = time.monotonic()
    with open(log_path, "ab") as f:
        # the master itself is the one process its limit allows
        p = subprocess.Popen([otpd, "-d", stack.conninfo, "-k", key,
                              "-l", "warn", "-s", "127.0.0.1:%d" % port,
                              "-n", "3"], stdout=f, stderr=subprocess.STDOUT,
                             preexec_fn=as_uid(uid, (1, 64)))
    try:
        wait_for("a second failed fork",
                 lambda: log().count("could not fork worker: ") >= 2)
        assert p.poll() is None and workers_of(p.pid) == []
        allow(2)
        wait_for("one worker", lambda: len(workers_of(p.pid)) == 1)
        assert fcgi(("127.0.0.1", port), "GET", "/otp/health")[0] == 200
        failed = log().count("could not fork worker: ")
        wait_for("another failed fork",
                 lambda: log().count("could not fork worker: ") > failed)
        # one attempt a round, a round a second (a busy loop makes
        # thousands); the bound is loose so a slow machine cannot fail it
        failed = log().count("could not fork worker: ")
        assert failed <= 2 * (time.monotonic() - t0) + 3, failed
        allow(64)
        wait_for("the full pool", lambda: len(workers_of(p.pid)) == 3)
        for _ in range(6):
            assert fcgi(("127.0.0.1", port), "GET", "/otp/health")[0] == 200
    finally:
        assert stop(p) == 0


def test_sigterm_lets_the_request_in_progress_finish(stack):
    port = free_port()
    p = start(stack, common_args(stack) + ["-s", "127.0.0.1:%d" % port,
                                           "-n", "1"])
    try:
        wait_for("the worker", lambda: fcgi(("127.0.0.1", port), "GET",
                                            "/otp/health")[0] == 200)
        body = b'{"otpId":"not-a-uuid","otp":"123456"}'
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        # the worker has the request and waits for its body
        fcgi_begin(sock, "POST", "/otp/validate", body,
                   headers={"HTTP_X_API_KEY": "otpk_unknown"})
        time.sleep(0.3)
        p.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert p.poll() is None, "otpd left before its request finished"
        status, out = fcgi_finish(sock, body)
        sock.close()
        assert status == 401, out
        assert p.wait(timeout=40) == 0
        # and it no longer accepts
        try:
            fcgi(("127.0.0.1", port), "GET", "/otp/health")
            accepted = True
        except OSError:
            accepted = False
        assert not accepted
    finally:
        if p.poll() is None:
            p.kill()


# one line of the Prometheus text format: a comment or a sample
PROM_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
PROM_LINE = re.compile(
    r'^(?:# (?:HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+'
    r'|[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{%s(?:,%s)*\})? '
    r'-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)$' % (PROM_LABEL, PROM_LABEL))


def test_metrics_with_thousands_of_providers(stack):
    """One line per client, provider and outcome: 2000 providers make an
    answer of several hundred KiB, which must still come whole."""
    name = "many-" + uuid.uuid4().hex[:12]
    stack.db("SELECT otp.create_client('%s') \\g /dev/null" % name)
    port = free_port()
    p = start(stack, common_args(stack) + ["-s", "127.0.0.1:%d" % port,
                                           "-n", "1"])
    try:
        stack.db("""
WITH p AS (
	SELECT i, otp.add_provider('%(n)s', 'email', format('p%%s', lpad(i::text,
	    4, '0')), 'file', '{"path": "/dev/null"}') AS id
	FROM generate_series(1, 2000) i)
INSERT INTO otp.delivery_counts (provider_id, outcome, n)
SELECT p.id, o.outcome, p.i FROM p, (VALUES ('sent'), ('failed')) o (outcome)
""" % {"n": name})
        wait_for("otpd", lambda: fcgi(("127.0.0.1", port), "GET",
                                      "/otp/health")[0] == 200)
        status, out = fcgi(("127.0.0.1", port), "GET", "/otp/metrics")
        head, _, text = out.partition(b"\r\n\r\n")
        assert status == 200, out[:2000]
        assert b"Content-Type: text/plain" in head
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        assert length == len(text) > 64 * 1024
        text = text.decode()
        assert text.endswith("\n")
        lines = text[:-1].split("\n")
        bad = [line for line in lines if not PROM_LINE.match(line)]
        assert not bad, bad[:5]
        mine = [line for line in lines if 'client="%s"' % name in line]
        assert len(mine) == 4000
        assert ('otpd_deliveries_total{client="%s",provider="p2000",'
                'kind="file",outcome="sent"} 2000' % name) == mine[-1]
        assert lines[-1] == "otpd_database_up 1"
    finally:
        assert stop(p) == 0
        stack.db("DELETE FROM otp.clients WHERE name = '%s'" % name)


# -- bodies that disagree with CONTENT_LENGTH --------------------------------

GENERATE = json.dumps({"channel": "email", "provider": "generic",
                       "destination": "cl@example.com", "type": "numeric",
                       "length": 6, "expiresInSeconds": 300}).encode()
CL_MISMATCH = "Request body does not match its Content-Length."


@pytest.fixture(scope="module")
def raw_otpd(stack):
    """An otpd of our own spoken to in FastCGI, and a client's name and key:
    (address, name, key)."""
    name = "rawcl-" + uuid.uuid4().hex[:12]
    key = stack.make_client(name)
    port = free_port()
    p = start(stack, common_args(stack) + ["-s", "127.0.0.1:%d" % port,
                                           "-n", "1"])
    try:
        wait_for("otpd", lambda: fcgi(("127.0.0.1", port), "GET",
                                      "/otp/health")[0] == 200)
        yield ("127.0.0.1", port), name, key
    finally:
        assert stop(p) == 0


def generate_raw(address, key, body, content_length):
    with socket.create_connection(address, timeout=20) as sock:
        fcgi_begin(sock, "POST", "/otp/generate", body, content_length,
                   headers={"HTTP_X_API_KEY": key})
        status, out = fcgi_finish(sock, body)
    head, _, text = out.partition(b"\r\n\r\n")
    assert b"Content-Type: application/json" in head, out
    return status, json.loads(text)


def rows_of(stack, name):
    return stack.db(
        "SELECT (SELECT count(*) FROM otp.codes c WHERE c.client_id = k.id),"
        " (SELECT count(*) FROM otp.outbox o WHERE o.client_id = k.id)"
        " FROM otp.clients k WHERE k.name = '%s'" % name)[0]


@pytest.mark.parametrize("content_length", [
    len(GENERATE) + 1,        # the body is shorter than announced
    len(GENERATE) + 4096,     # much shorter: more than one read's worth
    len(GENERATE) - 1,        # the body is longer than announced
    0,                        # a body where none was announced
    "many", "12abc", "0x10",   # not a number
    -1, -len(GENERATE),       # negative
], ids=["short", "short-4k", "long", "long-zero", "word", "trailing", "hex",
        "minus-one", "minus-len"])
def test_body_must_match_content_length(stack, raw_otpd, content_length):
    address, name, key = raw_otpd
    before = rows_of(stack, name)
    status, body = generate_raw(address, key, GENERATE, content_length)
    assert status == 400, body
    assert body == {"success": False, "message": CL_MISMATCH,
                    "errors": [CL_MISMATCH]}
    assert rows_of(stack, name) == before


def test_body_matching_content_length_is_accepted(stack, raw_otpd):
    """The same request with the right CONTENT_LENGTH succeeds, so the
    refusals above come from the length and nothing else."""
    address, name, key = raw_otpd
    before = rows_of(stack, name)
    status, body = generate_raw(address, key, GENERATE, len(GENERATE))
    assert status == 200, body
    assert body["destination"] == "cl@example.com"
    assert rows_of(stack, name) == [str(int(n) + 1) for n in before]


def test_sigterm_while_the_request_head_is_read(stack):
    """libfcgi has accepted the connection and still reads the request's
    parameters inside FCGX_Accept_r when SIGTERM comes: that request too
    is answered before the worker leaves."""
    port = free_port()
    p = start(stack, common_args(stack) + ["-s", "127.0.0.1:%d" % port,
                                           "-n", "1"])
    try:
        wait_for("the worker", lambda: fcgi(("127.0.0.1", port), "GET",
                                            "/otp/health")[0] == 200)
        worker = workers_of(p.pid)[0]
        listener = tcp_inode(port)
        body = b'{"otpId":"not-a-uuid","otp":"123456"}'
        start_records, end_of_params = fcgi_head(
            "POST", "/otp/validate", body,
            headers={"HTTP_X_API_KEY": "otpk_unknown"})
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        sock.sendall(start_records)
        # (the server end has inode 0 until it is accepted)
        wait_for("the worker to accept", lambda: holds_socket(
            worker, tcp_inode(port, sock.getsockname()[1])))
        p.send_signal(signal.SIGTERM)
        # the worker has seen SIGTERM: it closed its listener, or left
        wait_for("the worker to see SIGTERM",
                 lambda: not holds_socket(worker, listener))
        sock.sendall(end_of_params)
        status, out = fcgi_finish(sock, body)
        sock.close()
        assert status == 401, out
        assert p.wait(timeout=40) == 0
    finally:
        if p.poll() is None:
            p.kill()
