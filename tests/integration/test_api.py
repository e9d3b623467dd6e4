"""test_api.py: the HTTP contract of otpd, end to end through nginx and a real
PostgreSQL: every row of the seed's error tables, success paths for both
channels, single use, locks and their expiry, code expiry, tenant
isolation, concurrency, hostile input (each a 4xx JSON answer that writes no
row), no code or key in a database dump, and recovery from a database
outage (last: it restarts the shared cluster)."""

import calendar
import json
import re
import socket
import subprocess
import threading
import time
import uuid
from decimal import Decimal

import pytest

from conftest import DB_NAME, TEMPLATE_ID
from test_otpd_process import fcgi_begin, fcgi_finish

MSG = {
    "channel": "OTP channel is required and must be either 'Email' or 'Sms'.",
    "provider": "Provider is required.",
    "destination": "Destination (email or phone number) is required.",
    "type": "OTP type is required.",
    "length": "OTP length is required.",
    "expires": "ExpiresInSeconds is required.",
    "email": "Invalid email format. It must be like name@example.com.",
    "phone": "Invalid phone number format. Must start with country code",
    "provider_unknown": "Provider not found for this client and channel.",
    "type_value": "OTP type must be either 'Numeric' or 'Alphanumeric'.",
    "length_range": "OTP length must be between 4 and 12.",
    "expires_positive": "ExpiresInSeconds must be greater than zero.",
    "template_unknown": "Template not found for this client and channel.",
    "otp_id": "OtpId is required.",
    "otp": "Otp is required.",
    "invalid_otp": "Invalid OTP or expired.",
    "locked": "Too many failed attempts. Try again later.",
    "not_object": "Request body must be a JSON object.",
}
KEY_ERROR = {"success": False, "message": "Invalid or missing API key."}
UNAVAILABLE = {"success": False, "message": "Service temporarily unavailable."}
VALIDATED = {"success": True, "message": "OTP validated successfully."}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                     r"[0-9a-f]{12}$")
TS_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})"
                   r"(?:\.(\d{1,9}))?Z$")
DROP = object()


def gen_body(**kw):
    """A valid generate body with fields replaced (DROP removes one)."""
    body = {"channel": "email", "provider": "generic",
            "destination": "user@example.com", "type": "numeric",
            "length": 6, "expiresInSeconds": 300}
    for k, v in kw.items():
        if v is DROP:
            body.pop(k, None)
        else:
            body[k] = v
    return body


def ts(value):
    """An RFC 3339 UTC timestamp as exact seconds since the epoch."""
    m = TS_RE.match(value)
    assert m, "not an RFC 3339 UTC timestamp ending in Z: %r" % value
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    frac = Decimal("0." + (m.group(7) or "0"))
    return calendar.timegm((y, mo, d, h, mi, s)) + frac


def assert_error(status, body, want_status, message=None):
    """A contract error answer: {"success": false, "message", "errors"}."""
    assert status == want_status, (status, body)
    assert isinstance(body, dict), "not a JSON object: %r" % (body,)
    assert body.get("success") is False, body
    assert isinstance(body.get("message"), str) and body["message"], body
    assert set(body) <= {"success", "message", "errors"}, body
    if "errors" in body:
        assert isinstance(body["errors"], list) and body["errors"], body
        assert all(isinstance(e, str) for e in body["errors"]), body
        assert body["errors"][0] == body["message"], body
    if message is not None:
        assert body["message"] == message, body


def assert_400(resp, message=None, errors=None):
    status, headers, body = resp
    assert headers.get("content-type", "").startswith("application/json")
    assert_error(status, body, 400, message)
    assert "errors" in body, body
    if errors is not None:
        assert body["errors"] == errors, body


def counts(db):
    return tuple(int(x) for x in db(
        "SELECT (SELECT count(*) FROM otp.codes), "
        "(SELECT count(*) FROM otp.outbox), "
        "(SELECT count(*) FROM otp.attempts)")[0])


@pytest.fixture(scope="module")
def key(make_client):
    return make_client()


@pytest.fixture
def generate(api, key):
    """generate(**fields) -> the 200 answer's body (asserts 200)."""
    def gen(k=None, **kw):
        status, _, body = api("generate", gen_body(**kw), k or key)
        assert status == 200, body
        return body
    return gen


# ---------------------------------------------------------------- the seed

SEED_GENERATE = [
    ("missing channel",
     {"provider": "generic", "destination": "test@ejemplo.com",
      "type": "alphanumeric", "length": 8, "expiresInSeconds": 300},
     MSG["channel"]),
    ("missing destination",
     {"channel": "email", "provider": "generic", "type": "alphanumeric",
      "length": 8, "expiresInSeconds": 300},
     MSG["destination"]),
    ("missing type",
     {"channel": "email", "provider": "generic",
      "destination": "test@ejemplo.com", "length": 8,
      "expiresInSeconds": 300},
     MSG["type"]),
    ("missing length",
     {"channel": "email", "provider": "generic",
      "destination": "test@ejemplo.com", "type": "alphanumeric",
      "expiresInSeconds": 300},
     MSG["length"]),
    ("missing expiresInSeconds",
     {"channel": "email", "provider": "generic",
      "destination": "test@ejemplo.com", "type": "alphanumeric",
      "length": 8},
     MSG["expires"]),
    ("invalid email format",
     {"channel": "email", "provider": "generic",
      "destination": "testejemplo.com", "type": "alphanumeric", "length": 8,
      "expiresInSeconds": 300},
     MSG["email"]),
    ("invalid phone format",
     {"channel": "sms", "provider": "generic",
      "destination": "test@ejemplo.com", "type": "alphanumeric", "length": 8,
      "expiresInSeconds": 300},
     MSG["phone"]),
    ("unknown provider",
     {"channel": "email", "provider": "emailsenderotp",
      "destination": "test@ejemplo.com", "type": "alphanumeric", "length": 8,
      "expiresInSeconds": 300},
     MSG["provider_unknown"]),
    ("length out of range",
     {"channel": "email", "provider": "generic",
      "destination": "test@ejemplo.com", "type": "alphanumeric", "length": 2,
      "expiresInSeconds": 300},
     MSG["length_range"]),
    ("non-positive expiration",
     {"channel": "email", "provider": "generic",
      "destination": "test@ejemplo.com", "type": "alphanumeric", "length": 4,
      "expiresInSeconds": 0},
     MSG["expires_positive"]),
    # the additions to the table
    ("missing provider",
     {"channel": "email", "destination": "test@ejemplo.com",
      "type": "alphanumeric", "length": 8, "expiresInSeconds": 300},
     MSG["provider"]),
    ("unknown type",
     {"channel": "email", "provider": "generic",
      "destination": "test@ejemplo.com", "type": "hex", "length": 8,
      "expiresInSeconds": 300},
     MSG["type_value"]),
    ("unknown template",
     {"channel": "email", "provider": "generic",
      "destination": "test@ejemplo.com", "type": "alphanumeric", "length": 8,
      "expiresInSeconds": 300, "templateId": "no-such-template"},
     MSG["template_unknown"]),
]


@pytest.mark.parametrize("body,message", [c[1:] for c in SEED_GENERATE],
                         ids=[c[0] for c in SEED_GENERATE])
def test_generate_seed_errors(api, db, key, body, message):
    before = counts(db)
    assert_400(api("generate", body, key), message, [message])
    assert counts(db) == before


SEED_VALIDATE = [
    ("missing otpId", {"otp": "n2gR"}, MSG["otp_id"]),
    ("missing otp", {"otpId": "7dd25d97-1ae3-49a7-8aa7-54211a3fecac"},
     MSG["otp"]),
    ("incorrect or expired",
     {"otpId": "7dd25d97-1ae3-49a7-8aa7-54211a3fecac", "otp": "n2gR"},
     MSG["invalid_otp"]),
]


@pytest.mark.parametrize("body,message", [c[1:] for c in SEED_VALIDATE],
                         ids=[c[0] for c in SEED_VALIDATE])
def test_validate_seed_errors(api, key, body, message):
    assert_400(api("validate", body, key), message, [message])


def test_all_missing_fields_in_order(api, key):
    assert_400(api("generate", {}, key), MSG["channel"],
               [MSG["channel"], MSG["provider"], MSG["destination"],
                MSG["type"], MSG["length"], MSG["expires"]])
    assert_400(api("validate", {}, key), MSG["otp_id"],
               [MSG["otp_id"], MSG["otp"]])


def test_format_and_range_errors_in_order(api, key):
    body = gen_body(destination="not-an-email", type="hex", length=2,
                    expiresInSeconds=0)
    assert_400(api("generate", body, key), MSG["email"],
               [MSG["email"], MSG["type_value"], MSG["length_range"],
                MSG["expires_positive"]])


def test_missing_before_format(api, key):
    body = gen_body(destination="bad", type=DROP)
    status, _, resp = api("generate", body, key)
    assert_400((status, _, resp), MSG["type"])
    assert resp["errors"] == [MSG["type"], MSG["email"]]


# An unknown provider or template is listed with the other problems, in the
# seed's place: after the formats, before the ranges.
NAME_CASES = [
    ("provider and length",
     dict(provider="nope", length=2),
     ["provider_unknown", "length_range"]),
    ("provider and huge length",
     dict(provider="nope", length="RAW:99999999999999999999"),
     ["provider_unknown", "length_range"]),
    ("provider and zero expiry",
     dict(provider="nope", expiresInSeconds=0),
     ["provider_unknown", "expires_positive"]),
    ("provider and expiry over the maximum",
     dict(provider="nope", expiresInSeconds=86401),
     ["provider_unknown", "ExpiresInSeconds must be at most 86400."]),
    ("provider and email",
     dict(provider="nope", destination="testejemplo.com"),
     ["email", "provider_unknown"]),
    ("provider and phone",
     dict(channel="sms", provider="nope", destination="test@ejemplo.com"),
     ["phone", "provider_unknown"]),
    ("everything",
     dict(provider="nope", destination="testejemplo.com", type="hex",
          length=2, expiresInSeconds=0, templateId="no-such-template"),
     ["email", "type_value", "provider_unknown", "template_unknown",
      "length_range", "expires_positive"]),
    ("provider, email, length and expiry",
     dict(provider="nope", destination="testejemplo.com", length=13,
          expiresInSeconds=-1),
     ["email", "provider_unknown", "length_range", "expires_positive"]),
    ("template and length",
     dict(templateId="no-such-template", length=2),
     ["template_unknown", "length_range"]),
    ("template of the other channel and length",
     dict(channel="sms", destination="+573001112233", templateId="email-only",
          length=2),
     ["template_unknown", "length_range"]),
    # every other check passes: the generate statement itself says so
    ("provider and template",
     dict(provider="nope", templateId="no-such-template"),
     ["provider_unknown", "template_unknown"]),
    ("missing fields first",
     dict(provider="nope", type=DROP, length=2),
     ["type", "provider_unknown", "length_range"]),
    ("missing provider, unknown template",
     dict(provider=DROP, templateId="no-such-template", length=2),
     ["provider", "template_unknown", "length_range"]),
    ("over-long provider",
     dict(provider="p" * 201),
     ["provider_unknown"]),
    ("over-long provider, email and length",
     dict(provider="p" * 201, destination="testejemplo.com", length=2),
     ["email", "provider_unknown", "length_range"]),
    # no valid channel: nothing can be looked up for it
    ("no valid channel",
     dict(channel="fax", provider="nope", length=2),
     ["channel", "length_range"]),
    ("known provider, bad length",
     dict(length=2, templateId=TEMPLATE_ID),
     ["length_range"]),
]


@pytest.fixture(scope="module")
def names_key(db, make_client):
    """A client whose template "email-only" exists for email alone."""
    name = "names-" + uuid.uuid4().hex[:8]
    k = make_client(name)
    db("SELECT otp.set_template('%s', 'email-only', 'email', 's', "
       "'{{code}}')" % name)
    return k


@pytest.mark.parametrize("fields,want", [c[1:] for c in NAME_CASES],
                         ids=[c[0] for c in NAME_CASES])
def test_unknown_names_among_other_errors(api, db, names_key, fields, want):
    errors = [MSG.get(w, w) for w in want]
    before = counts(db)
    resp = api("generate", encode_body(gen_body(**fields)), names_key)
    assert_400(resp, errors[0], errors)
    assert counts(db) == before


def test_unknown_names_with_a_bad_key_is_401(api, db, make_client):
    name = "names-off-" + uuid.uuid4().hex[:8]
    off = make_client(name)
    db("SELECT otp.disable_client('%s')" % name)
    body = gen_body(provider="nope", length=2, templateId="no-such")
    before = counts(db)
    for k in ("otpk_" + "0" * 64, off):
        status, _, resp = api("generate", body, k)
        assert status == 401 and resp == KEY_ERROR, (k, resp)
    assert counts(db) == before


def test_validate_lock_seed_row(api, make_client, code_for):
    k = make_client(max_attempts=3, lock_seconds=60)
    otp_id = api("generate", gen_body(), k)[2]["otpId"]
    code = code_for(otp_id)
    for _ in range(3):
        api("validate", {"otpId": otp_id, "otp": wrong(code)}, k)
    status, headers, body = api("validate", {"otpId": otp_id, "otp": code}, k)
    assert_error(status, body, 429, MSG["locked"])
    assert "retry-after" in headers


# ---------------------------------------------------------------- success

def wrong(code):
    """A code of the same shape that is not code."""
    last = code[-1]
    repl = "0" if last != "0" else "1"
    return code[:-1] + repl


def check_generated(resp, destination, expires_in):
    status, headers, body = resp
    assert status == 200, body
    assert headers.get("content-type", "").startswith("application/json")
    assert set(body) == {"otpId", "destination", "createdAt", "expiresAt"}
    assert UUID_RE.match(body["otpId"]), body
    assert body["destination"] == destination
    created, expires = ts(body["createdAt"]), ts(body["expiresAt"])
    assert created + expires_in == expires, body
    assert abs(float(created) - time.time()) < 120, body
    return body


@pytest.mark.parametrize("channel,destination", [
    ("email", "test@ejemplo.com"),
    ("sms", "+573001112233"),
])
def test_generate_and_validate(api, db, key, code_for, channel, destination):
    body = gen_body(channel=channel, destination=destination,
                    type="alphanumeric", length=8, expiresInSeconds=300,
                    templateId=TEMPLATE_ID)
    gen = check_generated(api("generate", body, key), destination, 300)
    otp_id = gen["otpId"]

    rows = db("SELECT channel, destination, length(code_hash), "
              "consumed_at IS NULL, failed_attempts FROM otp.codes "
              "WHERE id = '%s'" % otp_id)
    assert rows == [[channel, destination, "32", "t", "0"]]
    rows = db("SELECT channel, destination, status, template_id "
              "FROM otp.outbox WHERE id = '%s'" % otp_id)
    assert rows == [[channel, destination, "pending", TEMPLATE_ID]]

    code = code_for(otp_id)
    assert re.fullmatch(r"[A-Za-z0-9]{8}", code), code

    resp = api("validate", {"otpId": otp_id, "otp": code}, key)
    assert resp[0] == 200, resp
    assert resp[2] == VALIDATED
    assert resp[1].get("content-type", "").startswith("application/json")
    # single use
    assert_400(api("validate", {"otpId": otp_id, "otp": code}, key),
               MSG["invalid_otp"])


@pytest.mark.parametrize("typ,length,pattern", [
    ("numeric", 4, r"[0-9]{4}"),
    ("numeric", 12, r"[0-9]{12}"),
    ("alphanumeric", 4, r"[A-Za-z0-9]{4}"),
    ("alphanumeric", 12, r"[A-Za-z0-9]{12}"),
    ("Numeric", 6, r"[0-9]{6}"),
    ("ALPHANUMERIC", 10, r"[A-Za-z0-9]{10}"),
])
def test_code_alphabet_and_length(generate, code_for, typ, length, pattern):
    otp_id = generate(type=typ, length=length)["otpId"]
    assert re.fullmatch(pattern, code_for(otp_id))


@pytest.mark.parametrize("channel,destination", [
    ("EMAIL", "a@example.com"), ("Email", "a@example.com"),
    ("SMS", "+14155550123"), ("sMs", "+14155550123"),
])
def test_channel_case_insensitive(api, key, db, channel, destination):
    gen = check_generated(api("generate", gen_body(
        channel=channel, destination=destination), key), destination, 300)
    assert db("SELECT channel FROM otp.codes WHERE id = '%s'"
              % gen["otpId"]) == [[channel.lower()]]


def test_unknown_fields_ignored(api, key, code_for):
    body = gen_body(foo="bar", nested={"a": [1, 2, {"b": None}]}, otp="x",
                    success=False)
    gen = check_generated(api("generate", body, key), "user@example.com", 300)
    code = code_for(gen["otpId"])
    resp = api("validate", {"otpId": gen["otpId"], "otp": code,
                            "extra": [1, "two"]}, key)
    assert resp[0] == 200 and resp[2] == VALIDATED


def test_default_template_used_without_template_id(api, db, key):
    gen = check_generated(api("generate", gen_body(templateId=DROP), key),
                          "user@example.com", 300)
    rows = db("SELECT coalesce(template_id, '') FROM otp.outbox "
              "WHERE id = '%s'" % gen["otpId"])
    assert rows in ([[TEMPLATE_ID]], [[""]])


def test_no_template_falls_back(api, db, code_for):
    """A client with no template at all still gets codes (built-in one)."""
    name = "notpl-" + uuid.uuid4().hex[:8]
    k = db("SELECT otp.create_client('%s')" % name)[0][0]
    db("SELECT otp.add_provider('%s', 'sms', 'generic', 'file', "
       "'{\"path\": \"/dev/null\"}')" % name)
    gen = check_generated(api("generate", gen_body(
        channel="sms", destination="+4915112345678"), k),
        "+4915112345678", 300)
    assert re.fullmatch(r"[0-9]{6}", code_for(gen["otpId"]))


def test_provider_of_other_channel_is_not_found(api, db):
    name = "emailonly-" + uuid.uuid4().hex[:8]
    k = db("SELECT otp.create_client('%s')" % name)[0][0]
    db("SELECT otp.add_provider('%s', 'email', 'generic', 'file', "
       "'{\"path\": \"/dev/null\"}')" % name)
    assert_400(api("generate", gen_body(channel="sms",
                                        destination="+14155550123"), k),
               MSG["provider_unknown"])


def test_expires_max(api, key):
    check_generated(api("generate", gen_body(expiresInSeconds=86400), key),
                    "user@example.com", 86400)
    status, _, body = api("generate", gen_body(expiresInSeconds=86401), key)
    assert_400((status, _, body))
    assert "86400" in body["message"], body


def test_email_254_bytes_accepted(api, key):
    local = "a" * 64
    domain = ".".join(["b" * 63, "c" * 63, "d" * 57]) + ".com"
    email = local + "@" + domain
    assert len(email) == 254
    check_generated(api("generate", gen_body(destination=email), key),
                    email, 300)


def test_codes_and_ids_are_unique(api, key, code_for):
    ids, codes = set(), set()
    for _ in range(30):
        otp_id = api("generate", gen_body(type="alphanumeric", length=12),
                     key)[2]["otpId"]
        ids.add(otp_id)
        codes.add(code_for(otp_id))
    assert len(ids) == 30 and len(codes) == 30


def test_upper_case_otp_id_accepted(api, generate, code_for, key):
    otp_id = generate()["otpId"]
    resp = api("validate", {"otpId": otp_id.upper(),
                            "otp": code_for(otp_id)}, key)
    assert resp[0] == 200, resp


@pytest.mark.parametrize("otp_id", [
    "not-a-uuid", "", "7dd25d97-1ae3-49a7-8aa7-54211a3fecac-ff",
    "7dd25d971ae349a78aa754211a3fecac", "'; DROP TABLE otp.codes; --",
    str(uuid.uuid4()),
])
def test_validate_unknown_or_malformed_otp_id(api, key, db, otp_id):
    before = counts(db)
    status, _, body = api("validate", {"otpId": otp_id, "otp": "123456"}, key)
    if otp_id == "":
        assert_400((status, _, body), MSG["otp_id"])
    else:
        assert_400((status, _, body), MSG["invalid_otp"])
    assert counts(db)[:2] == before[:2]


def test_wrong_code(api, generate, code_for, key, db):
    otp_id = generate()["otpId"]
    code = code_for(otp_id)
    assert_400(api("validate", {"otpId": otp_id, "otp": wrong(code)}, key),
               MSG["invalid_otp"], [MSG["invalid_otp"]])
    assert_400(api("validate", {"otpId": otp_id, "otp": code + "0"}, key),
               MSG["invalid_otp"])
    assert db("SELECT failed_attempts FROM otp.codes WHERE id = '%s'"
              % otp_id) == [["2"]]
    resp = api("validate", {"otpId": otp_id, "otp": code}, key)
    assert resp[0] == 200, resp


def test_alphanumeric_compared_case_sensitively(api, generate, code_for, key):
    for _ in range(10):
        otp_id = generate(type="alphanumeric", length=12)["otpId"]
        code = code_for(otp_id)
        if code.swapcase() != code:
            break
    assert_400(api("validate", {"otpId": otp_id, "otp": code.swapcase()},
                   key), MSG["invalid_otp"])
    assert api("validate", {"otpId": otp_id, "otp": code}, key)[0] == 200


def test_hash_bound_to_its_row(api, generate, code_for, key, db):
    """A stored hash copied to another row does not validate there."""
    a = generate()["otpId"]
    b = generate()["otpId"]
    code_a = code_for(a)
    db("UPDATE otp.codes SET code_hash = (SELECT code_hash FROM otp.codes "
       "WHERE id = '%s') WHERE id = '%s'" % (a, b))
    assert_400(api("validate", {"otpId": b, "otp": code_a}, key),
               MSG["invalid_otp"])


# ---------------------------------------------------------------- locks

def test_lock_and_unlock(api, make_client, code_for, db):
    k = make_client(max_attempts=3, lock_seconds=2)
    otp_id = api("generate", gen_body(), k)[2]["otpId"]
    code = code_for(otp_id)
    for _ in range(2):
        assert_400(api("validate", {"otpId": otp_id, "otp": wrong(code)}, k),
                   MSG["invalid_otp"])
    status, _, body = api("validate", {"otpId": otp_id, "otp": wrong(code)},
                          k)
    locked_at = time.monotonic()
    assert status in (400, 429), body   # the attempt that reaches the limit
    # locked: even the right code is refused
    status, headers, body = api("validate", {"otpId": otp_id, "otp": code}, k)
    assert_error(status, body, 429, MSG["locked"])
    assert re.fullmatch(r"[0-9]+", headers.get("retry-after", "")), headers
    assert 1 <= int(headers["retry-after"]) <= 3, headers
    assert db("SELECT failed_attempts, locked_until > now() FROM otp.codes "
              "WHERE id = '%s'" % otp_id) == [["3", "t"]]
    # the lock expires; the code is still valid
    time.sleep(max(0.0, locked_at + 2.3 - time.monotonic()))
    resp = api("validate", {"otpId": otp_id, "otp": code}, k)
    assert resp[0] == 200 and resp[2] == VALIDATED, resp


def test_code_expiry(api, generate, code_for, key):
    otp_id = generate(expiresInSeconds=1)["otpId"]
    code = code_for(otp_id)
    time.sleep(2)
    assert_400(api("validate", {"otpId": otp_id, "otp": code}, key),
               MSG["invalid_otp"])


# ---------------------------------------------------------------- statuses

@pytest.mark.parametrize("path", ["generate", "validate"])
def test_missing_unknown_disabled_key(api, db, make_client, path):
    body = gen_body() if path == "generate" else \
        {"otpId": str(uuid.uuid4()), "otp": "123456"}
    for k in (None, "", "otpk_" + "0" * 64, "x" * 5000):
        status, headers, resp = api(path, body, k)
        assert status == 401, (k, resp)
        assert resp == KEY_ERROR
        assert headers.get("content-type", "").startswith("application/json")
    name = "disabled-" + uuid.uuid4().hex[:8]
    k = make_client(name)
    assert api("generate", gen_body(), k)[0] == 200
    db("SELECT otp.disable_client('%s')" % name)
    status, _, resp = api(path, body, k)
    assert status == 401 and resp == KEY_ERROR


def test_invalid_body_without_key_is_401(api):
    status, _, resp = api("generate", {"channel": 1}, None)
    assert status == 401 and resp == KEY_ERROR
    status, _, resp = api("generate", {"channel": 1}, "otpk_unknown")
    assert status == 401 and resp == KEY_ERROR


@pytest.fixture(scope="module")
def disabled_key(db, make_client):
    name = "disabled-" + uuid.uuid4().hex[:8]
    k = make_client(name)
    db("SELECT otp.disable_client('%s')" % name)
    return k


# Bodies otpd refuses before it looks at their fields; with a bad key each
# must answer 401 all the same.
REFUSED_BODIES = [
    ("not JSON", b"hello", None, 400),
    ("not an object", b"[1]", None, 400),
    ("trailing garbage", json.dumps(gen_body()).encode() + b"x", None, 400),
    ("text/plain", json.dumps(gen_body()).encode(),
     {"Content-Type": "text/plain"}, 415),
    ("form content type", b"channel=email",
     {"Content-Type": "application/x-www-form-urlencoded"}, 415),
]


@pytest.mark.parametrize("path", ["generate", "validate"])
@pytest.mark.parametrize("raw,headers,status", [c[1:] for c in REFUSED_BODIES],
                         ids=[c[0] for c in REFUSED_BODIES])
def test_bad_key_beats_bad_body(api, db, key, disabled_key, path, raw,
                                headers, status):
    before = counts(db)
    # with a good key the body is what is wrong ...
    resp = api(path, raw, key, headers=headers)
    assert_error(resp[0], resp[2], status)
    # ... with a bad one, the key
    for k in ("otpk_" + "0" * 64, disabled_key):
        status_k, hdrs, resp = api(path, raw, k, headers=headers)
        assert status_k == 401 and resp == KEY_ERROR, (k, status_k, resp)
        assert hdrs.get("content-type", "").startswith("application/json")
    assert counts(db) == before


@pytest.mark.parametrize("path", ["generate", "validate"])
def test_oversized_body_with_bad_key(api, db, key, disabled_key, path):
    """nginx refuses a body over its client_max_body_size (16k, the same
    limit as otpd's body_limit) itself, before otpd or its key check sees
    it: through the whole stack that is a 413 for every key.  otpd's own
    answer to it is checked over FastCGI below."""
    big = json.dumps(gen_body(padding="x" * 20000))
    before = counts(db)
    for k in (key, "otpk_" + "0" * 64, disabled_key):
        status, _, resp = api(path, big, k)
        assert_error(status, resp, 413, "Request body is too large.")
    assert counts(db) == before


def fcgi_post(stack, path, key, body, content_length):
    """POST straight to otpd over FastCGI (no nginx in between), so that
    an oversized or mis-announced body reaches it; (status, JSON answer)."""
    with socket.create_connection(("127.0.0.1", stack.otpd_port),
                                  timeout=20) as sock:
        fcgi_begin(sock, "POST", "/otp/" + path, body, content_length,
                   headers={"HTTP_X_API_KEY": key})
        status, out = fcgi_finish(sock, body)
    return status, json.loads(out.split(b"\r\n\r\n", 1)[1].decode())


@pytest.mark.parametrize("path", ["generate", "validate"])
@pytest.mark.parametrize("body,content_length,status", [
    (b"", 16385, 413),
    (b'{"channel":"email"}', 100, 400),
    (b'{}  {}', 2, 400),
], ids=["over the limit", "shorter than announced",
        "longer than announced"])
def test_bad_key_beats_body_length_at_otpd(stack, db, key, disabled_key,
                                           path, body, content_length,
                                           status):
    before = counts(db)
    got, resp = fcgi_post(stack, path, key, body, content_length)
    assert got == status, resp
    assert_error(got, resp, status)
    for k in ("otpk_" + "0" * 64, disabled_key):
        got, resp = fcgi_post(stack, path, k, body, content_length)
        assert got == 401 and resp == KEY_ERROR, (k, got, resp)
    assert counts(db) == before


def test_rotated_key(api, db, make_client):
    name = "rotate-" + uuid.uuid4().hex[:8]
    old = make_client(name)
    assert api("generate", gen_body(), old)[0] == 200
    new = db("SELECT otp.rotate_api_key('%s')" % name)[0][0]
    assert api("generate", gen_body(), old)[0] == 401
    assert api("generate", gen_body(), new)[0] == 200


@pytest.mark.parametrize("path", ["/otp/nope", "/otp/generate/x", "/otp/",
                                  "/otp", "/", "/index.html",
                                  "/otp/Generate"])
def test_unknown_path(stack, path, key):
    status, headers, body = stack.api(path, gen_body(), key)
    assert_error(status, body, 404)
    assert headers.get("content-type", "").startswith("application/json")


@pytest.mark.parametrize("method,path,allow", [
    ("GET", "/otp/generate", "POST"),
    ("GET", "/otp/validate", "POST"),
    ("PUT", "/otp/generate", "POST"),
    ("DELETE", "/otp/validate", "POST"),
    ("POST", "/otp/health", "GET"),
])
def test_wrong_method(api, key, method, path, allow):
    body = b"{}" if method in ("PUT", "POST") else None
    status, headers, resp = api(path, body, key, method=method)
    assert_error(status, resp, 405)
    assert allow in [m.strip() for m in headers.get("allow", "").split(",")]


def test_body_limit(api, key, db):
    base = json.dumps(gen_body())
    # exactly 16 KiB is accepted: padding after the object is whitespace
    body = base + " " * (16384 - len(base))
    assert len(body) == 16384
    assert api("generate", body, key)[0] == 200
    before = counts(db)
    status, _, resp = api("generate", body + " ", key)
    assert_error(status, resp, 413)
    big = json.dumps(gen_body(padding="x" * 100000))
    status, _, resp = api("generate", big, key)
    assert_error(status, resp, 413)
    assert counts(db) == before


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-"
                                   "urlencoded", "multipart/form-data",
                                   "application/jsonx"])
def test_unsupported_content_type(api, key, db, ctype):
    before = counts(db)
    status, headers, resp = api("generate", gen_body(), key,
                                headers={"Content-Type": ctype})
    assert_error(status, resp, 415)
    assert headers.get("content-type", "").startswith("application/json")
    assert counts(db) == before


@pytest.mark.parametrize("ctype", [None, "application/json",
                                   "application/json; charset=utf-8",
                                   "Application/JSON"])
def test_json_content_types_accepted(api, key, ctype):
    status, _, resp = api("generate", gen_body(), key,
                          headers={"Content-Type": ctype})
    assert status == 200, resp


def test_health(api):
    status, headers, body = api("/otp/health")
    assert status == 200 and body == {"status": "ok"}
    assert headers.get("content-type", "").startswith("application/json")
    status, _, body = api("/otp/health?verbose=1")
    assert status == 200 and body == {"status": "ok"}


# ---------------------------------------------------------------- tenants

def test_tenant_isolation(api, make_client, code_for, db):
    ka, kb = make_client(), make_client()
    otp_id = api("generate", gen_body(), ka)[2]["otpId"]
    code = code_for(otp_id)
    attempts_before = counts(db)[2]
    # B cannot burn A's attempts, nor validate A's code
    for _ in range(7):
        assert_400(api("validate", {"otpId": otp_id, "otp": wrong(code)},
                       kb), MSG["invalid_otp"])
    assert_400(api("validate", {"otpId": otp_id, "otp": code}, kb),
               MSG["invalid_otp"])
    assert db("SELECT failed_attempts, consumed_at IS NULL, "
              "locked_until IS NULL FROM otp.codes WHERE id = '%s'"
              % otp_id) == [["0", "t", "t"]]
    assert db("SELECT count(*) FROM otp.attempts a JOIN otp.codes c "
              "ON c.id = a.code_id AND a.client_id = c.client_id "
              "WHERE a.code_id = '%s'" % otp_id) == [["0"]]
    assert counts(db)[2] >= attempts_before
    resp = api("validate", {"otpId": otp_id, "otp": code}, ka)
    assert resp[0] == 200 and resp[2] == VALIDATED, resp


# ---------------------------------------------------------------- concurrency

def run_parallel(n, fn):
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = e
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    return results


def test_concurrent_right_code_single_use(api, generate, code_for, key):
    otp_id = generate()["otpId"]
    code = code_for(otp_id)
    results = run_parallel(20, lambda i: api(
        "validate", {"otpId": otp_id, "otp": code}, key))
    statuses = sorted(r[0] for r in results)
    assert statuses.count(200) == 1, statuses
    assert statuses.count(400) == 19, statuses
    for r in results:
        if r[0] == 400:
            assert r[2]["message"] == MSG["invalid_otp"]


def concurrent_wrong_guesses(api, generate, code_for, key, db, n=30):
    """n simultaneous wrong guesses at a fresh code (max_attempts 5) while
    a watcher samples failed_attempts; returns (otp_id, code, statuses,
    samples)."""
    otp_id = generate()["otpId"]
    code = code_for(otp_id)
    seen = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            seen.append(int(db("SELECT failed_attempts FROM otp.codes "
                               "WHERE id = '%s'" % otp_id)[0][0]))
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        results = run_parallel(n, lambda i: api(
            "validate", {"otpId": otp_id, "otp": wrong(code)}, key))
    finally:
        stop.set()
        watcher.join()
    return otp_id, code, [r[0] for r in results], seen


def test_concurrent_wrong_codes_never_exceed_max(api, generate, code_for,
                                                 key, db):
    otp_id, code, statuses, seen = concurrent_wrong_guesses(
        api, generate, code_for, key, db)
    assert set(statuses) <= {400, 429}, statuses
    final = int(db("SELECT failed_attempts FROM otp.codes WHERE id = '%s'"
                   % otp_id)[0][0])
    assert final == 5
    assert max(seen + [final]) <= 5, seen
    assert int(db("SELECT count(*) FROM otp.attempts WHERE code_id = '%s' "
                  "AND outcome = 'mismatch'" % otp_id)[0][0]) <= 5
    # and it stays locked, also for the right code
    assert api("validate", {"otpId": otp_id, "otp": code}, key)[0] == 429


def test_concurrent_wrong_codes_answers_and_attempt_rows(api, generate,
                                                         code_for, key, db):
    """Guesses that lose the race to the lock are answered as locked (429),
    and every validation leaves its attempt row, whatever its outcome."""
    otp_id, _, statuses, _ = concurrent_wrong_guesses(
        api, generate, code_for, key, db)
    assert statuses.count(400) <= 5, sorted(statuses)
    assert statuses.count(429) >= 25, sorted(statuses)
    assert db("SELECT count(*) FROM otp.attempts WHERE code_id = '%s'"
              % otp_id) == [["30"]]


# ---------------------------------------------------------------- bad input

VALID = json.dumps(gen_body())
NEST = 1000

BAD_GENERATE = [
    # (id, raw body, expected status, exact message or None)
    ("not json", b"hello", 400, None),
    ("empty body", b"", 400, None),
    ("truncated", b'{"channel": "email"', 400, None),
    ("single quotes", b"{'channel': 'email'}", 400, None),
    ("bare key", b'{channel: "email"}', 400, None),
    ("trailing comma", VALID[:-1].encode() + b",}", 400, None),
    ("comment", b"/* c */" + VALID.encode(), 400, None),
    ("NaN", json.dumps(gen_body()).replace("300", "NaN").encode(), 400, None),
    ("top-level array", b"[]", 400, MSG["not_object"]),
    ("array of body", ("[%s]" % VALID).encode(), 400, MSG["not_object"]),
    ("top-level string", b'"email"', 400, MSG["not_object"]),
    ("top-level number", b"42", 400, MSG["not_object"]),
    ("top-level null", b"null", 400, MSG["not_object"]),
    ("top-level true", b"true", 400, MSG["not_object"]),
    ("trailing garbage", VALID.encode() + b"x", 400, None),
    ("two objects", VALID.encode() + b"{}", 400, None),
    ("trailing NUL", VALID.encode() + b"\x00", 400, None),
    ("deep nesting object", (b'{"a":' * NEST) + b"1" + (b"}" * NEST), 400,
     None),
    ("deep nesting array", b'{"a":' + (b"[" * NEST) + (b"]" * NEST) + b"}",
     400, None),
    ("deep nesting unclosed", b"[" * 100000, 413, None),
    ("invalid utf-8 byte", VALID.replace("user@", "us\udcffer@").encode(
        "utf-8", "surrogateescape"), 400, None),
    ("invalid utf-8 in unknown field",
     VALID[:-1].encode() + b', "x": "\xc3\x28"}', 400, None),
    ("overlong utf-8", VALID[:-1].encode() + b', "x": "\xc0\xaf"}', 400,
     None),
    ("utf-8 surrogate", VALID[:-1].encode() + b', "x": "\xed\xa0\x80"}', 400,
     None),
    ("utf-8 beyond U+10FFFF", VALID[:-1].encode() + b', "x": "\xf4\x90\x80'
     b'\x80"}', 400, None),
    ("latin-1 body", VALID.replace("user@", "us\xe9r@").encode("latin-1"),
     400, None),
    ("raw control char in string", VALID.replace("user@", "us\ter@").encode(),
     400, None),
]


def bad_field_cases():
    """(id, body dict, exact message or None, word the message must hold)"""
    cases = []
    for name, value in (("number", 1), ("array", ["email"]),
                        ("object", {"x": 1}), ("bool", True),
                        ("other", "fax"), ("empty", "")):
        cases.append(("channel " + name, gen_body(channel=value),
                      MSG["channel"], None))
    for field, word in (("provider", "provider"),
                        ("destination", "destination"), ("type", "type")):
        for name, value in (("number", 5), ("array", ["x"]),
                            ("object", {}), ("bool", False)):
            cases.append(("%s %s" % (field, name),
                          gen_body(**{field: value}), None, word))
    for field, word in (("length", "length"),
                        ("expiresInSeconds", "expiresinseconds")):
        for name, value in (("string", "8"), ("float", 8.0),
                            ("fraction", 8.5), ("exponent", "RAW:8e0"),
                            ("array", [8]), ("bool", True),
                            ("negative", -8), ("huge", "RAW:1" + "0" * 30),
                            ("int64 max", 9223372036854775807),
                            ("int64 min - 1", "RAW:-9223372036854775809"),
                            ("2^32 + 6", 4294967302),
                            ("2^64 + 6", 18446744073709551622),
                            ("1e400", "RAW:1e400")):
            cases.append(("%s %s" % (field, name),
                          gen_body(**{field: value}), None, word))
    cases.append(("templateId number", gen_body(templateId=5), None,
                  "templateid"))
    cases.append(("templateId empty", gen_body(templateId=""), None,
                  "template"))
    cases.append(("templateId long", gen_body(templateId="t" * 201), None,
                  "template"))
    cases.append(("provider empty", gen_body(provider=""), MSG["provider"],
                  None))
    # a name too long to be stored was still given: it is not found
    cases.append(("provider long", gen_body(provider="p" * 201),
                  MSG["provider_unknown"], None))
    # beyond int64, the sign still picks the message
    for name, value, msg in (
            ("huge negative", "RAW:-99999999999999999999",
             MSG["expires_positive"]),
            ("int64 min", "RAW:-9223372036854775808",
             MSG["expires_positive"]),
            ("int64 min - 1", "RAW:-9223372036854775809",
             MSG["expires_positive"]),
            ("huge", "RAW:99999999999999999999",
             "ExpiresInSeconds must be at most 86400."),
            ("2^64 + 6", "RAW:18446744073709551622",
             "ExpiresInSeconds must be at most 86400.")):
        cases.append(("expiresInSeconds %s: message" % name,
                      gen_body(expiresInSeconds=value), msg, None))
    for name, value in (("huge negative", "RAW:-99999999999999999999"),
                        ("int64 min", "RAW:-9223372036854775808"),
                        ("huge", "RAW:99999999999999999999"),
                        ("int64 max", "RAW:9223372036854775807")):
        cases.append(("length %s: message" % name, gen_body(length=value),
                      MSG["length_range"], None))
    # nulls count as missing
    for field, msg in (("channel", "channel"), ("provider", "provider"),
                       ("destination", "destination"), ("type", "type"),
                       ("length", "length"),
                       ("expiresInSeconds", "expires")):
        cases.append(("%s null" % field, gen_body(**{field: None}),
                      MSG[msg], None))
    cases.append(("all null", {k: None for k in gen_body()}, MSG["channel"],
                  None))
    # U+0000 inside a field
    for field in ("destination", "provider", "channel", "type"):
        v = gen_body()[field]
        cases.append(("%s with U+0000" % field,
                      gen_body(**{field: v[:2] + "\u0000" + v[2:]}),
                      None, None))
    cases.append(("templateId with U+0000",
                  gen_body(templateId=TEMPLATE_ID + "\u0000x"), None, None))
    cases.append(("lone surrogate escape",
                  gen_body(destination="us\ud800er@example.com"), None, None))
    emails = {
        "CRLF header injection": "a@example.com\r\nBcc: x@evil.example",
        "LF": "a@example.com\n",
        "CR": "a\r@example.com",
        "space inside": "a b@example.com",
        "leading space": " a@example.com",
        "trailing space": "a@example.com ",
        "tab": "a\t@example.com",
        "no at": "testejemplo.com",
        "two ats": "a@b@example.com",
        "empty local": "@example.com",
        "no dot in domain": "a@localhost",
        "empty label": "a@example..com",
        "leading dot domain": "a@.example.com",
        "empty domain": "a@",
        "255 bytes": "a" * 64 + "@" + ".".join(["b" * 63, "c" * 63,
                                                "d" * 58]) + ".com",
        "very long": "a" * 5000 + "@example.com",
        "DEL char": "a\x7f@example.com",
        "U+2028": "a\u2028@example.com",
    }
    for name, email in emails.items():
        cases.append(("email " + name, gen_body(destination=email),
                      MSG["email"], None))
    phones = {
        "no plus": "573001112233",
        "leading zero": "+0573001112233",
        "6 digits": "+123456",
        "16 digits": "+1234567890123456",
        "spaces": "+57 300 111 2233",
        "dashes": "+57-300-111-2233",
        "double plus": "++573001112233",
        "letter": "+57300111223a",
        "plus only": "+",
        "trailing LF": "+573001112233\n",
        "fullwidth digits": "+\uff15\uff17\uff13\uff10\uff10\uff11\uff11"
                            "\uff11\uff12\uff12",
        "arabic-indic digits": "+\u0665\u0667\u0663\u0660\u0660\u0661\u0661"
                               "\u0661\u0662",
        "email": "test@ejemplo.com",
        "parentheses": "+1(415)5550123",
    }
    for name, phone in phones.items():
        cases.append(("phone " + name,
                      gen_body(channel="sms", destination=phone),
                      MSG["phone"], None))
    return cases


BAD_FIELDS = bad_field_cases()


def encode_body(body):
    """JSON text of body, with "RAW:..." values spliced in unquoted."""
    text = json.dumps(body)
    return re.sub(r'"RAW:([^"]*)"', r"\1", text).encode()


def check_refused(api, db, key, path, raw, want_status=None, message=None,
                  word=None):
    before = counts(db)
    status, headers, resp = api(path, raw, key)
    assert 400 <= status < 500, (status, resp)
    if want_status is not None:
        assert status == want_status, (status, resp)
    assert headers.get("content-type", "").startswith("application/json")
    assert_error(status, resp, status, message)
    if word is not None:
        assert word in resp["message"].lower().replace(" ", ""), resp
    assert counts(db) == before


@pytest.mark.parametrize("raw,status,message", [c[1:] for c in BAD_GENERATE],
                         ids=[c[0] for c in BAD_GENERATE])
def test_bad_generate_body(api, db, key, raw, status, message):
    check_refused(api, db, key, "generate", raw, status, message)


@pytest.mark.parametrize("body,message,word", [c[1:] for c in BAD_FIELDS],
                         ids=[c[0] for c in BAD_FIELDS])
def test_bad_generate_field(api, db, key, body, message, word):
    check_refused(api, db, key, "generate", encode_body(body), 400, message,
                  word)


@pytest.mark.parametrize("raw,status,message", [c[1:] for c in BAD_GENERATE],
                         ids=[c[0] for c in BAD_GENERATE])
def test_bad_validate_body(api, db, key, raw, status, message):
    check_refused(api, db, key, "validate", raw, status, message)


@pytest.fixture(scope="module")
def live_code(api, key, code_for):
    """A code that bad validate bodies aim at; it must stay untouched."""
    otp_id = api("generate", gen_body(), key)[2]["otpId"]
    return otp_id, code_for(otp_id)


@pytest.mark.parametrize("field,value,message,word", [
    ("otpId", None, MSG["otp_id"], None),
    ("otp", None, MSG["otp"], None),
    ("otpId", 123, None, "otpid"),
    ("otp", "RAW:123456", None, "otp"),
    ("otp", ["123456"], None, "otp"),
    ("otp", {"code": "1"}, None, "otp"),
    ("otp", True, None, "otp"),
    ("otp", 123456.0, None, "otp"),
    ("otpId", ["x"], None, "otpid"),
    ("otp", "", MSG["otp"], None),
    ("otp", "12\u00003456", None, None),
    ("otpId", "ID\u0000", None, None),
])
def test_bad_validate_field(api, db, key, live_code, field, value, message,
                            word):
    otp_id, code = live_code
    body = {"otpId": otp_id, "otp": code}
    if field == "otpId" and value == "ID\u0000":
        value = otp_id + "\u0000"
    body[field] = value
    check_refused(api, db, key, "validate", encode_body(body), 400, message,
                  word)
    assert db("SELECT failed_attempts, consumed_at IS NULL FROM otp.codes "
              "WHERE id = '%s'" % otp_id) == [["0", "t"]]


def test_live_code_still_valid_after_bad_input(api, key, live_code):
    otp_id, code = live_code
    resp = api("validate", {"otpId": otp_id, "otp": code}, key)
    assert resp[0] == 200, resp


@pytest.mark.parametrize("ctype", ["text/plain", "text/html"])
def test_bad_content_type_writes_nothing(api, db, key, live_code, ctype):
    otp_id, code = live_code
    before = counts(db)
    for path, body in (("generate", gen_body()),
                       ("validate", {"otpId": otp_id, "otp": code})):
        status, _, resp = api(path, body, key,
                              headers={"Content-Type": ctype})
        assert_error(status, resp, 415)
    assert counts(db) == before


# ---------------------------------------------------------------- secrets

def test_dump_and_logs_hold_no_codes_or_keys(stack, api, make_client,
                                             code_for):
    k = make_client()
    ids, codes = [], []
    for channel, dest in (("email", "dump@example.com"),
                          ("sms", "+4915112345678")):
        for typ, length in (("alphanumeric", 12), ("numeric", 12)):
            otp_id = api("generate", gen_body(
                channel=channel, destination=dest, type=typ, length=length),
                k)[2]["otpId"]
            ids.append(otp_id)
            codes.append(code_for(otp_id))
    assert len(set(codes)) == len(codes)
    # one validated, one failed try: attempts hold rows too
    assert api("validate", {"otpId": ids[0], "otp": codes[0]}, k)[0] == 200
    assert api("validate", {"otpId": ids[1], "otp": wrong(codes[1])},
               k)[0] == 400
    pg = stack.pg
    p = subprocess.run([pg.bindir + "/pg_dump", "--no-owner",
                        "-d", pg.dsn(DB_NAME)],
                       capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    dump = p.stdout
    assert b"otp.codes" in dump and len(dump) > 1000
    for secret in codes + [k]:
        assert secret.encode() not in dump, "found a secret in the dump"
    # nor in what the servers logged
    with open(stack.otpd_log, "rb") as f:
        otpd_log = f.read()
    with open(stack.nginx_access_log, "rb") as f:
        access_log = f.read()
    for secret in codes + [k]:
        assert secret.encode() not in otpd_log, "found a secret in otpd's log"
        assert secret.encode() not in access_log


# ---------------------------------------------------------------- outage
# Keep this last: it stops and restarts the shared PostgreSQL server.

def test_database_outage_and_recovery(stack, api, key, code_for):
    otp_id = api("generate", gen_body(), key)[2]["otpId"]
    code = code_for(otp_id)
    otpd_pid = stack.otpd.pid
    stack.pg_pause()
    try:
        for _ in range(3):   # every worker, whatever its state
            status, headers, body = api("generate", gen_body(), key)
            assert status == 503 and body == UNAVAILABLE, (status, body)
            assert headers.get("content-type", "").startswith(
                "application/json")
            status, _, body = api("/otp/health")
            assert status == 503 and body == UNAVAILABLE, (status, body)
            status, _, body = api("validate", {"otpId": otp_id, "otp": code},
                                  key)
            assert status == 503 and body == UNAVAILABLE, (status, body)
    finally:
        stack.pg_resume()
    # every worker reconnects: a run of answers longer than the number of
    # workers, all 200
    deadline = time.monotonic() + 20
    good = 0
    while good < 8:
        assert time.monotonic() < deadline, "otpd did not recover"
        status, _, body = api("/otp/health")
        if status == 200:
            assert body == {"status": "ok"}
            good += 1
        else:
            assert status == 503 and body == UNAVAILABLE, (status, body)
            good = 0
            time.sleep(0.2)
    assert api("generate", gen_body(), key)[0] == 200
    resp = api("validate", {"otpId": otp_id, "otp": code}, key)
    assert resp[0] == 200 and resp[2] == VALIDATED, resp
    assert stack.otpd.poll() is None and stack.otpd.pid == otpd_pid


def test_first_write_after_database_restart(stack, api, key, code_for):
    """A worker whose connection the server closed while it was idle
    reconnects before sending a write, so no request sees a 503."""
    otp_ids = [api("generate", gen_body(), key)[2]["otpId"] for _ in range(4)]
    codes = [code_for(i) for i in otp_ids]
    # every worker holds a live connection (8 workers, see conftest)
    deadline = time.monotonic() + 30
    while stack.db("SELECT count(*) FROM pg_stat_activity"
                   " WHERE application_name = 'otpd'") != [["8"]]:
        assert time.monotonic() < deadline, "otpd workers not connected"
        assert api("/otp/health")[0] == 200
    stack.pg_pause()
    stack.pg_resume()
    for otp_id, code in zip(otp_ids, codes):
        status, _, body = api("generate", gen_body(), key)
        assert status == 200, (status, body)
        resp = api("validate", {"otpId": otp_id, "otp": code}, key)
        assert resp[0] == 200 and resp[2] == VALIDATED, resp
