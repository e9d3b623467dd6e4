"""test_sql.py: otpd-migrate and the DBA functions of sql/002_functions.sql,
against a throwaway PostgreSQL cluster (see pgcluster.py).

Environment: OTPD_MIGRATE (default src/otpd-migrate of the repo, the
autotools build output) and OTPD_SQLDIR (default the repo's sql/).
"""

import hashlib
import itertools
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pgcluster import PgCluster  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MIGRATE = os.environ.get("OTPD_MIGRATE", str(REPO / "src" / "otpd-migrate"))
SQLDIR = Path(os.environ.get("OTPD_SQLDIR", str(REPO / "sql")))
SQL_FILES = sorted(p.name for p in SQLDIR.iterdir()
                   if re.fullmatch(r"[0-9]{3}_.*\.sql", p.name))
LAST_VERSION = int(SQL_FILES[-1][:3])
TEMPLATE_DB = "otp_template"
_db_numbers = itertools.count(1)


def lit(s):
    """s as a SQL string literal (NULL for None)."""
    if s is None:
        return "NULL"
    return "'" + s.replace("'", "''") + "'"


def migrate(*args, env=None):
    return subprocess.run([MIGRATE, *args], capture_output=True, text=True,
                          env=env, timeout=120)


class Db:
    """One database of the test cluster."""

    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name
        self.dsn = cluster.dsn(name)

    def sql(self, q):
        return self.cluster.psql(q, dbname=self.name)

    def val(self, q):
        return self.sql(q).strip()

    def rows(self, q):
        return [line.split("|") for line in self.sql(q).splitlines() if line]

    def error(self, q):
        """Run q, which must fail; the verbose error text (with SQLSTATE)."""
        rc, out, err = self.cluster.psql("\\set VERBOSITY verbose\n" + q,
                                         dbname=self.name, check=False)
        assert rc != 0, "expected an error, got: %r" % out
        return err

    def expect_error(self, q, sqlstate, text):
        err = self.error(q)
        assert "ERROR:  %s: " % sqlstate in err, err
        assert text in err, err
        assert "HINT:" in err, err
        return err


@pytest.fixture(scope="module")
def cluster():
    if not os.access(MIGRATE, os.X_OK):
        pytest.fail("otpd-migrate not found at %s: build it or set "
                    "OTPD_MIGRATE" % MIGRATE)
    pg = PgCluster().start()
    try:
        pg.create_database(TEMPLATE_DB)
        r = migrate("-d", pg.dsn(TEMPLATE_DB), "-s", str(SQLDIR))
        assert r.returncode == 0, r.stderr
        yield pg
    finally:
        pg.stop()


@pytest.fixture(autouse=True)
def server_log_on_failure(request, cluster):
    """Print what the server logged during a test that failed."""
    failed = request.session.testsfailed
    pos = cluster.log_position()
    yield
    if request.session.testsfailed > failed:
        print("--- PostgreSQL server log during %s ---\n%s"
              % (request.node.name, cluster.read_log(pos)))


@pytest.fixture
def db(cluster):
    """A fresh, migrated database."""
    name = "t%d" % next(_db_numbers)
    cluster.create_database(name, template=TEMPLATE_DB)
    return Db(cluster, name)


@pytest.fixture
def empty_db(cluster):
    """A fresh database with nothing in it."""
    name = "e%d" % next(_db_numbers)
    cluster.create_database(name)
    return Db(cluster, name)


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


# --- otpd-migrate ---------------------------------------------------------

def test_migrate_fresh_database_applies_every_file(empty_db):
    r = migrate("-d", empty_db.dsn, "-s", str(SQLDIR))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == (
        ["applied %s" % f for f in SQL_FILES]
        + ["schema version %d" % LAST_VERSION])
    assert r.stderr == ""
    assert empty_db.rows("SELECT version, name FROM otp.schema_version "
                         "ORDER BY version") == [
        [str(int(f[:3])), f] for f in SQL_FILES]


def test_migrate_twice_applies_nothing(empty_db):
    assert migrate("-d", empty_db.dsn, "-s", str(SQLDIR)).returncode == 0
    before = empty_db.rows("SELECT * FROM otp.schema_version ORDER BY 1")
    r = migrate("-d", empty_db.dsn, "-s", str(SQLDIR))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "schema version %d\n" % LAST_VERSION
    assert empty_db.rows("SELECT * FROM otp.schema_version ORDER BY 1") \
        == before


def test_migrate_status_changes_nothing(empty_db):
    r = migrate("-d", empty_db.dsn, "-s", str(SQLDIR), "--status")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == (
        ["schema version 0"] + ["pending %s" % f for f in SQL_FILES])
    assert empty_db.val("SELECT to_regnamespace('otp') IS NULL") == "t"

    assert migrate("-d", empty_db.dsn, "-s", str(SQLDIR)).returncode == 0
    r = migrate("-d", empty_db.dsn, "-s", str(SQLDIR), "--status")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "schema version %d\n" % LAST_VERSION


def test_migrate_uses_libpq_environment_by_default(cluster, empty_db):
    env = cluster.env(empty_db.name)
    r = migrate("-s", str(SQLDIR), env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("schema version %d\n" % LAST_VERSION)


def test_migrate_failed_file_is_rolled_back(empty_db, tmp_path):
    shutil.copy(SQLDIR / "001_schema.sql", tmp_path)
    bad = tmp_path / "002_bad.sql"
    bad.write_text("CREATE TABLE otp.half_done (x int);\n"
                   "SELECT 1;\n"
                   "SELEC broken;\n")
    r = migrate("-d", empty_db.dsn, "-s", str(tmp_path))
    assert r.returncode == 1
    assert r.stdout == "applied 001_schema.sql\n"
    assert r.stderr.startswith(
        'otpd-migrate: could not apply 002_bad.sql: syntax error at or '
        'near "SELEC" (line 3)\n'), r.stderr
    assert empty_db.val("SELECT string_agg(name, ',') "
                        "FROM otp.schema_version") == "001_schema.sql"
    assert empty_db.val("SELECT to_regclass('otp.half_done') IS NULL") == "t"

    bad.write_text("CREATE TABLE otp.half_done (x int);\n")
    r = migrate("-d", empty_db.dsn, "-s", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "applied 002_bad.sql\nschema version 2\n"


def test_migrate_error_shows_detail_and_hint(empty_db, tmp_path):
    (tmp_path / "001_fail.sql").write_text(
        "DO $$ BEGIN RAISE EXCEPTION 'boom' USING HINT = 'try again'; "
        "END $$;")
    r = migrate("-d", empty_db.dsn, "-s", str(tmp_path))
    assert r.returncode == 1
    assert r.stderr == ("otpd-migrate: could not apply 001_fail.sql: boom\n"
                        "HINT: try again\n")


def test_migrate_refuses_files_that_end_the_transaction(empty_db, tmp_path):
    (tmp_path / "001_commit.sql").write_text(
        "CREATE TABLE public.t1 (x int);\nCOMMIT;\n")
    r = migrate("-d", empty_db.dsn, "-s", str(tmp_path))
    assert r.returncode == 1
    assert "could not apply 001_commit.sql: the file ended the " \
        "transaction" in r.stderr
    assert empty_db.val("SELECT count(*) FROM otp.schema_version") == "0"


def test_migrate_skips_other_names(empty_db, tmp_path):
    shutil.copy(SQLDIR / "001_schema.sql", tmp_path)
    for name in ("README", "01_short.sql", "002-dash.sql",
                 "003_x.sql.orig", "abc_x.sql", "004_x.SQL", ".005_x.sql"):
        (tmp_path / name).write_text("this is not SQL;\n")
    r = migrate("-d", empty_db.dsn, "-s", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "applied 001_schema.sql\nschema version 1\n"


def test_migrate_empty_file_is_applied(empty_db, tmp_path):
    (tmp_path / "007_nothing.sql").write_text("-- nothing yet\n")
    r = migrate("-d", empty_db.dsn, "-s", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "applied 007_nothing.sql\nschema version 7\n"


def test_migrate_refuses_duplicate_numbers(empty_db, tmp_path):
    (tmp_path / "001_a.sql").write_text("SELECT 1;\n")
    (tmp_path / "001_b.sql").write_text("SELECT 1;\n")
    r = migrate("-d", empty_db.dsn, "-s", str(tmp_path))
    assert r.returncode == 1
    assert "have the same number" in r.stderr
    assert r.stdout == ""


def test_migrate_concurrent_runs_apply_each_file_once(empty_db):
    procs = [subprocess.Popen([MIGRATE, "-d", empty_db.dsn, "-s",
                               str(SQLDIR)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    applied = sorted(line for out, _ in outs for line in out.splitlines()
                     if line.startswith("applied "))
    assert applied == sorted("applied %s" % f for f in SQL_FILES)


def test_migrate_connection_failure(tmp_path):
    r = migrate("-d", "host=%s port=1 connect_timeout=5" % tmp_path,
                "-s", str(SQLDIR))
    assert r.returncode == 1
    assert r.stderr.startswith(
        "otpd-migrate: could not connect to the database: "), r.stderr


def test_migrate_missing_sqldir(empty_db, tmp_path):
    r = migrate("-d", empty_db.dsn, "-s", str(tmp_path / "nope"))
    assert r.returncode == 1
    assert r.stderr.startswith("otpd-migrate: could not open directory"), \
        r.stderr


def test_migrate_help_version_and_bad_usage():
    r = migrate("--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: otpd-migrate")
    r = migrate("--version")
    assert r.returncode == 0
    assert re.fullmatch(r"otpd-migrate \S+\n", r.stdout)
    r = migrate("--bogus")
    assert r.returncode == 1 and "usage:" in r.stderr
    r = migrate("extra")
    assert r.returncode == 1 and "unexpected argument" in r.stderr


def test_functions_file_can_be_rerun_by_hand(db):
    # CREATE OR REPLACE throughout: a DBA may psql -f it again
    db.sql((SQLDIR / "002_functions.sql").read_text())
    db.sql((SQLDIR / "002_functions.sql").read_text())
    assert db.val("SELECT otp.create_client('after-rerun') LIKE 'otpk_%'") \
        == "t"


# --- clients and API keys ---------------------------------------------------

KEY_RE = re.compile(r"otpk_[0-9a-f]{64}")


def test_create_client_returns_key_and_stores_only_its_hash(cluster, db):
    key = db.val("SELECT otp.create_client('acme')")
    assert KEY_RE.fullmatch(key), key
    assert db.rows("SELECT name, encode(api_key_hash, 'hex'), enabled "
                   "FROM otp.clients") == [["acme", sha256_hex(key), "t"]]
    assert db.val("SELECT encode(otp.api_key_hash(%s), 'hex')" % lit(key)) \
        == sha256_hex(key)
    # the key is nowhere in the database, in any form
    dump = subprocess.run(
        [os.path.join(cluster.bindir, "pg_dump"), "-d", db.dsn],
        capture_output=True, text=True, check=True).stdout
    assert sha256_hex(key) in dump
    assert key not in dump
    assert key[len("otpk_"):] not in dump


def test_create_client_keys_are_distinct(db):
    keys = db.val("SELECT string_agg(otp.create_client('c' || i), ' ') "
                  "FROM generate_series(1, 20) i").split()
    assert len(set(keys)) == 20
    assert all(KEY_RE.fullmatch(k) for k in keys)
    assert db.val("SELECT count(DISTINCT api_key_hash) FROM otp.clients") \
        == "20"


def test_create_client_twice_fails(db):
    db.sql("SELECT otp.create_client('acme')")
    db.expect_error("SELECT otp.create_client('acme')", "23505",
                    'client "acme" already exists')
    assert db.val("SELECT count(*) FROM otp.clients") == "1"


@pytest.mark.parametrize("name", ["''", "NULL", "repeat('x', 201)"])
def test_create_client_bad_name(db, name):
    db.expect_error("SELECT otp.create_client(%s)" % name, "22023",
                    "invalid client name")


def test_rotate_api_key_invalidates_the_old_key(db):
    old = db.val("SELECT otp.create_client('acme')")
    new = db.val("SELECT otp.rotate_api_key('acme')")
    assert KEY_RE.fullmatch(new) and new != old
    assert db.val("SELECT encode(api_key_hash, 'hex') FROM otp.clients") \
        == sha256_hex(new)
    # what otpd does with a presented key: look up its hash
    lookup = ("SELECT count(*) FROM otp.clients WHERE enabled "
              "AND api_key_hash = sha256(convert_to(%s, 'UTF8'))")
    assert db.val(lookup % lit(old)) == "0"
    assert db.val(lookup % lit(new)) == "1"
    assert db.val("SELECT key_rotated_at > created_at "
                  "FROM otp.clients") == "t"


def test_rotate_api_key_touches_only_that_client(db):
    db.sql("SELECT otp.create_client('a'); SELECT otp.create_client('b')")
    before = db.val("SELECT api_key_hash FROM otp.clients WHERE name = 'b'")
    db.sql("SELECT otp.rotate_api_key('a')")
    assert db.val("SELECT api_key_hash FROM otp.clients "
                  "WHERE name = 'b'") == before


@pytest.mark.parametrize("fn", ["rotate_api_key", "disable_client",
                                "enable_client"])
def test_unknown_client(db, fn):
    db.expect_error("SELECT otp.%s('nope')" % fn, "42704",
                    'client "nope" does not exist')


def test_disable_and_enable_client(db):
    db.sql("SELECT otp.create_client('acme'); "
           "SELECT otp.create_client('other')")
    db.sql("SELECT otp.disable_client('acme')")
    assert db.rows("SELECT name, enabled FROM otp.clients ORDER BY name") \
        == [["acme", "f"], ["other", "t"]]
    db.sql("SELECT otp.disable_client('acme')")    # idempotent
    db.sql("SELECT otp.enable_client('acme')")
    assert db.rows("SELECT name, enabled FROM otp.clients ORDER BY name") \
        == [["acme", "t"], ["other", "t"]]


# --- providers --------------------------------------------------------------

VALID_PROVIDERS = [
    ("email", "smtp", {"url": "smtps://u:p@mail.example.com:465",
                       "from": "noreply@example.com"}),
    ("email", "smtp", {"url": "SMTP://mail.example.com:587",
                       "from": "a@example.com", "starttls": "try"}),
    ("email", "sendgrid", {"api_key": "SG.x", "from": "a@example.com"}),
    ("sms", "twilio", {"account_sid": "AC1", "auth_token": "t",
                       "from": "+15005550006"}),
    ("sms", "twilio", {"account_sid": "AC1", "auth_token": "t",
                       "messaging_service_sid": "MG1"}),
    ("email", "webhook", {"url": "https://hooks.example.com/otp",
                          "secret": "s"}),
    ("sms", "webhook", {"url": "http://127.0.0.1:8080/hook", "secret": "s"}),
    ("email", "file", {"path": "/tmp/otpd-email.jsonl"}),
    ("sms", "file", {"path": "/tmp/otpd-sms.jsonl"}),
]


def jsonb(obj):
    import json
    return lit(json.dumps(obj)) + "::jsonb"


@pytest.mark.parametrize("channel,kind,config", VALID_PROVIDERS)
def test_add_provider_accepts_each_kind(db, channel, kind, config):
    db.sql("SELECT otp.create_client('acme')")
    pid = db.val("SELECT otp.add_provider('acme', %s, 'main', %s, %s)"
                 % (lit(channel.upper()), lit(kind), jsonb(config)))
    assert pid.isdigit()
    assert db.rows("SELECT id, channel, name, kind, config = %s, "
                   "max_attempts, lock_seconds FROM otp.providers"
                   % jsonb(config)) == [
        [pid, channel, "main", kind, "t", "5", "300"]]


def test_add_provider_upserts(db):
    db.sql("SELECT otp.create_client('acme')")
    first = db.val("SELECT otp.add_provider('acme', 'email', 'main', "
                   "'file', '{\"path\": \"/tmp/a\"}')")
    again = db.val("SELECT otp.add_provider('acme', 'Email', 'main', "
                   "'smtp', '{\"url\": \"smtp://h\", \"from\": \"a@b\"}', "
                   "3, 60)")
    other = db.val("SELECT otp.add_provider('acme', 'sms', 'main', "
                   "'file', '{\"path\": \"/tmp/b\"}')")
    assert again == first and other != first
    assert db.rows("SELECT id, channel, kind, config->>'url', max_attempts, "
                   "lock_seconds FROM otp.providers ORDER BY id") == [
        [first, "email", "smtp", "smtp://h", "3", "60"],
        [other, "sms", "file", "", "5", "300"]]


PROVIDER_ERRORS = [
    # (client, channel, kind, config, sqlstate, message)
    ("nope", "email", "file", {"path": "/p"}, "42704",
     'client "nope" does not exist'),
    ("acme", "email", "pigeon", {"path": "/p"}, "22023",
     'unknown provider kind "pigeon"'),
    ("acme", "fax", "file", {"path": "/p"}, "22023", 'unknown channel "fax"'),
    ("acme", "email", "smtp", {"url": "smtp://h"}, "22023",
     'provider kind "smtp" needs config key "from"'),
    ("acme", "email", "smtp", {"from": "a@b"}, "22023",
     'provider kind "smtp" needs config key "url"'),
    ("acme", "email", "smtp", {"url": "http://h", "from": "a@b"}, "22023",
     "smtp provider url must start with smtp:// or smtps://"),
    ("acme", "email", "smtp", {"url": "smtp://h", "from": "a@b",
                               "starttls": "maybe"}, "22023",
     'smtp provider starttls must be "required", "try" or "none"'),
    ("acme", "email", "smtp", {"url": "smtp://h", "from": "a@b",
                               "starttls": True}, "22023",
     "smtp provider starttls must be"),
    ("acme", "email", "sendgrid", {"from": "a@b"}, "22023",
     'provider kind "sendgrid" needs config key "api_key"'),
    ("acme", "sms", "twilio", {"account_sid": "AC1", "from": "+1"}, "22023",
     'provider kind "twilio" needs config key "auth_token"'),
    ("acme", "sms", "twilio", {"account_sid": "AC1", "auth_token": "t"},
     "22023", 'twilio provider needs config key "from" or '
     '"messaging_service_sid"'),
    ("acme", "sms", "webhook", {"url": "https://h"}, "22023",
     'provider kind "webhook" needs config key "secret"'),
    ("acme", "sms", "webhook", {"url": "ftp://h", "secret": "s"}, "22023",
     "webhook provider url must start with http:// or https://"),
    ("acme", "email", "file", {}, "22023",
     'provider kind "file" needs config key "path"'),
    ("acme", "email", "file", {"path": 5}, "22023",
     'provider kind "file" needs config key "path" (a non-empty string)'),
    ("acme", "email", "file", {"path": ""}, "22023",
     'provider kind "file" needs config key "path"'),
    ("acme", "email", "file", {"path": "outbox.jsonl"}, "22023",
     "file provider path must be absolute"),
    ("acme", "email", "file", ["path"], "22023",
     "provider config must be a JSON object"),
    ("acme", "sms", "smtp", {"url": "smtp://h", "from": "a@b"}, "22023",
     'provider kind "smtp" cannot send on channel "sms"'),
    ("acme", "sms", "sendgrid", {"api_key": "k", "from": "a@b"}, "22023",
     'provider kind "sendgrid" cannot send on channel "sms"'),
    ("acme", "email", "twilio", {"account_sid": "A", "auth_token": "t",
                                 "from": "+1"}, "22023",
     'provider kind "twilio" cannot send on channel "email"'),
]


@pytest.mark.parametrize("client,channel,kind,config,sqlstate,message",
                         PROVIDER_ERRORS)
def test_add_provider_errors(db, client, channel, kind, config, sqlstate,
                             message):
    db.sql("SELECT otp.create_client('acme')")
    db.expect_error("SELECT otp.add_provider(%s, %s, 'main', %s, %s)"
                    % (lit(client), lit(channel), lit(kind), jsonb(config)),
                    sqlstate, message)
    assert db.val("SELECT count(*) FROM otp.providers") == "0"


@pytest.mark.parametrize("args,message", [
    ("NULL::jsonb", "provider config must be a JSON object"),
    ("'{\"path\": \"/p\"}', 0", "max_attempts must be between 1 and 1000"),
    ("'{\"path\": \"/p\"}', 5, -1",
     "lock_seconds must be between 0 and 31536000"),
])
def test_add_provider_bad_limits_and_null_config(db, args, message):
    db.sql("SELECT otp.create_client('acme')")
    db.expect_error("SELECT otp.add_provider('acme', 'email', 'main', "
                    "'file', %s)" % args, "22023", message)


def test_add_provider_named_arguments(db):
    db.sql("SELECT otp.create_client('acme')")
    db.sql("SELECT otp.add_provider(client => 'acme', channel => 'sms', "
           "name => 'n', kind => 'file', config => '{\"path\": \"/p\"}', "
           "lock_seconds => 0)")
    assert db.rows("SELECT max_attempts, lock_seconds FROM otp.providers") \
        == [["5", "0"]]


# --- templates --------------------------------------------------------------

def set_template(db, tid, channel, subject, body, client="acme"):
    db.sql("SELECT otp.set_template(%s, %s, %s, %s, %s)"
           % (lit(client), lit(tid), lit(channel), lit(subject), lit(body)))


def templates(db):
    return db.rows("SELECT channel, template_id, coalesce(subject, '<null>'),"
                   " body, is_default FROM otp.templates "
                   "ORDER BY channel, template_id")


def test_first_template_per_channel_is_default(db):
    db.sql("SELECT otp.create_client('acme')")
    set_template(db, "login", "EMAIL", "Your code", "Code: {{code}}")
    set_template(db, "reset", "email", "Reset", "Reset with {{code}}")
    set_template(db, "sms1", "sms", None, "{{code}} is your code")
    assert templates(db) == [
        ["email", "login", "Your code", "Code: {{code}}", "t"],
        ["email", "reset", "Reset", "Reset with {{code}}", "f"],
        ["sms", "sms1", "<null>", "{{code}} is your code", "t"]]


def test_default_is_per_client(db):
    db.sql("SELECT otp.create_client('acme'); "
           "SELECT otp.create_client('other')")
    set_template(db, "a", "sms", None, "{{code}}")
    set_template(db, "b", "sms", None, "{{code}}", client="other")
    assert db.val("SELECT count(*) FROM otp.templates WHERE is_default") \
        == "2"


def test_set_template_updates_in_place(db):
    db.sql("SELECT otp.create_client('acme')")
    set_template(db, "login", "email", "Old", "old {{code}}")
    set_template(db, "login", "email", "New", "new {{code}}")
    assert templates(db) == [["email", "login", "New", "new {{code}}", "t"]]


def test_sms_template_subject_is_dropped(db):
    db.sql("SELECT otp.create_client('acme')")
    set_template(db, "s", "sms", "ignored", "{{code}}")
    assert templates(db) == [["sms", "s", "<null>", "{{code}}", "t"]]


@pytest.mark.parametrize("client,channel,tid,subject,body,sqlstate,message", [
    ("acme", "email", "t", "S", "no code here", "22023",
     "template body must contain {{code}}"),
    ("acme", "sms", "t", None, "{{ code }}", "22023",
     "template body must contain {{code}}"),
    ("acme", "sms", "t", None, None, "22023",
     "template body must contain {{code}}"),
    ("acme", "email", "t", None, "{{code}}", "22023",
     "an email template needs a subject"),
    ("acme", "email", "t", "  ", "{{code}}", "22023",
     "an email template needs a subject"),
    ("acme", "email", "t", "Hi\r\nBcc: x@evil", "{{code}}", "22023",
     "template subject must be a single line"),
    ("acme", "email", "", "S", "{{code}}", "22023", "invalid template id"),
    ("acme", "push", "t", "S", "{{code}}", "22023", 'unknown channel "push"'),
    ("nope", "email", "t", "S", "{{code}}", "42704",
     'client "nope" does not exist'),
])
def test_set_template_errors(db, client, channel, tid, subject, body,
                             sqlstate, message):
    db.sql("SELECT otp.create_client('acme')")
    db.expect_error("SELECT otp.set_template(%s, %s, %s, %s, %s)"
                    % (lit(client), lit(tid), lit(channel), lit(subject),
                       lit(body)), sqlstate, message)
    assert db.val("SELECT count(*) FROM otp.templates") == "0"


def test_set_default_template(db):
    db.sql("SELECT otp.create_client('acme')")
    set_template(db, "a", "email", "S", "{{code}}")
    set_template(db, "b", "email", "S", "{{code}}")
    set_template(db, "c", "sms", None, "{{code}}")
    db.sql("SELECT otp.set_default_template('acme', 'b', 'EMAIL')")
    assert db.rows("SELECT channel, template_id FROM otp.templates "
                   "WHERE is_default ORDER BY 1") == [["email", "b"],
                                                      ["sms", "c"]]
    db.sql("SELECT otp.set_default_template('acme', 'b', 'email')")
    db.sql("SELECT otp.set_default_template('acme', 'a', 'email')")
    assert db.rows("SELECT channel, template_id FROM otp.templates "
                   "WHERE is_default ORDER BY 1") == [["email", "a"],
                                                      ["sms", "c"]]


def test_set_default_template_errors(db):
    db.sql("SELECT otp.create_client('acme')")
    set_template(db, "a", "email", "S", "{{code}}")
    db.expect_error("SELECT otp.set_default_template('acme', 'a', 'sms')",
                    "42704", 'client "acme" has no sms template "a"')
    db.expect_error("SELECT otp.set_default_template('acme', 'zz', 'email')",
                    "42704", 'client "acme" has no email template "zz"')
    db.expect_error("SELECT otp.set_default_template('nope', 'a', 'email')",
                    "42704", 'client "nope" does not exist')


# --- purging ----------------------------------------------------------------

FIXTURE_SQL = """
SELECT otp.create_client('acme');
SELECT otp.add_provider('acme', 'email', 'main', 'file', '{"path": "/p"}');
"""


def add_codes(db, n, expires):
    db.sql("""
INSERT INTO otp.codes (id, client_id, provider_id, channel, destination,
    code_hash, key_id, expires_at, max_attempts, lock_seconds)
SELECT gen_random_uuid(), c.id, p.id, 'email', 'a@example.com',
    sha256('x'::bytea), 1, now() + %s, 5, 300
FROM generate_series(1, %d), otp.clients c JOIN otp.providers p
    ON p.client_id = c.id;
""" % (lit(expires) + "::interval", n))


def add_attempts(db, n, expires):
    db.sql("""
INSERT INTO otp.attempts (code_id, client_id, destination, outcome,
    expires_at)
SELECT gen_random_uuid(), c.id, 'a@example.com', 'mismatch', now() + %s
FROM generate_series(1, %d), otp.clients c;
""" % (lit(expires) + "::interval", n))


def add_outbox(db, status, expires, lease=None, created="0", sent_at=None):
    db.sql("""
INSERT INTO otp.outbox (id, client_id, provider_id, channel, destination,
    key_id, expires_at, status, lease_until, created_at, sent_at)
SELECT gen_random_uuid(), c.id, p.id, 'email', 'a@example.com', 1,
    now() + %s::interval, %s, now() + %s::interval,
    now() + %s::interval, now() + %s::interval
FROM otp.clients c JOIN otp.providers p ON p.client_id = c.id
WHERE p.name = 'main';
""" % (lit(expires), lit(status), lit(lease), lit(created), lit(sent_at)))


def counts(db):
    return db.rows("SELECT (SELECT count(*) FROM otp.codes), "
                   "(SELECT count(*) FROM otp.attempts), "
                   "(SELECT count(*) FROM otp.outbox)")[0]


@pytest.fixture
def purge_db(db):
    db.sql(FIXTURE_SQL)
    add_codes(db, 3, "-2 days")         # purged by default
    add_codes(db, 2, "-1 hour")         # expired, not yet old enough
    add_codes(db, 2, "5 minutes")       # live
    add_attempts(db, 4, "-3 days")
    add_attempts(db, 1, "-1 hour")
    add_attempts(db, 1, "5 minutes")
    for status in ("sent", "failed", "expired", "pending"):
        add_outbox(db, status, "-2 days")
    add_outbox(db, "pending", "-2 days", lease="1 minute")   # being sent
    add_outbox(db, "pending", "-2 days", lease="-1 minute")  # lease lapsed
    add_outbox(db, "sent", "-1 hour")
    add_outbox(db, "pending", "5 minutes")
    assert counts(db) == ["7", "6", "8"]
    return db


def test_purge_expired_deletes_only_old_rows(purge_db):
    assert purge_db.val("SELECT otp.purge_expired()") == str(3 + 4 + 5)
    assert counts(purge_db) == ["4", "2", "3"]
    assert purge_db.val("SELECT count(*) FROM otp.codes "
                        "WHERE expires_at < now() - interval '1 day'") == "0"
    assert purge_db.rows("SELECT status, lease_until > now() "
                         "FROM otp.outbox ORDER BY expires_at, status") == [
        ["pending", "t"], ["sent", ""], ["pending", ""]]
    assert purge_db.val("SELECT otp.purge_expired()") == "0"


def test_purge_expired_with_interval(purge_db):
    assert purge_db.val("SELECT otp.purge_expired('30 minutes')") \
        == str(5 + 5 + 6)
    assert counts(purge_db) == ["2", "1", "2"]


def test_purge_expired_zero_keeps_live_rows(purge_db):
    assert purge_db.val("SELECT otp.purge_expired('0')") == str(5 + 5 + 6)
    assert counts(purge_db) == ["2", "1", "2"]


@pytest.mark.parametrize("arg", ["'-1 day'", "NULL"])
def test_purge_expired_refuses_negative_interval(purge_db, arg):
    purge_db.expect_error("SELECT otp.purge_expired(%s)" % arg, "22023",
                          "older_than must be zero or a positive interval")
    assert counts(purge_db) == ["7", "6", "8"]


def test_purge_expired_many_batches(db):
    db.sql(FIXTURE_SQL)
    add_attempts(db, 25001, "-2 days")
    add_codes(db, 10000, "-2 days")
    add_attempts(db, 10, "1 hour")
    assert db.val("SELECT otp.purge_expired()") == "35001"
    assert counts(db) == ["0", "10", "0"]


def test_purge_expired_batches_procedure(purge_db):
    add_attempts(purge_db, 20000, "-2 days")
    out = purge_db.val("CALL otp.purge_expired_batches()")
    assert out == str(3 + 20004 + 5)
    assert counts(purge_db) == ["4", "2", "3"]
    assert purge_db.val("CALL otp.purge_expired_batches('0')") == "4"
    assert counts(purge_db) == ["2", "1", "2"]


def test_purge_skips_rows_locked_by_others(cluster, purge_db):
    """A row another session holds is skipped at once, not waited for."""
    holder = subprocess.Popen(
        [os.path.join(cluster.bindir, "psql"), "-X", "-q", "-d",
         purge_db.dsn, "-c",
         "BEGIN; SELECT 1 FROM otp.codes WHERE expires_at < now() - "
         "interval '1 day' LIMIT 1 FOR UPDATE; "
         "SELECT pg_sleep(60) /* lock-holder */; COMMIT;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if purge_db.val("SELECT count(*) FROM pg_stat_activity "
                            "WHERE query LIKE '%lock-holder%' "
                            "AND state = 'active' "
                            "AND pid <> pg_backend_pid()") == "1":
                break
            time.sleep(0.05)
        else:
            pytest.fail("the lock-holding session did not start")
        t0 = time.monotonic()
        assert purge_db.val("SET lock_timeout = '10s'; "
                            "SELECT otp.purge_expired()") == str(2 + 4 + 5)
        assert time.monotonic() - t0 < 5
        assert counts(purge_db) == ["5", "2", "3"]
    finally:
        purge_db.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE query LIKE '%lock-holder%' "
                     "AND pid <> pg_backend_pid()")
        holder.wait(timeout=30)


# --- delivery_status ----------------------------------------------------------

def test_delivery_status_view(db):
    db.sql(FIXTURE_SQL)
    db.sql("SELECT otp.add_provider('acme', 'sms', 'backup', 'file', "
           "'{\"path\": \"/q\"}')")
    add_outbox(db, "pending", "5 minutes", created="-2 minutes")
    add_outbox(db, "pending", "5 minutes", created="-1 minute")
    add_outbox(db, "sent", "5 minutes", sent_at="-30 seconds")
    add_outbox(db, "failed", "5 minutes")
    add_outbox(db, "expired", "-5 minutes")
    add_outbox(db, "expired", "-6 minutes")
    rows = db.rows("SELECT client, channel, provider, kind, client_enabled, "
                   "pending, sent, failed, expired, "
                   "round(extract(epoch FROM now() - oldest_pending_at)), "
                   "round(extract(epoch FROM now() - last_sent_at)) "
                   "FROM otp.delivery_status ORDER BY provider")
    assert rows == [
        ["acme", "sms", "backup", "file", "t", "0", "0", "0", "0", "", ""],
        ["acme", "email", "main", "file", "t", "2", "1", "1", "2",
         "120", "30"]]
