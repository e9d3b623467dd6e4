"""sender_fixtures.py: what the otpd-sender tests need on top of the stack
of conftest.py: running otpd-sender processes with their own settings and
logs, clients with a provider of any kind, and outbox jobs sealed with the
key file and inserted in bulk (COPY), as otpd would have written them.

    start_sender(mode="--follow", **settings) -> SenderProc   (fixture)
    provider = make_provider(stack, "webhook", "email", {...})
    jobs = insert_jobs(stack, provider, ["a@example.com"] * 10)
    status_of(stack, jobs) -> {id: (status, attempts, last_error, msgid)}
"""

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import (DB_NAME, OUTBOX_AAD_PREFIX, SANITIZER_MARKS,  # noqa
                      binary, load_keys, read_text, wait_for)

# Quick settings for tests: short polls and backoffs.
SENDER_DEFAULTS = {
    "log_level": "debug",
    "sender_poll_ms": 200,
    "sender_backoff_ms": 100,
    "sender_backoff_max_ms": 1000,
    "sender_timeout_ms": 3000,
    "sender_lease_seconds": 30,
}


class SenderProc:
    """One otpd-sender process writing its log to a file."""

    def __init__(self, stack, settings, args, preexec=None):
        self.stack = stack
        self.name = "sender-" + uuid.uuid4().hex[:8]
        self.conf = os.path.join(stack.tmp, self.name + ".conf")
        self.logfile = os.path.join(stack.tmp, self.name + ".log")
        cfg = dict(SENDER_DEFAULTS)
        cfg.update(settings)
        with open(self.conf, "w") as f:
            f.write('database = "%s"\nkey_file = %s\n'
                    % (stack.conninfo, stack.keyfile))
            for k, v in cfg.items():
                f.write("%s = %s\n" % (k, v))
        self.argv = [binary("otpd-sender"), "-c", self.conf] + list(args)
        log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True,
                                     preexec_fn=preexec)
        log.close()

    @property
    def pid(self):
        return self.proc.pid

    def wait(self, timeout=60):
        """Wait for the process to exit; its exit status."""
        return self.proc.wait(timeout=timeout)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Signal it (by pid) and wait; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill9(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def log(self):
        return read_text(self.logfile, limit=10 ** 9)

    def sanitizer_reports(self):
        return [line for line in self.log().splitlines()
                if any(m in line for m in SANITIZER_MARKS)]


@pytest.fixture
def start_sender(stack, request):
    """Factory: start_sender(*args, preexec=None, **settings) starts
    otpd-sender with the stack's database and key file, SENDER_DEFAULTS
    updated with settings, and args (default --follow); preexec runs in the
    child before the exec (to set a resource limit, say).  Every sender
    still running at the end of the test gets SIGTERM; their logs are
    printed when the test failed, and a sanitizer report fails it."""
    procs = []
    failed_before = request.session.testsfailed

    def start(*args, preexec=None, **settings):
        p = SenderProc(stack, settings, args or ("--follow",), preexec)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()
    if request.session.testsfailed > failed_before:
        for p in procs:
            sys.stderr.write("\n----- %s (%s) -----\n%s" % (
                p.name, " ".join(p.argv[3:]), p.log()))
    reports = [r for p in procs for r in p.sanitizer_reports()]
    if reports:
        pytest.fail("sanitizer reports in the sender log:\n"
                    + "\n".join(reports[:40]), pytrace=False)


def lit(s):
    """s as a SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


class Provider:
    """A client with one provider, as the tests use them."""

    def __init__(self, client, client_id, provider_id, kind, channel):
        self.client = client
        self.client_id = client_id
        self.provider_id = provider_id
        self.kind = kind
        self.channel = channel


def make_provider(stack, kind, channel, config, templates=()):
    """A new client with one provider named "p"; templates are (template_id,
    subject, body) set for the channel, the first becoming the default."""
    name = "snd-" + uuid.uuid4().hex[:12]
    sql = ["SELECT otp.create_client(%s) \\g /dev/null" % lit(name),
           "SELECT otp.add_provider(%s, %s, 'p', %s, %s::jsonb) \\g /dev/null"
           % (lit(name), lit(channel), lit(kind), lit(json.dumps(config)))]
    for tid, subject, body in templates:
        sql.append("SELECT otp.set_template(%s, %s, %s, %s, %s) \\g /dev/null"
                   % (lit(name), lit(tid), lit(channel),
                      "NULL" if subject is None else lit(subject), lit(body)))
    sql.append("SELECT c.id, p.id FROM otp.clients c JOIN otp.providers p "
               "ON p.client_id = c.id WHERE c.name = %s" % lit(name))
    rows = stack.db("\n".join(sql))
    return Provider(name, int(rows[-1][0]), int(rows[-1][1]), kind, channel)


def copy_text(s):
    """s escaped for COPY's text format."""
    return (s.replace("\\", "\\\\").replace("\n", "\\n")
            .replace("\r", "\\r").replace("\t", "\\t"))


class Job:
    def __init__(self, id, destination, code):
        self.id = id
        self.destination = destination
        self.code = code


def insert_jobs(stack, provider, destinations, expires_in=300, codes=None,
                template_id=None, notify=True, tamper=False, keyfile=None):
    """Seal a code for each destination with the key file's current key
    (AES-256-GCM, the row's identity as authenticated data) and insert the
    codes and outbox rows in one transaction, as otpd's generate does; then
    NOTIFY the senders.  Returns the jobs.  tamper seals with the wrong
    authenticated data; keyfile replaces the stack's."""
    keys = load_keys(keyfile or stack.keyfile)
    key_id = list(keys)[-1]             # the last key is the current one
    aes = AESGCM(keys[key_id][1])
    jobs, lines = [], []
    for i, dest in enumerate(destinations):
        jid = str(uuid.uuid4())
        code = codes[i] if codes else "%06d" % secrets.randbelow(10 ** 6)
        aad = OUTBOX_AAD_PREFIX + ("%s\n%d\n%s\n%s" % (
            jid, provider.client_id, provider.channel, dest)).encode()
        if tamper:
            aad += b"x"
        nonce = secrets.token_bytes(12)
        sealed = nonce + aes.encrypt(nonce, code.encode(), aad)
        lines.append("\t".join([jid, copy_text(dest), "\\\\x" + sealed.hex(),
                                "\\\\x" + secrets.token_hex(32)]))
        jobs.append(Job(jid, dest, code))
    tid = "NULL" if template_id is None else lit(template_id)
    sql = """BEGIN;
CREATE TEMP TABLE j (id uuid, dest text, sealed bytea, hash bytea);
COPY j FROM STDIN;
%s
\\.
INSERT INTO otp.codes (id, client_id, provider_id, channel, destination,
    code_hash, key_id, created_at, expires_at, max_attempts, lock_seconds)
SELECT id, %d, %d, %s, dest, hash, %d, now(),
    now() + make_interval(secs => %s), 5, 300 FROM j;
INSERT INTO otp.outbox (id, client_id, provider_id, channel, destination,
    template_id, code_sealed, key_id, created_at, expires_at, next_attempt_at)
SELECT id, %d, %d, %s, dest, %s, sealed, %d, now(),
    now() + make_interval(secs => %s), now() FROM j;
COMMIT;
""" % ("\n".join(lines), provider.client_id, provider.provider_id,
       lit(provider.channel), key_id, float(expires_in), provider.client_id,
       provider.provider_id, lit(provider.channel), tid, key_id,
       float(expires_in))
    if notify:
        sql += "SELECT pg_notify('otpd_outbox', '') \\g /dev/null\n"
    stack.pg.psql(sql, dbname=DB_NAME)
    return jobs


def status_of(stack, jobs):
    """{job id: (status, attempts, last_error, provider_message_id,
    code_sealed is null)}"""
    if not jobs:
        return {}
    ids = ",".join("'%s'" % j.id for j in jobs)
    rows = stack.db("SELECT id, status, attempts, coalesce(last_error, ''), "
                    "coalesce(provider_message_id, ''), code_sealed IS NULL "
                    "FROM otp.outbox WHERE id IN (%s)" % ids)
    return {r[0]: (r[1], int(r[2]), r[3], r[4], r[5] == "t") for r in rows}


def wait_settled(stack, jobs, timeout=60, statuses=("sent", "failed",
                                                     "expired")):
    """Wait until no job is pending; returns status_of()."""
    def done():
        st = status_of(stack, jobs)
        return st if all(v[0] in statuses for v in st.values()) else None
    return wait_for("%d jobs to settle" % len(jobs), done, timeout=timeout,
                    interval=0.1)


def count_by_status(stack, provider):
    rows = stack.db("SELECT status, count(*) FROM otp.outbox WHERE "
                    "provider_id = %d GROUP BY 1" % provider.provider_id)
    return {r[0]: int(r[1]) for r in rows}
