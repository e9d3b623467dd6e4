"""test_openapi.py: doc/openapi.yaml is a valid OpenAPI 3.1 document
(@redocly/cli lint: no error and no warning, which includes every example
checked against its schema), its named error examples are exactly what otpd
answers to the request bodies stored beside them (x-request), and the real
answers of the running service, through nginx with the shipped
configuration, match the documented schemas and headers: otpd's own
answers, its 503 while PostgreSQL is stopped, and nginx's own answers (400,
403 from a client outside the /otp/metrics allow list, 413, 414, and 503
with otpd unreachable).  Every documented status of every path is either
checked live here (LIVE names the test) or listed in NOT_LIVE with the
reason it cannot be produced here; the JSON bodies the shipped lighttpd
and Apache configurations answer with are checked against the schema of
their status offline (test_webservers.py checks that those servers send
them).

@redocly/cli comes from npm and is installed on first use under
.local/npm (REDOCLY_VERSION below).  Without npm, or without access to the
registry, the lint test fails; it never skips."""

import copy
import datetime
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid

import jsonschema
import pytest
import yaml

from conftest import REPO, TEMPLATE_ID
from fakes.httpfake import WebhookFake
from pgcluster import free_port
from sender_fixtures import (insert_jobs, make_provider,  # noqa: F401
                             start_sender, wait_settled)
from test_webservers import Nginx, raw_request
from test_webservers import request as web_request

SPEC_PATH = os.path.join(REPO, "doc", "openapi.yaml")
# The newest 1.x release: it runs on Node.js 18.17 or later (Debian 12's
# nodejs is 18.19) and on 20; 2.x needs Node.js 20.19 or later.
REDOCLY_VERSION = "1.34.20"
NPM_DIR = os.path.join(REPO, ".local", "npm")
# The project has not chosen a licence yet; info.license stays out until it
# has, so that rule is the one skipped.
REDOCLY_SKIP = ["info-license"]

# Every documented (path, method, status): checked live by the named test
# of this module, or not producible here, for the reason given.
POSTS = ("/otp/generate", "/otp/validate")
GETS = ("/otp/health", "/otp/metrics")
ALL = POSTS + GETS
LIVE = {}
for _p in POSTS:
    LIVE.update({
        (_p, "post", "400"): "test_validate_400_examples"
        if _p == "/otp/validate" else "test_generate_400_examples",
        (_p, "post", "401"): "test_401",
        (_p, "post", "405"): "test_405",
        (_p, "post", "413"): "test_413",
        (_p, "post", "415"): "test_415",
        (_p, "post", "503"): "test_503_database_down",
    })
LIVE[("/otp/generate", "post", "200")] = "test_generate_200"
LIVE[("/otp/validate", "post", "200")] = "test_validate_200"
LIVE[("/otp/validate", "post", "429")] = "test_429"
LIVE[("/otp/health", "get", "200")] = "test_health_200"
LIVE[("/otp/health", "get", "405")] = "test_405"
LIVE[("/otp/health", "get", "503")] = "test_503_database_down"
LIVE[("/otp/metrics", "get", "200")] = "test_metrics_200"
LIVE[("/otp/metrics", "get", "403")] = "test_metrics_403"
LIVE[("/otp/metrics", "get", "405")] = "test_405"
LIVE[("/otp/metrics", "get", "503")] = "test_503_otpd_unreachable"
for _p in ALL:
    _m = "post" if _p in POSTS else "get"
    LIVE[(_p, _m, "414")] = "test_414_web_server"
for _p in GETS:
    LIVE[(_p, "get", "400")] = "test_400_web_server"
NOT_LIVE = {}
for _p in POSTS:
    # the documented 404 is the answer for paths that do not exist;
    # test_404 checks it against the response these paths share
    NOT_LIVE[(_p, "post", "404")] = "no request to an existing path gets " \
        "404; test_404 checks unknown paths against this response"
    NOT_LIVE[(_p, "post", "411")] = "only the shipped Apache configuration " \
        "answers 411 (a chunked body); test_webservers.py checks it, " \
        "test_web_server_pages_match_spec its body"
for _p in ALL:
    _m = "post" if _p in POSTS else "get"
    NOT_LIVE[(_p, _m, "500")] = "otpd answers 500 only on an internal " \
        "failure no request can cause; lighttpd's page for it is checked " \
        "by test_web_server_pages_match_spec"
    NOT_LIVE[(_p, _m, "504")] = "the shipped nginx configuration answers " \
        "503 on a timeout; Apache and lighttpd answer 504 after 30 s " \
        "(test_webservers.py::test_otpd_too_slow checks it for " \
        "/otp/health, test_web_server_pages_match_spec its body)"
# statuses for which the shipped lighttpd and Apache configurations carry
# a JSON page that no request makes them send
UNDOCUMENTED_PAGES = {"502": "otpd unreachable gets 503 from every shipped "
                      "configuration; the pages are there in case"}


# ---------------------------------------------------------------- the spec

def load_spec():
    with open(SPEC_PATH) as f:
        return yaml.safe_load(f)


SPEC = load_spec()


def resolve(node, root=SPEC, depth=0):
    """node with every local $ref ("#/a/b") replaced by a deep copy of its
    target, recursively.  Refs elsewhere are an error: the spec is one
    file."""
    assert depth < 50, "$ref cycle in %s" % SPEC_PATH
    if isinstance(node, list):
        return [resolve(x, root, depth + 1) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), "non-local $ref %r" % ref
        target = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert part in target, "dangling $ref %r" % ref
            target = target[part]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        merged = copy.deepcopy(target)
        if rest:
            assert isinstance(merged, dict), ref
            merged.update(rest)
        return resolve(merged, root, depth + 1)
    return {k: resolve(v, root, depth + 1) for k, v in node.items()}


FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("uuid", raises=ValueError)
def _uuid(value):
    if not isinstance(value, str):
        return True
    return str(uuid.UUID(value)) == value.lower()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value):
    """RFC 3339: a date, 'T', a time and an offset (Z or +hh:mm)."""
    if not isinstance(value, str):
        return True
    if len(value) < 20 or value[10] not in "Tt":
        raise ValueError("not an RFC 3339 date-time: %r" % value)
    stamp = value[:-1] + "+00:00" if value[-1] in "Zz" else value
    parsed = datetime.datetime.fromisoformat(stamp)
    return parsed.tzinfo is not None


def validate(instance, schema, what):
    """Check instance against a (resolved) schema; fail with every error."""
    v = jsonschema.Draft202012Validator(schema, format_checker=FORMATS)
    errors = sorted(v.iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, "%s does not match doc/openapi.yaml:\n%s\n%s" % (
        what, json.dumps(instance, indent=1, ensure_ascii=False)[:2000],
        "\n".join("  at %s: %s" % ("/".join(str(p) for p in e.path) or "/",
                                   e.message) for e in errors))


def operation(path, method):
    ops = SPEC["paths"].get(path)
    assert ops is not None, "%s is not in doc/openapi.yaml" % path
    op = ops.get(method.lower())
    assert op is not None, "%s %s is not in doc/openapi.yaml" % (method, path)
    return op


def documented_response(path, method, status):
    op = operation(path, method)
    resp = op["responses"].get(str(status))
    assert resp is not None, "status %d of %s %s is not documented" % (
        status, method, path)
    return resolve(resp)


def media_type(content, content_type):
    """The entry of content for a Content-Type header value."""
    def norm(ct):
        return ";".join(p.strip().lower() for p in ct.split(";"))
    want = norm(content_type)
    for key, media in content.items():
        if norm(key) == want:
            return media
    for key, media in content.items():
        if norm(key).split(";")[0] == want.split(";")[0]:
            return media
    raise AssertionError("Content-Type %r is not documented (have %s)"
                         % (content_type, ", ".join(content)))


def header_value(raw, schema):
    if schema.get("type") == "integer":
        try:
            return int(raw)
        except ValueError:
            return raw
    return raw


def check_answer(path, method, answer, body_expected=True):
    """The answer (status, headers, parsed body) of path/method matches
    the documented response for its status: headers, content type and
    schema.  Returns the body."""
    status, headers, body = answer
    resp = documented_response(path, method, status)
    what = "%s %s -> %d" % (method, path, status)
    for name, h in (resp.get("headers") or {}).items():
        raw = headers.get(name.lower())
        if raw is None:
            assert not h.get("required"), "%s: no %s header" % (what, name)
            continue
        validate(header_value(raw, h["schema"]), h["schema"],
                 "%s: header %s" % (what, name))
    if not body_expected:
        return body
    content = resp.get("content")
    assert content, "%s: the spec documents no body" % what
    ctype = headers.get("content-type")
    assert ctype, "%s: no Content-Type" % what
    media = media_type(content, ctype)
    validate(body, media["schema"], what)
    return body


def named_examples(path, method, status):
    """{name: example} of one documented JSON response."""
    resp = documented_response(path, method, status)
    return resp["content"]["application/json"]["examples"]


# ---------------------------------------------------------------- lint

def redocly():
    """Path of the redocly binary of REDOCLY_VERSION, installed with npm
    under NPM_DIR when it is not there yet."""
    exe = os.path.join(NPM_DIR, "node_modules", ".bin", "redocly")
    pkg = os.path.join(NPM_DIR, "node_modules", "@redocly", "cli",
                       "package.json")
    try:
        with open(pkg) as f:
            if json.load(f).get("version") == REDOCLY_VERSION and \
                    os.access(exe, os.X_OK):
                return exe
    except (OSError, ValueError):
        pass
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail("node and npm are needed to lint doc/openapi.yaml with "
                    "@redocly/cli (Debian: apt-get install nodejs npm)",
                    pytrace=False)
    os.makedirs(NPM_DIR, exist_ok=True)
    p = subprocess.run(
        [npm, "install", "--prefix", NPM_DIR, "--no-audit", "--no-fund",
         "--no-save", "--no-package-lock", "--loglevel=error",
         "@redocly/cli@" + REDOCLY_VERSION],
        capture_output=True, text=True, timeout=600)
    if p.returncode != 0 or not os.access(exe, os.X_OK):
        pytest.fail("could not install @redocly/cli@%s into %s with npm "
                    "(exit %d); the registry must be reachable:\n%s%s"
                    % (REDOCLY_VERSION, NPM_DIR, p.returncode, p.stdout,
                       p.stderr), pytrace=False)
    return exe


def test_redocly_lint(tmp_path):
    exe = redocly()
    env = dict(os.environ, REDOCLY_TELEMETRY="off",
               REDOCLY_SUPPRESS_UPDATE_NOTICE="true", NO_COLOR="1")
    argv = [exe, "lint", "--format", "json"]
    for rule in REDOCLY_SKIP:
        argv += ["--skip-rule", rule]
    # run elsewhere, so that no stray redocly.yaml changes the rules
    p = subprocess.run(argv + [SPEC_PATH], cwd=str(tmp_path), env=env,
                       capture_output=True, text=True, timeout=300)
    try:
        report = json.loads(p.stdout)
    except ValueError:
        pytest.fail("redocly lint gave no JSON report (exit %d):\n%s%s"
                    % (p.returncode, p.stdout, p.stderr), pytrace=False)
    problems = ["%s %s: %s at %s" % (
        x.get("severity"), x.get("ruleId"), x.get("message"),
        ", ".join(loc.get("pointer", "?") for loc in x.get("location", [])))
        for x in report.get("problems", [])]
    totals = report.get("totals", {})
    assert totals.get("errors") == 0 and totals.get("warnings") == 0, \
        "redocly lint %s:\n%s" % (totals, "\n".join(problems))
    assert p.returncode == 0, p.stderr


# ---------------------------------------------------------------- offline

def test_spec_refs_resolve():
    resolve(SPEC)
    assert SPEC["openapi"].startswith("3.1.")
    scheme = SPEC["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == (
        "apiKey", "header", "x-api-key")
    assert SPEC["security"] == [{"apiKey": []}]


def test_every_example_matches_its_schema():
    """The same check redocly's no-invalid-media-type-examples makes, with
    this validator, so that the two agree."""
    n = 0
    for path, ops in SPEC["paths"].items():
        for method, op in ops.items():
            body = resolve(op.get("requestBody") or {})
            for media in (body.get("content") or {}).values():
                for name, ex in (media.get("examples") or {}).items():
                    validate(ex["value"], media["schema"],
                             "request example %s of %s %s" % (name, method,
                                                                path))
                    n += 1
            for status, resp in op["responses"].items():
                resp = resolve(resp)
                for media in (resp.get("content") or {}).values():
                    if "schema" not in media:
                        continue
                    for name, ex in (media.get("examples") or {}).items():
                        validate(ex["value"], media["schema"],
                                 "example %s of %s %s %s" % (
                                     name, method, path, status))
                        n += 1
    assert n > 30, n


# ---------------------------------------------------------------- live

@pytest.fixture(scope="module")
def key(make_client):
    return make_client()


def gen(**kw):
    body = {"channel": "email", "provider": "generic",
            "destination": "test@ejemplo.com", "type": "alphanumeric",
            "length": 8, "expiresInSeconds": 300}
    body.update(kw)
    return body


def assert_microseconds(stamp):
    """otpd writes exactly six fractional digits, in UTC."""
    assert len(stamp) == len("2025-09-10T14:05:41.525181Z"), stamp
    assert stamp[19] == "." and stamp.endswith("Z"), stamp


@pytest.mark.parametrize("body", [
    gen(),
    gen(channel="sms", destination="+573001112233", type="numeric",
        length=6),
    gen(templateId=TEMPLATE_ID, channel="Email", type="NUMERIC"),
], ids=["email", "sms", "template"])
def test_generate_200(api, key, body):
    got = check_answer("/otp/generate", "POST", api("generate", body, key))
    assert got["destination"] == body["destination"]
    for field in ("createdAt", "expiresAt"):
        assert_microseconds(got[field])


def test_generate_request_examples_200(api, key):
    """The documented request examples are accepted as they are."""
    media = resolve(operation("/otp/generate", "POST")["requestBody"])[
        "content"]["application/json"]
    for name, ex in media["examples"].items():
        answer = api("generate", ex["value"], key)
        assert answer[0] == 200, (name, answer)
        check_answer("/otp/generate", "POST", answer)


def test_validate_200(api, key, code_for):
    otp_id = api("generate", gen(), key)[2]["otpId"]
    answer = api("validate", {"otpId": otp_id, "otp": code_for(otp_id)}, key)
    assert answer[0] == 200, answer
    got = check_answer("/otp/validate", "POST", answer)
    assert got == named_examples("/otp/validate", "POST", 200)["seed"][
        "value"]


@pytest.mark.parametrize("name", sorted(
    n for n, ex in named_examples("/otp/generate", "POST", 400).items()
    if "x-request" in ex))
def test_generate_400_examples(api, key, name):
    ex = named_examples("/otp/generate", "POST", 400)[name]
    answer = api("generate", ex["x-request"], key)
    assert answer[0] == 400, answer
    got = check_answer("/otp/generate", "POST", answer)
    assert got == ex["value"]


@pytest.mark.parametrize("name", sorted(
    n for n, ex in named_examples("/otp/validate", "POST", 400).items()
    if "x-request" in ex))
def test_validate_400_examples(api, key, name):
    ex = named_examples("/otp/validate", "POST", 400)[name]
    answer = api("validate", ex["x-request"], key)
    assert answer[0] == 400, answer
    got = check_answer("/otp/validate", "POST", answer)
    assert got == ex["value"]


def test_validate_400_wrong_code(api, key):
    otp_id = api("generate", gen(), key)[2]["otpId"]
    answer = api("validate", {"otpId": otp_id, "otp": "00000000"}, key)
    assert answer[0] == 400, answer
    check_answer("/otp/validate", "POST", answer)


@pytest.mark.parametrize("path,body", [
    ("/otp/generate", gen()),
    ("/otp/validate", {"otpId": str(uuid.uuid4()), "otp": "123456"}),
])
@pytest.mark.parametrize("api_key", [None, "otpk_" + "0" * 64],
                         ids=["missing", "unknown"])
def test_401(api, path, body, api_key):
    answer = api(path, body, api_key)
    assert answer[0] == 401, answer
    got = check_answer(path, "POST", answer)
    assert got == resolve(SPEC["components"]["responses"]["Unauthorized"])[
        "content"]["application/json"]["examples"]["missingKey"]["value"]


@pytest.mark.parametrize("path", ["/otp/nope", "/otp/generate/", "/nope"])
def test_404(api, key, path):
    answer = api(path, gen(), key)
    assert answer[0] == 404, answer
    # an undocumented path: check it against the documented 404
    check_answer("/otp/generate", "POST", answer)


@pytest.mark.parametrize("path,method,body,allow", [
    ("/otp/generate", "GET", None, "POST"),
    ("/otp/validate", "PUT", b"{}", "POST"),
    ("/otp/health", "POST", b"{}", "GET, HEAD"),
    ("/otp/metrics", "POST", b"{}", "GET"),
])
def test_405(api, key, path, method, body, allow):
    answer = api(path, body, key, method=method)
    assert answer[0] == 405, answer
    spec_method = "GET" if path in GETS else "POST"
    check_answer(path, spec_method, answer)
    assert answer[1]["allow"] == allow


@pytest.mark.parametrize("path", ["/otp/generate", "/otp/validate"])
def test_413(api, key, path):
    answer = api(path, json.dumps(gen(padding="x" * 20000)), key)
    assert answer[0] == 413, answer
    check_answer(path, "POST", answer)


@pytest.mark.parametrize("path", ["/otp/generate", "/otp/validate"])
def test_415(api, key, path):
    answer = api(path, gen(), key, headers={"Content-Type": "text/plain"})
    assert answer[0] == 415, answer
    check_answer(path, "POST", answer)


def test_429(api, make_client, code_for):
    k = make_client(max_attempts=1, lock_seconds=120)
    otp_id = api("generate", gen(), k)[2]["otpId"]
    first = api("validate", {"otpId": otp_id, "otp": "00000000"}, k)
    assert first[0] == 400, first
    answer = api("validate", {"otpId": otp_id, "otp": code_for(otp_id)}, k)
    assert answer[0] == 429, answer
    got = check_answer("/otp/validate", "POST", answer)
    assert got == named_examples("/otp/validate", "POST", 429)[
        "tooManyFailedAttempts"]["value"]
    assert 1 <= int(answer[1]["retry-after"]) <= 120


def test_health_200(api):
    answer = api("health")
    assert answer[0] == 200, answer
    check_answer("/otp/health", "GET", answer)


def test_health_head(stack):
    status, headers, data = stack.request("HEAD", "/otp/health")
    assert status == 200
    assert data == b""
    check_answer("/otp/health", "GET", (status, headers, None),
                 body_expected=False)


def test_metrics_200(api):
    answer = api("metrics")
    assert answer[0] == 200, answer
    body = check_answer("/otp/metrics", "GET", answer)
    assert "# TYPE otpd_requests_total counter" in body


def metric_value(text, name, **labels):
    """The value of one series in a Prometheus text answer, or None."""
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        m = re.fullmatch(r"(\w+)\{([^}]*)\} (\S+)", line)
        if m and m.group(1) == name and \
                ",".join(sorted(m.group(2).split(","))) == want:
            return float(m.group(3))
    return None


def test_metrics_count_retried_attempts(stack, api, start_sender):
    """otpd_deliveries_total{outcome="retry"}: a provider that keeps
    failing shows before its jobs run out of attempts.  With 3 attempts
    allowed, a job whose provider answers 503 each time makes 2 retries and
    then fails; a job delivered at the first attempt makes none."""
    secret = "whsec-" + "m" * 24
    hook = WebhookFake(secret)
    try:
        prov = make_provider(stack, "webhook", "email",
                             {"url": hook.hook_url, "secret": secret})
        hook.push(*[("status", 503)] * 3)
        failing = insert_jobs(stack, prov, ["retried@example.com"])
        p = start_sender(sender_max_attempts=3, sender_backoff_ms=20,
                         sender_backoff_max_ms=50)
        st = wait_settled(stack, failing)[failing[0].id]
        assert st[0] == "failed" and st[1] == 3, st
        sent = insert_jobs(stack, prov, ["sent@example.com"])
        st = wait_settled(stack, sent)[sent[0].id]
        assert st[0] == "sent" and st[1] == 1, st
        p.stop()
    finally:
        hook.close()
    # a job handed back unattempted (a sender stopping: "release") is no
    # retry; the lease is taken by hand, as a claim would take it
    back = insert_jobs(stack, prov, ["released@example.com"], notify=False)
    stack.db("UPDATE otp.outbox SET attempts = attempts + 1, lease_until = "
             "now() + interval '60 seconds', leased_by = 'test_openapi' "
             "WHERE id = '%s'" % back[0].id)
    ack = json.dumps([{"id": back[0].id, "outcome": "release"}])
    assert stack.db("SELECT otp.outbox_ack('%s', 'test_openapi', 3)"
                    % ack) == [["1"]]
    rows = stack.db("SELECT outcome, n FROM otp.delivery_counts "
                    "WHERE provider_id = %d ORDER BY 1" % prov.provider_id)
    assert rows == [["failed", "1"], ["retry", "2"], ["sent", "1"]], rows
    answer = api("metrics")
    body = check_answer("/otp/metrics", "GET", answer)
    labels = {"client": prov.client, "provider": "p", "kind": "webhook"}
    for outcome, n in (("retry", 2), ("failed", 1), ("sent", 1)):
        assert metric_value(body, "otpd_deliveries_total", outcome=outcome,
                            **labels) == n, (outcome, body)


def test_metrics_403(stack):
    """From 127.0.0.2, another loopback address outside the allow list
    (as test_webservers.py asks), nginx answers the documented 403."""
    answer = web_request(stack.http_port, "GET", "/otp/metrics",
                         source="127.0.0.2")
    assert answer[0] == 403, answer
    check_answer("/otp/metrics", "GET", answer)


def method_of(path):
    return "GET" if path in GETS else "POST"


@pytest.mark.parametrize("path", ALL)
@pytest.mark.parametrize("what", ["long header", "malformed"])
def test_400_web_server(stack, path, what):
    """nginx's own 400: a header line over 8 KiB, a request it cannot
    parse."""
    if what == "long header":
        head = "x-api-key: " + "k" * 10000
    else:
        head = "no colon here"
    data = ("%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n"
            % (method_of(path), path, head)).encode()
    answer = raw_request(stack.http_port, data)
    assert answer[0] == 400, answer
    check_answer(path, method_of(path), answer)


@pytest.mark.parametrize("path", ALL)
def test_414_web_server(stack, path):
    answer = web_request(stack.http_port, method_of(path),
                         path + "?" + "q" * 10000)
    assert answer[0] == 414, answer
    check_answer(path, method_of(path), answer)


class NoOtpd:
    """What test_webservers.py's servers need to know of their otpd, for
    one that is not there: a unix socket path nobody listens on."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="otpd-openapi-")
        os.chmod(self.tmp, 0o755)
        self.socket = os.path.join(self.tmp, "nobody-listens.sock")
        self.port = free_port()


def test_503_otpd_unreachable():
    """nginx with the shipped configuration and no otpd behind it."""
    nobody = NoOtpd()
    server = Nginx(nobody, "unix", tag="-dead")
    try:
        server.start()
        for path in ALL:
            body = json.dumps(gen()).encode() if path in POSTS else None
            headers = {"Content-Type": "application/json",
                       "x-api-key": "otpk_" + "0" * 64} if body else {}
            answer = web_request(server.port, method_of(path), path, body,
                                 headers)
            assert answer[0] == 503, (path, answer)
            check_answer(path, method_of(path), answer)
            assert answer[1].get("retry-after") == "5", answer
    finally:
        server.stop()
        shutil.rmtree(nobody.tmp, ignore_errors=True)


def shipped_pages():
    """(server, status, body) of every JSON answer the shipped web server
    configurations carry for their own errors."""
    pages = []
    with open(os.path.join(REPO, "deploy", "nginx", "otpd.conf")) as f:
        for m in re.finditer(r"return (\d{3}) '(\{.*\})';", f.read()):
            pages.append(("nginx", m.group(1), m.group(2)))
    with open(os.path.join(REPO, "deploy", "apache", "otpd.conf")) as f:
        for m in re.finditer(r"ErrorDocument (\d{3}) '(\{.*\})'", f.read()):
            pages.append(("apache", m.group(1), m.group(2)))
    for path in sorted(glob.glob(os.path.join(REPO, "deploy", "lighttpd",
                                              "errors", "status-*.html"))):
        with open(path) as f:
            pages.append(("lighttpd", re.search(r"(\d{3})", os.path.basename(
                path)).group(1), f.read()))
    return pages


def test_web_server_pages_match_spec():
    """Each JSON page of the shipped configurations matches the schema of
    its status wherever doc/openapi.yaml documents that status."""
    seen = set()
    for server, status, text in shipped_pages():
        body = json.loads(text)
        if status in UNDOCUMENTED_PAGES:
            continue
        where = 0
        for path, ops in SPEC["paths"].items():
            for method in ops:
                if status not in ops[method]["responses"]:
                    continue
                check_answer(path, method.upper(), (
                    int(status), {"content-type": "application/json"}, body))
                where += 1
        assert where, "%s answers %s, which no path documents" % (
            server, status)
        seen.add(status)
    assert {"400", "403", "404", "411", "413", "414", "500", "503",
            "504"} <= seen, seen


def test_every_status_accounted_for():
    documented = {(path, method, status)
                  for path, ops in SPEC["paths"].items()
                  for method, op in ops.items()
                  for status in op["responses"]}
    assert not set(LIVE) & set(NOT_LIVE), set(LIVE) & set(NOT_LIVE)
    assert documented == set(LIVE) | set(NOT_LIVE), (
        "documented but neither LIVE nor NOT_LIVE: %s; listed but not "
        "documented: %s" % (sorted(documented - set(LIVE) - set(NOT_LIVE)),
                            sorted((set(LIVE) | set(NOT_LIVE)) - documented)))
    missing = sorted(t for t in LIVE.values()
                     if not callable(globals().get(t)))
    assert not missing, "LIVE names tests that do not exist: %s" % missing


# ---------------------------------------------------------------- outage
# Keep this last: it stops and restarts the shared PostgreSQL server.

def test_503_database_down(stack, api, key, code_for):
    """otpd's own 503 while PostgreSQL is stopped, on every path that
    needs the database; /otp/metrics stays 200 with otpd_database_up 0."""
    otp_id = api("generate", gen(), key)[2]["otpId"]
    code = code_for(otp_id)
    stack.pg_pause()
    try:
        for _ in range(3):   # every worker, whatever its state
            answer = api("generate", gen(), key)
            assert answer[0] == 503, answer
            check_answer("/otp/generate", "POST", answer)
            assert "retry-after" not in answer[1], answer
            answer = api("validate", {"otpId": otp_id, "otp": code}, key)
            assert answer[0] == 503, answer
            check_answer("/otp/validate", "POST", answer)
            answer = api("health")
            assert answer[0] == 503, answer
            check_answer("/otp/health", "GET", answer)
            answer = api("metrics")
            assert answer[0] == 200, answer
            body = check_answer("/otp/metrics", "GET", answer)
            assert "\notpd_database_up 0\n" in body, body
    finally:
        stack.pg_resume()
    # every worker reconnects before the next test: a run of 200s longer
    # than the number of workers
    deadline = time.monotonic() + 30
    good = 0
    while good < 8:
        assert time.monotonic() < deadline, "otpd did not recover"
        if api("health")[0] == 200:
            good += 1
        else:
            good = 0
            time.sleep(0.2)
