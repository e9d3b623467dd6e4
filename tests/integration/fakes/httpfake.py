"""httpfake.py: HTTP servers on 127.0.0.1 that stand in for the providers
of otpd-sender, check requests the way the real services define them, and
answer the way they do.

    hook = WebhookFake(secret="s")      # POST url, X-OTP-Signature checked
    twilio = TwilioFake("AC...", "token")
    grid = SendGridFake("SG.key")
    hook.push(("status", 500), ("status", 500))   # the next two answers
    hook.push(("hang", 5.0))            # hold the next request 5 s
    grid.push(("ratelimit", 2))         # SendGrid's 429, resets in 2 s
    hook.accepted                       # what was answered 2xx to a live
                                        # client (webhook: parsed bodies)
    hook.requests                       # every request that arrived
    hook.close()

Each server answers HTTP/1.1 with keep-alive, so connection reuse by the
client is exercised.  A scripted action applies to the next request that
reaches the point where the real service would answer (after
authentication and validation), in order; when the script is empty the
request succeeds.
"""

import base64
import collections
import hashlib
import hmac
import json
import re
import secrets
import select
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20


class Request:
    """One request as it arrived."""

    def __init__(self, method, path, headers, body):
        self.method = method
        self.path = path
        self.headers = headers          # {lower-case name: value}
        self.body = body                # bytes
        self.t = time.monotonic()
        self.wall = time.time()

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def form(self):
        return urllib.parse.parse_qs(self.body.decode("ascii"),
                                     keep_blank_values=True, strict_parsing=True)


def _client_gone(sock):
    """True when the peer has closed the connection."""
    try:
        r, _, _ = select.select([sock], [], [], 0)
        if not r:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake/1"
    # headers and body go out in separate writes: without this, Nagle and
    # the client's delayed ACK hold every answer for 40 ms
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # quiet
        pass

    def _read(self):
        n = int(self.headers.get("Content-Length", "0") or "0")
        if n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n) if n else b""

    def _any(self):
        fake = self.server.fake
        try:
            body = self._read()
        except ValueError:
            self.close_connection = True
            return
        req = Request(self.command, self.path,
                      {k.lower(): v for k, v in self.headers.items()}, body)
        with fake.lock:
            fake.requests.append(req)
        status, headers, out, record = fake.respond(req, self)
        if status is None:      # hung and the client went away
            self.close_connection = True
            return
        try:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            self.wfile.flush()
        except OSError:
            return
        if record is not None and 200 <= status <= 299:
            with fake.lock:
                fake.accepted.append(record)

    do_GET = do_POST = do_PUT = do_DELETE = _any


class FakeHTTP:
    """Base: a threaded HTTP server with a script of answers."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.accepted = []
        self.abandoned = []
        self.script = collections.deque()
        self.release = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.fake = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def push(self, *actions):
        """Queue answers for the next requests: ("status", code[, headers,
        body]) or ("hang", seconds)."""
        with self.lock:
            self.script.extend(actions)

    def next_action(self):
        with self.lock:
            return self.script.popleft() if self.script else None

    def hang(self, seconds, handler):
        """Hold the request; None if the client left meanwhile."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.release.is_set():
            if _client_gone(handler.connection):
                break
            time.sleep(0.02)
        if _client_gone(handler.connection):
            return None
        return True

    def respond(self, req, handler):
        """(status, headers, body bytes, record-or-None)."""
        raise NotImplementedError

    def scripted(self, req, handler, error_body=b"", error_headers=None):
        """Apply the next scripted action, or None to answer normally."""
        act = self.next_action()
        if act is None:
            return None
        if act[0] == "hang":
            if self.hang(act[1], handler) is None:
                with self.lock:
                    self.abandoned.append(req)
                return (None, {}, b"", None)
            return None
        if act[0] != "status":
            return self.action(act, req)
        status = act[1]
        headers = dict(error_headers or {})
        headers.update(act[2] if len(act) > 2 else {})
        body = act[3] if len(act) > 3 else error_body
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        return (status, headers, body, None)

    def action(self, act, req):
        """A scripted action of a subclass's own kind."""
        raise ValueError("unknown scripted action %r" % (act,))

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


# -- webhook -------------------------------------------------------------------

WEBHOOK_FIELDS = {"id", "otpId", "channel", "destination", "text", "code",
                  "expiresAt"}


class WebhookFake(FakeHTTP):
    """A receiver that checks X-OTP-Signature (t=<unix>,v1=<hex
    HMAC-SHA-256(secret, "<t>.<raw body>")>, t within 5 minutes) and the
    body; accepted holds the parsed bodies answered 2xx."""

    def __init__(self, secret, path="/hook"):
        self.secret = secret.encode()
        self.path = path
        self.bad = []           # (reason, request)
        super().__init__()

    @property
    def hook_url(self):
        return self.url + self.path

    def check(self, req):
        if req.method != "POST" or req.path != self.path:
            return "method or path"
        if req.headers.get("content-type") != "application/json":
            return "content-type"
        sig = req.headers.get("x-otp-signature", "")
        m = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", sig)
        if not m:
            return "signature format"
        t = int(m.group(1))
        if abs(time.time() - t) > 300:
            return "signature age"
        mac = hmac.new(self.secret, m.group(1).encode() + b"." + req.body,
                       hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, m.group(2)):
            return "signature mismatch"
        try:
            body = req.json()
        except ValueError:
            return "json"
        keys = set(body)
        want = WEBHOOK_FIELDS | ({"subject"} if body.get("channel") ==
                                 "email" else set())
        if keys != want:
            return "fields %s" % sorted(keys ^ want)
        if body["id"] != body["otpId"]:
            return "id"
        return None

    def respond(self, req, handler):
        why = self.check(req)
        if why is not None:
            with self.lock:
                self.bad.append((why, req))
            return (401, {"Content-Type": "application/json"},
                    b'{"error":"bad request"}', None)
        s = self.scripted(req, handler, b'{"error":"scripted"}',
                          {"Content-Type": "application/json"})
        if s is not None:
            return s
        return (200, {"Content-Type": "application/json"}, b'{"ok":true}',
                req.json())

    def ids(self):
        with self.lock:
            return [d["id"] for d in self.accepted]


# -- Twilio --------------------------------------------------------------------

def twilio_error(status, code, message):
    return {"code": code, "message": message,
            "more_info": "https://www.twilio.com/docs/errors/%d" % code,
            "status": status}


class TwilioFake(FakeHTTP):
    """POST /2010-04-01/Accounts/{AccountSid}/Messages.json with HTTP Basic
    auth (AccountSid:AuthToken) and a form-encoded body: To (E.164), From or
    MessagingServiceSid, Body.  201 with the Message resource (its "sid" is
    SM + 32 hex digits); errors as Twilio sends them: {"code", "message",
    "more_info", "status"}.  The magic number +15005550001 is refused with
    21211 like Twilio's test credentials do."""

    INVALID_TO = "+15005550001"

    def __init__(self, account_sid, auth_token):
        self.account_sid = account_sid
        self.auth_token = auth_token
        super().__init__()

    def _json(self, status, obj, extra=None):
        h = {"Content-Type": "application/json"}
        h.update(extra or {})
        return (status, h, json.dumps(obj).encode(), None)

    def respond(self, req, handler):
        path = "/2010-04-01/Accounts/%s/Messages.json" % self.account_sid
        if not req.path.startswith("/2010-04-01/Accounts/"):
            return self._json(404, twilio_error(404, 20404,
                              "The requested resource %s was not found"
                              % req.path))
        want = "Basic " + base64.b64encode(
            ("%s:%s" % (self.account_sid, self.auth_token)).encode()).decode()
        if req.headers.get("authorization") != want:
            return self._json(401, twilio_error(401, 20003, "Authenticate"))
        if req.path != path:
            return self._json(404, twilio_error(404, 20404,
                              "The requested resource %s was not found"
                              % req.path))
        if req.method != "POST":
            return self._json(405, twilio_error(405, 20004,
                              "Method not allowed"))
        if not req.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            return self._json(400, twilio_error(400, 21601,
                              "Content-Type must be form-encoded"))
        try:
            form = req.form()
        except ValueError:
            return self._json(400, twilio_error(400, 20001, "Bad form body"))
        if any(len(v) != 1 for v in form.values()):
            return self._json(400, twilio_error(400, 20001,
                              "Parameter given twice"))
        f = {k: v[0] for k, v in form.items()}
        to = f.get("To", "")
        if not to:
            return self._json(400, twilio_error(400, 21604,
                              "A 'To' phone number is required."))
        if not re.fullmatch(r"\+[1-9][0-9]{6,14}", to) or \
                to == self.INVALID_TO:
            return self._json(400, twilio_error(400, 21211,
                              "Invalid 'To' Phone Number: %s" % to))
        if not f.get("From") and not f.get("MessagingServiceSid"):
            return self._json(400, twilio_error(400, 21603,
                              "A 'From' phone number is required."))
        if not f.get("Body"):
            return self._json(400, twilio_error(400, 21602,
                              "Message body is required."))
        s = self.scripted(req, handler, json.dumps(twilio_error(
            500, 20500, "Internal Server Error")).encode(),
            {"Content-Type": "application/json"})
        if s is not None:
            return s
        sid = "SM" + secrets.token_hex(16)
        msg = {
            "account_sid": self.account_sid, "api_version": "2010-04-01",
            "body": f["Body"], "date_created": time.strftime(
                "%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
            "date_sent": None, "date_updated": None,
            "direction": "outbound-api", "error_code": None,
            "error_message": None, "from": f.get("From"),
            "messaging_service_sid": f.get("MessagingServiceSid"),
            "num_media": "0", "num_segments": "1", "price": None,
            "price_unit": "USD", "sid": sid, "status": "queued",
            "subresource_uris": {"media": "/2010-04-01/Accounts/%s/Messages/"
                                 "%s/Media.json" % (self.account_sid, sid)},
            "to": to, "uri": "/2010-04-01/Accounts/%s/Messages/%s.json"
            % (self.account_sid, sid)}
        return (201, {"Content-Type": "application/json"},
                json.dumps(msg).encode(), dict(f, sid=sid))


# -- SendGrid ------------------------------------------------------------------

def sendgrid_errors(*items):
    return {"errors": [{"message": m, "field": f, "help": None}
                       for m, f in items]}


class SendGridFake(FakeHTTP):
    """POST /v3/mail/send with "Authorization: Bearer <api key>" and the v3
    JSON body (personalizations[].to[].email, from.email, subject,
    content[].type/value).  202 Accepted with an empty body and an
    X-Message-Id header; errors as {"errors": [{"message", "field",
    "help"}]}.  The scripted action ("ratelimit", seconds) answers 429 as
    SendGrid does when the rate limit is hit: X-RateLimit-Limit,
    X-RateLimit-Remaining: 0 and X-RateLimit-Reset (the Unix time when the
    limit resets, seconds from now), no Retry-After; resets records each
    reset time sent."""

    RATE_LIMIT = 600

    def __init__(self, api_key):
        self.api_key = api_key
        self.resets = []
        super().__init__()

    def action(self, act, req):
        if act[0] != "ratelimit":
            return super().action(act, req)
        reset = int(time.time()) + act[1]
        with self.lock:
            self.resets.append(reset)
        return self._err(429, ("too many requests", None), extra={
            "X-RateLimit-Limit": str(self.RATE_LIMIT),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset)})

    def _err(self, status, *items, extra=None):
        h = {"Content-Type": "application/json"}
        h.update(extra or {})
        return (status, h, json.dumps(sendgrid_errors(*items)).encode(), None)

    @staticmethod
    def validate(body):
        """The first problem with a v3 mail/send body, or None."""
        if not isinstance(body, dict):
            return ("Bad Request", None)
        p = body.get("personalizations")
        if not isinstance(p, list) or not p:
            return ("The personalizations field is required and must have "
                    "at least one personalization.", "personalizations")
        to = p[0].get("to") if isinstance(p[0], dict) else None
        if not isinstance(to, list) or not to or not isinstance(
                to[0], dict) or not isinstance(to[0].get("email"), str):
            return ("The to array is required for all personalization "
                    "objects, and must have at least one email object with "
                    "a valid email address.", "personalizations.0.to")
        frm = body.get("from")
        if not isinstance(frm, dict) or not isinstance(frm.get("email"), str):
            return ("The from object must be provided for every email send. "
                    "It is an object that requires an email parameter, but "
                    "may also contain a name parameter.", "from")
        if not isinstance(body.get("subject"), str) or not body["subject"]:
            return ("The subject is required. You can get around this "
                    "requirement if you use a template with a subject "
                    "defined or if every personalization has a subject "
                    "defined.", "subject")
        c = body.get("content")
        if not isinstance(c, list) or not c or not isinstance(c[0], dict) \
                or c[0].get("type") != "text/plain" or not isinstance(
                    c[0].get("value"), str) or not c[0]["value"]:
            return ("Unless a valid template_id is provided, the content "
                    "parameter is required. There must be at least one "
                    "defined content block. We typically suggest both "
                    "text/plain and text/html blocks are included, but only "
                    "one block is required.", "content")
        return None

    def respond(self, req, handler):
        if req.path != "/v3/mail/send":
            return self._err(404, ("resource not found", None))
        if req.headers.get("authorization") != "Bearer " + self.api_key:
            return self._err(401, ("The provided authorization grant is "
                                   "invalid, expired, or revoked", None))
        if req.method != "POST":
            return self._err(405, ("method not allowed", None))
        if req.headers.get("content-type") != "application/json":
            return self._err(400, ("Content-Type should be "
                                   "application/json.", None))
        try:
            body = req.json()
        except ValueError:
            return self._err(400, ("Bad Request", None))
        problem = self.validate(body)
        if problem is not None:
            return self._err(400, problem)
        s = self.scripted(req, handler, json.dumps(sendgrid_errors(
            ("Internal server error", None))).encode(),
            {"Content-Type": "application/json"})
        if s is not None:
            return s
        mid = secrets.token_urlsafe(16)
        return (202, {"X-Message-Id": mid}, b"", dict(body, message_id=mid))
