"""test_sender.py: otpd-sender against real and fake providers on loopback:
an SMTP server (aiosmtpd), Twilio and SendGrid fakes that check requests as
their public docs define them, a webhook receiver that verifies the
signature, and the file provider; failure injection (transient and
permanent errors, hangs, expiry, kill -9 mid-batch, two senders at once);
and the whole path from POST /otp/generate through nginx to the provider
and back to validate.

Jobs are mostly sealed here with the key file and inserted with COPY (see
sender_fixtures.py), exactly as otpd writes them; the end-to-end tests use
the API.  Nothing asserts a duration except lower bounds that follow from
Retry-After.
"""

import email
import email.policy
import email.utils
import json
import os
import re
import resource
import signal
import ssl
import subprocess
import time
import uuid

import pytest

from conftest import binary, wait_for
from fakes.httpfake import SendGridFake, TwilioFake, WebhookFake
from fakes.smtpfake import SmtpFake
from sender_fixtures import (count_by_status, insert_jobs, lit, make_provider,
                             start_sender, status_of, wait_settled)

assert start_sender  # a fixture, used by name

SECRET = "whsec-" + "k" * 24


@pytest.fixture
def hook():
    h = WebhookFake(SECRET)
    yield h
    h.close()


@pytest.fixture
def smtp():
    s = SmtpFake()
    yield s
    s.close()


def webhook_provider(stack, hook, channel="email", **extra):
    cfg = {"url": hook.hook_url, "secret": SECRET}
    cfg.update(extra)
    return make_provider(stack, "webhook", channel, cfg)


def run_once(start_sender, **settings):
    """One otpd-sender --once to the end; its exit status must be 0."""
    p = start_sender("--once", **settings)
    rc = p.wait(timeout=120)
    assert rc == 0, p.log()
    return p


# -- webhook -------------------------------------------------------------------

def test_webhook_delivery_is_signed_and_complete(stack, hook, start_sender):
    prov = webhook_provider(stack, hook, headers={"X-Tenant": "acme"})
    jobs = insert_jobs(stack, prov, ["ana@example.com"], expires_in=600)
    run_once(start_sender)
    st = status_of(stack, jobs)[jobs[0].id]
    assert st[0] == "sent" and st[1] == 1 and st[4], st
    assert hook.bad == []
    assert len(hook.accepted) == 1
    body = hook.accepted[0]
    assert body["id"] == body["otpId"] == jobs[0].id
    assert body["channel"] == "email"
    assert body["destination"] == "ana@example.com"
    assert body["code"] == jobs[0].code
    assert jobs[0].code in body["text"]
    assert body["subject"] == "Your verification code"
    assert "10 minutes" in body["text"]
    exp = stack.db("SELECT to_char(expires_at AT TIME ZONE 'UTC', "
                   "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM otp.outbox "
                   "WHERE id = '%s'" % jobs[0].id)[0][0]
    assert body["expiresAt"] == exp
    req = hook.requests[0]
    assert req.headers["x-tenant"] == "acme"
    assert req.headers["user-agent"].startswith("otpd-sender/")


def test_webhook_sms_body_has_no_subject(stack, hook, start_sender):
    prov = webhook_provider(stack, hook, channel="sms")
    jobs = insert_jobs(stack, prov, ["+4915112345678"])
    run_once(start_sender)
    assert status_of(stack, jobs)[jobs[0].id][0] == "sent"
    body = hook.accepted[0]
    assert "subject" not in body and body["channel"] == "sms"
    assert body["text"].startswith("Your verification code is %s."
                                   % jobs[0].code)


def test_template_placeholders(stack, hook, start_sender):
    prov = make_provider(
        stack, "webhook", "email", {"url": hook.hook_url, "secret": SECRET},
        templates=[("t1", "Código {{code}} für dich",
                    "Hallo! {{code}} gilt {{minutes}} Min. bis {{expiresAt}}"
                    " {{unknown}} {{code}}")])
    jobs = insert_jobs(stack, prov, ["bo@example.com"], expires_in=120,
                       template_id="t1")
    run_once(start_sender)
    body = hook.accepted[0]
    c = jobs[0].code
    assert body["subject"] == "Código %s für dich" % c
    exp = stack.db("SELECT to_char(expires_at AT TIME ZONE 'UTC', "
                   "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM otp.outbox "
                   "WHERE id = '%s'" % jobs[0].id)[0][0]
    assert body["text"] == "Hallo! %s gilt 2 Min. bis %s {{unknown}} %s" % (
        c, exp, c)


def test_default_template_used_when_job_names_none(stack, hook,
                                                   start_sender):
    prov = make_provider(
        stack, "webhook", "sms", {"url": hook.hook_url, "secret": SECRET},
        templates=[("d", None, "Code: {{code}}")])
    jobs = insert_jobs(stack, prov, ["+15551234567"])
    run_once(start_sender)
    assert hook.accepted[0]["text"] == "Code: " + jobs[0].code


def test_500_twice_then_200_is_delivered_once(stack, hook, start_sender):
    prov = webhook_provider(stack, hook)
    hook.push(("status", 500), ("status", 500))
    jobs = insert_jobs(stack, prov, ["c@example.com"])
    p = start_sender()
    st = wait_settled(stack, jobs)[jobs[0].id]
    p.stop()
    assert st[0] == "sent" and st[1] == 3, st
    assert len(hook.requests) == 3
    assert hook.ids() == [jobs[0].id]
    assert "delivery_retry" in p.log()


def test_hang_times_out_then_retry_delivers(stack, hook, start_sender):
    prov = webhook_provider(stack, hook, timeout_ms=500)
    hook.push(("hang", 5.0))
    jobs = insert_jobs(stack, prov, ["d@example.com"])
    p = start_sender()
    st = wait_settled(stack, jobs)[jobs[0].id]
    p.stop()
    assert st[0] == "sent" and st[1] == 2, st
    assert hook.ids() == [jobs[0].id]
    wait_for("the hung request to be abandoned", lambda: hook.abandoned)
    assert len(hook.requests) == 2
    assert "timed out" in st[2], st     # the retry's reason stays recorded


def test_permanent_400_fails_without_retry(stack, hook, start_sender):
    prov = webhook_provider(stack, hook)
    hook.push(("status", 400))
    jobs = insert_jobs(stack, prov, ["e@example.com"])
    run_once(start_sender)
    run_once(start_sender)
    st = status_of(stack, jobs)[jobs[0].id]
    assert st[0] == "failed" and st[1] == 1 and st[2] == "HTTP 400", st
    assert st[4], "the sealed code must be wiped"
    assert len(hook.requests) == 1 and hook.accepted == []


def test_429_honours_retry_after(stack, hook, start_sender):
    prov = webhook_provider(stack, hook)
    hook.push(("status", 429, {"Retry-After": "2"}))
    jobs = insert_jobs(stack, prov, ["f@example.com"])
    p = start_sender(sender_backoff_ms=20)
    st = wait_settled(stack, jobs)[jobs[0].id]
    p.stop()
    assert st[0] == "sent" and st[1] == 2, st
    # a lower bound only: without Retry-After the retry came after ~20 ms
    assert hook.requests[1].t - hook.requests[0].t >= 1.9


def test_max_attempts_then_failed(stack, hook, start_sender):
    prov = webhook_provider(stack, hook)
    hook.push(*[("status", 503)] * 10)
    jobs = insert_jobs(stack, prov, ["g@example.com"])
    p = start_sender(sender_max_attempts=3, sender_backoff_ms=20,
                     sender_backoff_max_ms=50)
    st = wait_settled(stack, jobs)[jobs[0].id]
    p.stop()
    assert st[0] == "failed" and st[1] == 3 and st[2] == "HTTP 503", st
    assert len(hook.requests) == 3 and hook.accepted == []


def test_code_expires_before_provider_recovers(stack, hook, start_sender):
    prov = webhook_provider(stack, hook)
    hook.push(*[("status", 503)] * 1000)
    jobs = insert_jobs(stack, prov, ["h@example.com"], expires_in=2)
    p = start_sender(sender_backoff_ms=200, sender_backoff_max_ms=400,
                     sender_max_attempts=100)
    st = wait_settled(stack, jobs)[jobs[0].id]
    assert st[0] == "expired" and st[4], st
    assert "not sent" in st[2] and "HTTP 503" in st[2], st
    with hook.lock:
        hook.script.clear()     # the provider recovers
    n = len(hook.requests)
    run_once(start_sender)
    p.stop()
    assert hook.accepted == [] and len(hook.requests) == n
    assert status_of(stack, jobs)[jobs[0].id][0] == "expired"


def test_code_expiring_in_the_queue_is_not_sent(stack, hook, start_sender):
    """Two jobs of one batch behind parallelism 1: the first hangs until
    the HTTP timeout, and both codes expire meanwhile.  The one still
    queued when the transfer gives up must not be started: its code was
    valid at the claim, but not by the time a transfer could start."""
    prov = webhook_provider(stack, hook)
    hook.push(("hang", 30.0))
    p = start_sender(sender_parallel=1, sender_timeout_ms=4000)
    wait_for("the sender to listen", lambda: "listen=otpd_outbox" in p.log())
    # one transaction and one NOTIFY: both are claimed in the same batch
    jobs = insert_jobs(stack, prov, ["q1@example.com", "q2@example.com"],
                       expires_in=2)
    wait_for("the first request", lambda: len(hook.requests) == 1)
    st = wait_settled(stack, jobs)
    wait_for("the hung request to be abandoned", lambda: hook.abandoned)
    p.stop()
    hung = hook.requests[0].json()["id"]
    queued = [j for j in jobs if j.id != hung]
    assert len(queued) == 1
    assert len(hook.requests) == 1, "the expired code was sent"
    assert hook.accepted == []
    q = st[queued[0].id]
    assert q[0] == "expired" and q[1] == 0 and q[4], q
    assert q[2].startswith("not sent: code expired before delivery"), q
    assert st[hung][0] == "expired" and "timed out" in st[hung][2], st
    assert "event=delivery_expired id=%s" % queued[0].id in p.log()


def test_consumed_or_expired_codes_are_not_sent(stack, hook, start_sender):
    prov = webhook_provider(stack, hook)
    consumed, expired, gone, live = insert_jobs(
        stack, prov, ["i@example.com"] * 4, notify=False)
    stack.db("UPDATE otp.codes SET consumed_at = now() WHERE id = '%s';"
             "UPDATE otp.codes SET expires_at = now() - interval '1 s' "
             "WHERE id = '%s';"
             "DELETE FROM otp.codes WHERE id = '%s'"
             % (consumed.id, expired.id, gone.id))
    run_once(start_sender)
    st = status_of(stack, [consumed, expired, gone, live])
    assert st[consumed.id][:2] == ("expired", 0)
    assert "consumed" in st[consumed.id][2]
    assert st[expired.id][0] == "expired" and "expired" in st[expired.id][2]
    assert st[gone.id][0] == "expired"
    assert all(st[j.id][4] for j in (consumed, expired, gone))
    assert st[live.id][0] == "sent"
    assert hook.ids() == [live.id]


def test_settled_rows_do_not_end_a_once_run_early(stack, hook,
                                                   start_sender):
    """A claim that settles jobs (consumed codes) instead of returning
    them still counts them: --once must go on to the jobs behind."""
    prov = webhook_provider(stack, hook)
    stale = insert_jobs(stack, prov, ["s@example.com"] * 6, notify=False)
    stack.db("UPDATE otp.codes SET consumed_at = now() WHERE id IN (%s)"
             % ",".join("'%s'" % j.id for j in stale))
    live = insert_jobs(stack, prov, ["t@example.com"])
    run_once(start_sender, sender_batch=4, sender_parallel=2)
    st = status_of(stack, stale + live)
    assert all(st[j.id][0] == "expired" for j in stale)
    assert st[live[0].id][0] == "sent"
    assert hook.ids() == [live[0].id]


def test_tampered_row_and_unknown_key(stack, hook, start_sender):
    prov = webhook_provider(stack, hook)
    bad = insert_jobs(stack, prov, ["j@example.com"], tamper=True)[0]
    other = insert_jobs(stack, prov, ["k@example.com"], notify=False)[0]
    stack.db("UPDATE otp.outbox SET key_id = 999999 WHERE id = '%s'"
             % other.id)
    run_once(start_sender)
    st = status_of(stack, [bad, other])
    assert st[bad.id][0] == "failed" and "authenticate" in st[bad.id][2]
    assert st[other.id][0] == "pending" and "key id 999999" in \
        st[other.id][2], st
    assert hook.accepted == []


def test_key_rotation_while_running(stack, hook, start_sender):
    """A job sealed under a key added after the sender started: the
    sender reads the key file again instead of failing the job."""
    keyfile = os.path.join(stack.tmp, "rotating.key")
    with open(stack.keyfile) as src, open(keyfile, "w") as dst:
        dst.write(src.read())
    os.chmod(keyfile, 0o600)
    prov = webhook_provider(stack, hook)
    p = start_sender(key_file=keyfile)
    wait_for("the sender to listen", lambda: "listen=otpd_outbox" in p.log())
    subprocess.run([binary("otpd-keygen"), keyfile], check=True,
                   capture_output=True)
    jobs = insert_jobs(stack, prov, ["r@example.com"], keyfile=keyfile)
    st = wait_settled(stack, jobs)[jobs[0].id]
    assert st[:2] == ("sent", 1), st
    assert hook.accepted[0]["code"] == jobs[0].code
    assert "key_file_reloaded" in p.log()


def test_bad_destination_never_sent(stack, hook, start_sender):
    prov = webhook_provider(stack, hook)
    jobs = insert_jobs(stack, prov, ["x@example.com\r\nX-Evil: 1",
                                     "no-at-sign", "ok@example.com"])
    run_once(start_sender)
    st = status_of(stack, jobs)
    assert st[jobs[0].id][0] == "failed" and "destination refused" in \
        st[jobs[0].id][2]
    assert st[jobs[1].id][0] == "failed"
    assert st[jobs[2].id][0] == "sent"
    assert hook.ids() == [jobs[2].id]


def test_notify_wakes_a_following_sender(stack, hook, start_sender):
    prov = webhook_provider(stack, hook)
    p = start_sender(sender_poll_ms=600000)
    wait_for("the sender to listen", lambda: "listen=otpd_outbox" in p.log())
    time.sleep(0.3)     # let its first claim find nothing
    jobs = insert_jobs(stack, prov, ["l@example.com"])
    # the poll interval is ten minutes: only the NOTIFY can wake it
    wait_for("delivery", lambda: hook.ids() == [jobs[0].id], timeout=30)
    assert p.stop() == 0


def test_codes_issued_between_notifications_are_sent(stack, hook,
                                                      start_sender):
    """otpd sends NOTIFY at most once per 20 ms per worker, so most codes
    of a burst carry none; the sender's follow-up claim after each
    notification must still send every one of them promptly, although
    its poll interval is ten minutes."""
    name = "burst-" + uuid.uuid4().hex[:12]
    key = stack.db("SELECT otp.create_client(%s)" % lit(name))[0][0]
    stack.db("SELECT otp.add_provider(%s, 'email', 'p', 'webhook', %s::jsonb)"
             % (lit(name), lit(json.dumps({"url": hook.hook_url,
                                           "secret": SECRET}))))
    p = start_sender(sender_poll_ms=600000)
    wait_for("the sender to listen", lambda: "listen=otpd_outbox" in p.log())
    time.sleep(0.3)     # let its first claim find nothing
    ids = []
    for i in range(40):
        status, _, body = stack.api("generate", {
            "channel": "email", "provider": "p",
            "destination": "b%d@example.com" % i, "type": "numeric",
            "length": 6, "expiresInSeconds": 300}, key)
        assert status == 200, body
        ids.append(body["otpId"])
    wait_for("every code of the burst",
             lambda: sorted(hook.ids()) == sorted(ids), timeout=20)
    assert p.stop() == 0


def test_database_outage_does_not_stop_the_sender(stack, hook, start_sender):
    prov = webhook_provider(stack, hook)
    p = start_sender()
    wait_for("the sender to listen", lambda: "listen=otpd_outbox" in p.log())
    stack.pg_pause()
    try:
        wait_for("the sender to notice", lambda: "db_unavailable" in p.log()
                 or "db_connect_failed" in p.log())
        assert p.proc.poll() is None, "the sender must keep running"
    finally:
        stack.pg_resume()
    jobs = insert_jobs(stack, prov, ["o@example.com"])
    st = wait_settled(stack, jobs)[jobs[0].id]
    assert st[0] == "sent" and hook.ids() == [jobs[0].id]
    assert p.stop() == 0


def test_sigterm_lets_in_flight_deliveries_finish(stack, hook, start_sender):
    prov = webhook_provider(stack, hook)
    hook.push(*[("hang", 1.5)] * 2)
    p = start_sender("--follow", sender_parallel=2)
    jobs = insert_jobs(stack, prov, ["m%d@example.com" % i for i in range(4)])
    wait_for("two requests in flight", lambda: len(hook.requests) == 2)
    assert p.stop(signal.SIGTERM) == 0
    st = status_of(stack, jobs)
    sent = [j for j in jobs if st[j.id][0] == "sent"]
    rest = [j for j in jobs if st[j.id][0] != "sent"]
    assert len(sent) == 2 and sorted(hook.ids()) == sorted(j.id for j in sent)
    # the queued ones were handed back untried, without their lease
    for j in rest:
        assert st[j.id][:2] == ("pending", 0), st[j.id]
    assert stack.db("SELECT count(*) FROM otp.outbox WHERE id IN (%s) AND "
                    "lease_until IS NOT NULL" % ",".join(
                        "'%s'" % j.id for j in jobs))[0][0] == "0"
    run_once(start_sender)
    assert sorted(hook.ids()) == sorted(j.id for j in jobs)


# -- file ----------------------------------------------------------------------

def test_file_provider_appends_json_lines(stack, start_sender):
    path = os.path.join(stack.tmp, "file-provider.jsonl")
    prov = make_provider(stack, "file", "email", {"path": path,
                                                  "fsync": True})
    jobs = insert_jobs(stack, prov, ["n%d@example.com" % i
                                     for i in range(300)])
    a = start_sender("--once", sender_parallel=4, sender_batch=8)
    b = start_sender("--once", sender_parallel=4, sender_batch=8)
    assert a.wait() == 0 and b.wait() == 0
    with open(path) as f:
        content = f.read()
    lines = content.splitlines()
    # every line whole: each ends with its newline and parses alone
    assert content.endswith("\n") and len(lines) == 300
    got = [json.loads(line) for line in lines]
    assert sorted(g["id"] for g in got) == sorted(j.id for j in jobs)
    codes = {j.id: j.code for j in jobs}
    assert all(g["code"] == codes[g["id"]] for g in got)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


def test_file_provider_short_write_leaves_no_torn_line(stack, start_sender):
    """A write cut short, here by RLIMIT_FSIZE as by a full disk, is a
    retry, and the partial line is removed: the file is as it was, and the
    retry appends the whole line once."""
    path = os.path.join(stack.tmp, "short-write.jsonl")
    limit = 1 << 20
    filler = b"#" * (limit - 100) + b"\n"     # no room for a whole line
    with open(path, "wb") as f:
        f.write(filler)
    os.chmod(path, 0o600)
    prov = make_provider(stack, "file", "email", {"path": path})
    jobs = insert_jobs(stack, prov, ["w@example.com"])

    def fsize_limit():
        # EFBIG and a short count instead of death by SIGXFSZ
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    run_once(start_sender, preexec=fsize_limit)
    st = status_of(stack, jobs)[jobs[0].id]
    assert st[0] == "pending" and st[2] == "file: could not write the " \
        "spool file: short write", st
    with open(path, "rb") as f:
        assert f.read() == filler, "a partial line was left behind"
    p = start_sender()
    st = wait_settled(stack, jobs)[jobs[0].id]
    p.stop()
    assert st[0] == "sent", st
    with open(path, "rb") as f:
        content = f.read()
    assert content.startswith(filler)
    rest = content[len(filler):].decode().splitlines()
    assert len(rest) == 1 and json.loads(rest[0])["id"] == jobs[0].id


def test_file_provider_write_error_is_retried(stack, start_sender):
    """/dev/full: every write fails with ENOSPC; the job is retried and
    the device (not a regular file) is not truncated."""
    prov = make_provider(stack, "file", "email", {"path": "/dev/full"})
    jobs = insert_jobs(stack, prov, ["full@example.com"])
    run_once(start_sender)
    st = status_of(stack, jobs)[jobs[0].id]
    assert st[0] == "pending" and st[2] == "file: could not write the " \
        "spool file: No space left on device", st


# -- SMTP ----------------------------------------------------------------------

def smtp_provider(stack, smtp, **extra):
    cfg = {"url": smtp.url, "from": "Ünïcode Sender <otp@sender.example>",
           "starttls": "none"}
    cfg.update(extra)
    return make_provider(stack, "smtp", "email", cfg, templates=[
        ("mail", "Ihr Bestätigungscode: {{code}}",
         "Code {{code}}\n.\nline with a lone dot above\n"
         "{{minutes}} minutes, until {{expiresAt}}.\nÄÖÜ ß € 🙂\n")])


def test_smtp_message_headers_and_body(stack, smtp, start_sender):
    prov = smtp_provider(stack, smtp)
    jobs = insert_jobs(stack, prov, ["rcpt@example.org"], expires_in=900,
                       template_id="mail")
    run_once(start_sender)
    st = status_of(stack, jobs)[jobs[0].id]
    assert st[0] == "sent", st
    assert len(smtp.messages) == 1
    mail_from, rcpts, raw = smtp.messages[0]
    assert mail_from == "otp@sender.example"
    assert rcpts == ["rcpt@example.org"]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    code = jobs[0].code
    assert msg["Subject"] == "Ihr Bestätigungscode: %s" % code
    assert "=?UTF-8?B?" in raw.decode("ascii").split("\r\n\r\n")[0]
    assert b"\r\nTo: <rcpt@example.org>\r\n" in raw
    assert msg["From"].addresses[0].addr_spec == "otp@sender.example"
    assert msg["From"].addresses[0].display_name == "Ünïcode Sender"
    assert msg["Message-ID"] == "<%s@sender.example>" % jobs[0].id
    assert st[3] == msg["Message-ID"]
    assert msg["MIME-Version"] == "1.0"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert msg["Auto-Submitted"] == "auto-generated"
    date = email.utils.parsedate_to_datetime(msg["Date"])
    assert abs(date.timestamp() - time.time()) < 3600
    body = msg.get_content()
    assert body.splitlines()[0] == "Code %s" % code
    assert body.splitlines()[1] == "."      # dot-stuffing undone
    assert "15 minutes" in body and "ÄÖÜ ß € 🙂" in body
    assert all(len(line) <= 78 for line in raw.split(b"\r\n"))
    assert all(b < 0x80 for b in raw), "the message must be 7-bit clean"


@pytest.mark.parametrize("dest", [
    "victim@example.org\r\nRCPT TO:<evil@example.org>",
    "victim@example.org>\r\nDATA",
    "victim@example.org\nBcc: evil@example.org",
    "victim@example.org\x0b",
    "<evil@example.org>",
])
def test_smtp_crlf_destination_never_reaches_the_server(stack, smtp,
                                                        start_sender, dest):
    prov = smtp_provider(stack, smtp)
    bad, good = insert_jobs(stack, prov, [dest, "fine@example.org"])
    run_once(start_sender)
    st = status_of(stack, [bad, good])
    assert st[bad.id][0] == "failed" and "destination refused" in \
        st[bad.id][2], st
    assert st[good.id][0] == "sent"
    assert [c for c in smtp.commands if c[0] == "RCPT"] == [
        ("RCPT", "fine@example.org")]
    assert len(smtp.messages) == 1
    assert b"evil" not in smtp.messages[0][2]


def test_smtp_4xx_is_retried_5xx_fails(stack, smtp, start_sender):
    prov = smtp_provider(stack, smtp)
    smtp.answer_rcpt("busy@example.org", "451 4.3.0 Try again later")
    smtp.answer_rcpt("nobody@example.org", "550 5.1.1 No such user")
    busy, nobody = insert_jobs(stack, prov, ["busy@example.org",
                                             "nobody@example.org"])
    p = start_sender()
    st = wait_settled(stack, [busy, nobody])
    p.stop()
    assert st[busy.id][:2] == ("sent", 2), st
    assert st[nobody.id][:2] == ("failed", 1), st
    assert "550" in st[nobody.id][2]
    assert [m[1] for m in smtp.messages] == [["busy@example.org"]]


def test_smtp_starttls_required_never_sends_in_clear(stack, smtp,
                                                     start_sender):
    prov = smtp_provider(stack, smtp, starttls="required")
    jobs = insert_jobs(stack, prov, ["clear@example.org"])
    run_once(start_sender)
    st = status_of(stack, jobs)[jobs[0].id]
    assert st[0] == "failed" and "smtp" in st[2], st
    assert smtp.messages == [] and smtp.commands == []


def make_ca(tmp):
    """A CA and a certificate for 127.0.0.1 signed by it; returns (ca path,
    server SSLContext)."""
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.utcnow()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(
                NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(2)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    ca_path = os.path.join(tmp, "ca-%d.pem" % id(ca))
    with open(ca_path, "wb") as f:
        f.write(pem(ca))
    cert_path = os.path.join(tmp, "cert-%d.pem" % id(cert))
    with open(cert_path, "wb") as f:
        f.write(pem(cert))
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_path)
    return ca_path, ctx


def test_smtp_starttls_verifies_the_certificate(stack, start_sender):
    ca_path, ctx = make_ca(stack.tmp)
    other_ca, _ = make_ca(stack.tmp)
    smtp = SmtpFake(tls_context=ctx)
    try:
        good = smtp_provider(stack, smtp, starttls="required",
                             ca_file=ca_path)
        wrong = smtp_provider(stack, smtp, starttls="required",
                              ca_file=other_ca)
        g = insert_jobs(stack, good, ["tls@example.org"])[0]
        w = insert_jobs(stack, wrong, ["mitm@example.org"])[0]
        run_once(start_sender)
        st = status_of(stack, [g, w])
        assert st[g.id][0] == "sent", st
        # a certificate that does not verify is an error, never ignored
        assert st[w.id][0] == "pending" and st[w.id][1] == 1, st
        assert [m[1] for m in smtp.messages] == [["tls@example.org"]]
    finally:
        smtp.close()


# -- Twilio --------------------------------------------------------------------

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "tok-" + "t" * 28


@pytest.fixture
def twilio():
    t = TwilioFake(SID, TOKEN)
    yield t
    t.close()


def twilio_provider(stack, twilio, **cfg):
    c = {"account_sid": SID, "auth_token": TOKEN, "from": "+15005550006",
         "base_url": twilio.url}
    c.update(cfg)
    return make_provider(stack, "twilio", "sms",
                         {k: v for k, v in c.items() if v is not None})


def test_twilio_message_created(stack, twilio, start_sender):
    prov = twilio_provider(stack, twilio)
    jobs = insert_jobs(stack, prov, ["+14155550123"])
    run_once(start_sender)
    st = status_of(stack, jobs)[jobs[0].id]
    assert st[0] == "sent", st
    assert len(twilio.accepted) == 1
    got = twilio.accepted[0]
    assert got["To"] == "+14155550123" and got["From"] == "+15005550006"
    assert "MessagingServiceSid" not in got
    assert got["Body"].startswith("Your verification code is %s."
                                  % jobs[0].code)
    assert st[3] == got["sid"] and re.fullmatch(r"SM[0-9a-f]{32}", st[3])
    req = twilio.requests[0]
    assert req.method == "POST"
    assert req.headers["accept"] == "application/json"
    assert TOKEN not in req.body.decode()


def test_twilio_messaging_service_sid(stack, twilio, start_sender):
    prov = twilio_provider(stack, twilio, messaging_service_sid="MG" +
                           "a" * 32, **{"from": None})
    jobs = insert_jobs(stack, prov, ["+14155550124"])
    run_once(start_sender)
    assert status_of(stack, jobs)[jobs[0].id][0] == "sent"
    got = twilio.accepted[0]
    assert got["MessagingServiceSid"] == "MG" + "a" * 32
    assert "From" not in got


def test_twilio_errors(stack, twilio, start_sender):
    bad_auth = twilio_provider(stack, twilio, auth_token="wrong")
    good = twilio_provider(stack, twilio)
    a = insert_jobs(stack, bad_auth, ["+14155550125"])[0]
    b = insert_jobs(stack, good, [TwilioFake.INVALID_TO])[0]
    p = run_once(start_sender)
    assert TOKEN not in p.log() and "wrong" not in p.log()
    assert a.code not in p.log() and b.code not in p.log()
    st = status_of(stack, [a, b])
    assert st[a.id][:2] == ("failed", 1)
    assert st[a.id][2] == "HTTP 401: twilio error 20003: Authenticate"
    assert st[b.id][:2] == ("failed", 1)
    assert "twilio error 21211" in st[b.id][2]
    assert twilio.accepted == []


def test_twilio_429_and_500_are_retried(stack, twilio, start_sender):
    prov = twilio_provider(stack, twilio)
    twilio.push(("status", 429, {"Retry-After": "1"}, {
        "code": 20429, "message": "Too Many Requests", "status": 429,
        "more_info": "https://www.twilio.com/docs/errors/20429"}),
        ("status", 500))
    jobs = insert_jobs(stack, prov, ["+14155550126"])
    p = start_sender(sender_backoff_ms=20)
    st = wait_settled(stack, jobs)[jobs[0].id]
    p.stop()
    assert st[:2] == ("sent", 3), st
    assert len(twilio.accepted) == 1
    assert twilio.requests[1].t - twilio.requests[0].t >= 0.9


# -- SendGrid ------------------------------------------------------------------

API_KEY = "SG.test-" + "s" * 30


@pytest.fixture
def sendgrid():
    g = SendGridFake(API_KEY)
    yield g
    g.close()


def sendgrid_provider(stack, sendgrid, **cfg):
    c = {"api_key": API_KEY, "from": "Acme Login <login@acme.example>",
         "base_url": sendgrid.url + "/"}
    c.update(cfg)
    return make_provider(stack, "sendgrid", "email", c)


def test_sendgrid_mail_send(stack, sendgrid, start_sender):
    prov = sendgrid_provider(stack, sendgrid)
    jobs = insert_jobs(stack, prov, ["user@example.net"])
    run_once(start_sender)
    st = status_of(stack, jobs)[jobs[0].id]
    assert st[0] == "sent", st
    body = sendgrid.accepted[0]
    assert st[3] == body["message_id"]
    assert body["personalizations"] == [{"to": [{"email":
                                                 "user@example.net"}]}]
    assert body["from"] == {"email": "login@acme.example",
                            "name": "Acme Login"}
    assert body["subject"] == "Your verification code"
    assert body["content"][0]["type"] == "text/plain"
    assert jobs[0].code in body["content"][0]["value"]
    assert sendgrid.requests[0].path == "/v3/mail/send"


def test_sendgrid_errors(stack, sendgrid, start_sender):
    bad_key = sendgrid_provider(stack, sendgrid, api_key="SG.wrong")
    good = sendgrid_provider(stack, sendgrid)
    sendgrid.push(("status", 503))
    a = insert_jobs(stack, bad_key, ["a@example.net"])[0]
    p = run_once(start_sender)
    assert "SG.wrong" not in p.log() and API_KEY not in p.log()
    b = insert_jobs(stack, good, ["b@example.net"])[0]
    p = start_sender()
    st = wait_settled(stack, [a, b])
    p.stop()
    assert st[a.id][:2] == ("failed", 1)
    assert "HTTP 401" in st[a.id][2] and "authorization grant" in st[a.id][2]
    assert st[b.id][:2] == ("sent", 2), st


def test_sendgrid_429_waits_for_the_rate_limit_reset(stack, sendgrid,
                                                     start_sender):
    """SendGrid's 429 has no Retry-After but X-RateLimit-Reset, the Unix
    time when the limit resets: the retry must not come before it."""
    prov = sendgrid_provider(stack, sendgrid)
    sendgrid.push(("ratelimit", 2))
    jobs = insert_jobs(stack, prov, ["limited@example.net"])
    p = start_sender(sender_backoff_ms=20)
    st = wait_settled(stack, jobs)[jobs[0].id]
    p.stop()
    assert st[:2] == ("sent", 2), st
    assert st[2] == "HTTP 429: too many requests", st
    assert len(sendgrid.requests) == 2 and len(sendgrid.accepted) == 1
    # a lower bound only: without the header the retry came after ~20 ms
    assert sendgrid.requests[1].wall >= sendgrid.resets[0]


# -- crashes and concurrency ---------------------------------------------------

def test_kill9_mid_batch_every_job_delivered_once(stack, hook, start_sender):
    prov = webhook_provider(stack, hook)
    first = 300
    jobs = insert_jobs(stack, prov, ["k%d@example.com" % i
                                     for i in range(1000)], notify=False)
    # answer the first 300 deliveries, then hold every request
    held = {"on": False}
    orig = hook.respond

    def respond(req, handler):
        with hook.lock:
            if len(hook.accepted) >= first:
                held["on"] = True
        if held["on"]:
            hook.hang(30, handler)
            if not hook.release.is_set():
                with hook.lock:
                    hook.abandoned.append(req)
                return (None, {}, b"", None)
        return orig(req, handler)
    hook.respond = respond
    lease = 4
    p = start_sender(sender_lease_seconds=lease, sender_timeout_ms=1000,
                     sender_parallel=16, sender_batch=64)
    stack.db("SELECT pg_notify('otpd_outbox', '')")
    # once requests are held no more are answered; wait until every answered
    # delivery is recorded, so that the kill lands between deliveries
    def settled_and_held():
        with hook.lock:
            answered = len(hook.accepted)
        return held["on"] and count_by_status(stack, prov).get(
            "sent", 0) == answered >= first
    wait_for("300 sent and requests held", settled_and_held, timeout=60)
    t_kill = time.time()
    p.kill9()
    # what the dead sender held: leased and not taken by the fake; its
    # lease_until (same host, same clock as time.time()) before any restart
    accepted = set(hook.ids())
    held = {r[0]: float(r[1]) for r in stack.db(
        "SELECT id, extract(epoch FROM lease_until) FROM otp.outbox WHERE "
        "provider_id = %d AND status = 'pending' AND lease_until > now()"
        % prov.provider_id) if r[0] not in accepted}
    leased = len(held)
    assert leased > 0, "the kill should leave jobs leased"
    assert all(u <= t_kill + lease for u in held.values()), held
    hook.respond = orig
    q = start_sender(sender_lease_seconds=lease, sender_timeout_ms=1000)
    st = wait_settled(stack, jobs, timeout=90)
    q.stop()
    assert all(v[0] == "sent" for v in st.values())
    ids = hook.ids()
    assert len(ids) == len(set(ids)) == 1000, "a job was delivered twice"
    # the replacement started at once: only the leases kept it off the jobs
    tick = 0.01
    after = [(r.json()["id"], r.wall) for r in hook.requests
             if r.wall > t_kill]
    early = [(i, round(held[i] - w, 3)) for i, w in after
             if i in held and w < held[i] - tick]
    assert early == [], "delivered before the dead sender's lease ran out " \
        "(job, seconds early): %r" % early[:5]
    assert {i for i, _ in after} >= set(held), "a held job was not retried"


def test_two_senders_drain_5000_exactly_once(stack, hook, start_sender):
    prov = webhook_provider(stack, hook)
    jobs = insert_jobs(stack, prov, ["t%d@example.com" % i
                                     for i in range(5000)], notify=False)
    # slow answers at first, so that neither can drain it all alone
    hook.push(*[("hang", 0.5)] * 32)
    a = start_sender("--once", sender_parallel=16)
    b = start_sender("--once", sender_parallel=16)
    assert a.wait(timeout=150) == 0 and b.wait(timeout=150) == 0
    st = status_of(stack, jobs)
    assert all(v[:2] == ("sent", 1) for v in st.values())
    ids = hook.ids()
    assert len(ids) == 5000 and set(ids) == {j.id for j in jobs}
    logs = a.log() + b.log()
    assert "ack_partial" not in logs
    # both did part of the work
    assert a.log().count("delivery_sent") > 0
    assert b.log().count("delivery_sent") > 0


# -- views, exit statuses ------------------------------------------------------

def test_delivery_views(stack, hook, start_sender):
    prov = webhook_provider(stack, hook)
    hook.push(("status", 400))
    jobs = insert_jobs(stack, prov, ["v1@example.com", "v2@example.com"])
    run_once(start_sender)
    rows = stack.db("SELECT due, in_flight, sent_1h, failed_1h, last_error "
                    "FROM otp.delivery_health WHERE provider_id = %d"
                    % prov.provider_id)
    assert rows == [["0", "0", "1", "1", "HTTP 400"]]
    rows = stack.db("SELECT state, kind FROM otp.outbox_jobs WHERE id IN "
                    "('%s', '%s') ORDER BY state" % (jobs[0].id, jobs[1].id))
    assert rows == [["failed", "webhook"], ["sent", "webhook"]]
    rows = stack.db("SELECT sent, failed FROM otp.delivery_status WHERE "
                    "provider_id = %d" % prov.provider_id)
    assert rows == [["1", "1"]]


def test_exit_statuses(stack):
    exe = binary("otpd-sender")
    run = lambda *a: subprocess.run([exe, *a], capture_output=True,  # noqa
                                    text=True, timeout=60)
    assert run("--help").returncode == 0
    assert run("--version").stdout.startswith("otpd-sender ")
    assert run("--once", "--follow").returncode == 2
    assert run("--for", "0").returncode == 2
    assert run("--bogus").returncode == 2
    r = run("-c", "/nonexistent/otpd.conf", "--once")
    assert r.returncode == 1 and "could not open" in r.stderr
    r = run("-k", stack.keyfile, "-d", "host=/nonexistent dbname=x",
            "--once")
    assert r.returncode == 1
    assert "could not initialise" not in r.stderr


def test_for_seconds_stops_by_itself(stack, start_sender):
    p = start_sender("--for", "1")
    assert p.wait(timeout=30) == 0
    assert "reason=time_up" in p.log()


# -- end to end through nginx ------------------------------------------------

def test_end_to_end_generate_deliver_validate(stack, smtp, hook,
                                              start_sender):
    name = "e2e-" + os.urandom(4).hex()
    key = stack.db("SELECT otp.create_client('%s')" % name)[0][0]
    stack.db("""
SELECT otp.add_provider('%(n)s', 'email', 'mail', 'smtp',
    '{"url": "%(u)s", "from": "OTP <otp@e2e.example>", "starttls": "none"}')
    \\g /dev/null
SELECT otp.add_provider('%(n)s', 'sms', 'hook', 'webhook',
    '{"url": "%(h)s", "secret": "%(s)s"}') \\g /dev/null
SELECT otp.set_template('%(n)s', 'login', 'email', 'Login code',
    'Your login code is {{code}}.') \\g /dev/null
""" % {"n": name, "u": smtp.url, "h": hook.hook_url, "s": SECRET})
    p = start_sender()

    def generate(body):
        status, _, r = stack.api("generate", body, key)
        assert status == 200, r
        return r
    mail = generate({
        "channel": "Email", "provider": "mail", "templateId": "login",
        "destination": "person@example.com", "type": "alphanumeric",
        "length": 10, "expiresInSeconds": 300})
    sms = generate({
        "channel": "sms", "provider": "hook", "destination": "+491701234567",
        "type": "numeric", "length": 6, "expiresInSeconds": 300})

    wait_for("the mail", lambda: smtp.messages, timeout=30)
    wait_for("the webhook", lambda: hook.accepted, timeout=30)
    _, rcpts, raw = smtp.messages[0]
    assert rcpts == ["person@example.com"]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == "Login code"
    m = re.fullmatch(r"Your login code is ([A-Za-z0-9]{10})\.\s*",
                     msg.get_content())
    assert m, msg.get_content()
    mail_code = m.group(1)
    assert msg["Message-ID"] == "<%s@e2e.example>" % mail["otpId"]
    body = hook.accepted[0]
    assert body["otpId"] == sms["otpId"] and body["expiresAt"] == \
        sms["expiresAt"]
    assert re.fullmatch(r"[0-9]{6}", body["code"])

    for otp_id, code in ((mail["otpId"], mail_code),
                         (sms["otpId"], body["code"])):
        status, _, r = stack.api("validate", {"otpId": otp_id, "otp": code},
                                 key)
        assert status == 200 and r["success"] is True, r
    st = stack.db("SELECT status, code_sealed IS NULL FROM otp.outbox "
                  "WHERE id IN ('%s', '%s')" % (mail["otpId"], sms["otpId"]))
    assert st == [["sent", "t"], ["sent", "t"]]
    assert p.stop() == 0
    log = p.log()
    assert mail_code not in log and body["code"] not in log
    assert SECRET not in log


def test_next_due_reads_only_the_jobs_it_needs(stack, hook):
    """otp.outbox_next_due(), which a following sender asks after every
    short claim, finds the next due job without reading the whole queue,
    counts a lease held past next_attempt_at, and is NULL with nothing to
    wait for (an empty queue, or only jobs scheduled for 'infinity')."""
    prov = webhook_provider(stack, hook)
    insert_jobs(stack, prov, ["nd%d@example.com" % i for i in range(3000)],
                notify=False)
    p = prov.provider_id
    probe = """
SELECT s.seq_tup_read + coalesce(s.idx_tup_fetch, 0) AS n
FROM pg_stat_xact_user_tables s WHERE s.relid = 'otp.outbox'::regclass
\\gset
SELECT round(otp.outbox_next_due()::numeric) AS due \\gset
SELECT :'due',
    (SELECT s.seq_tup_read + coalesce(s.idx_tup_fetch, 0) - :n
     FROM pg_stat_xact_user_tables s
     WHERE s.relid = 'otp.outbox'::regclass);
"""
    out = stack.pg.psql("""BEGIN;
-- only this test's jobs are pending: the rest of the queue is not ours
UPDATE otp.outbox SET status = 'sent'
WHERE status = 'pending' AND provider_id <> %(p)d;
UPDATE otp.outbox SET next_attempt_at = now()
    + make_interval(secs => 100 + (random() * 3000)::int)
WHERE provider_id = %(p)d;
UPDATE otp.outbox SET next_attempt_at = now() + interval '60 s'
WHERE id = (SELECT id FROM otp.outbox WHERE provider_id = %(p)d LIMIT 1);
%(probe)s
-- a job a sender holds for 30 s more, due since a second ago
UPDATE otp.outbox SET next_attempt_at = now() - interval '1 s',
    lease_until = now() + interval '30 s'
WHERE id = (SELECT id FROM otp.outbox WHERE provider_id = %(p)d
    AND lease_until IS NULL ORDER BY next_attempt_at DESC LIMIT 1);
%(probe)s
-- one due in 10 s comes before that lease runs out
UPDATE otp.outbox SET next_attempt_at = now() + interval '10 s'
WHERE id = (SELECT id FROM otp.outbox WHERE provider_id = %(p)d
    AND lease_until IS NULL ORDER BY next_attempt_at DESC LIMIT 1);
%(probe)s
UPDATE otp.outbox SET next_attempt_at = 'infinity', lease_until = NULL
WHERE provider_id = %(p)d;
SELECT coalesce(otp.outbox_next_due()::text, 'null');
UPDATE otp.outbox SET status = 'sent' WHERE provider_id = %(p)d;
SELECT coalesce(otp.outbox_next_due()::text, 'null');
ROLLBACK;
""" % {"p": p, "probe": probe}, dbname="otpd")
    rows = [r.split("|") for r in out.split("\n") if r]
    assert [r[0] for r in rows] == ["60", "30", "10", "null", "null"], rows
    # each look read a handful of rows, not the 3,000 pending ones
    assert all(int(r[1]) < 50 for r in rows[:3]), rows
