"""test_deploy.py: the service-management files of deploy/ are valid.

systemd units (deploy/systemd/): "systemd-analyze verify" accepts every
unit without a word about it, with ExecStart pointed at the binaries of the
build under test (the only change made to a temporary copy: verify wants
the programs to exist); the offline security analysis of every service
stays in the "OK" band; the socket is where the web server configurations
look for it.  Documentation= is not checked here (man pages are checked
where they are written).

cron files (deploy/cron/): every job line is 5 valid time fields, a user
and a command, as /etc/cron.d wants, and the file name is one cron reads.

Every otpd or otpd-sender a unit or a cron job starts is told where its
configuration is (-c): /etc/otpd/otpd.conf, directly or as the unit's
credential, never the sysconfdir compiled in (/usr/local/etc with a plain
./configure).
"""

import glob
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import BUILD, REPO

UNIT_DIR = os.path.join(REPO, "deploy", "systemd")
CRON_DIR = os.path.join(REPO, "deploy", "cron")
UNITS = sorted(p for p in glob.glob(os.path.join(UNIT_DIR, "*"))
               if re.search(r"\.(service|socket|timer|path)$", p))
SERVICES = [p for p in UNITS if p.endswith(".service")]
CRON_FILES = sorted(p for p in glob.glob(os.path.join(CRON_DIR, "*"))
                    if os.path.isfile(p))
# systemd-analyze security: 0 (locked down) .. 10 (exposed); up to 2.9 is
# "OK".  otpd.service scores 1.4 when written.
MAX_EXPOSURE = "2.5"
INSTALLED_SBIN = "/usr/local/sbin/"
SOCKET = "/run/otpd/otpd.sock"
CONFIG = "/etc/otpd/otpd.conf"
OUR_DAEMONS = ("otpd", "otpd-sender")


def systemd_analyze():
    path = shutil.which("systemd-analyze")
    if path is None and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q",
                        "--no-install-recommends", "systemd"],
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                       capture_output=True, timeout=600)
        path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is missing: install the Debian package "
                    "systemd (./dev.sh deps does)", pytrace=False)
    return path


@pytest.fixture(scope="module")
def unit_copy():
    """The units in a temporary directory, ExecStart*= pointing at the
    build's binaries.  Returns {unit name: path}."""
    assert UNITS, "no units in %s" % UNIT_DIR
    tmp = tempfile.mkdtemp(prefix="otpd-units-")
    try:
        copies = {}
        for path in UNITS:
            with open(path) as f:
                text = f.read()
            for prog in re.findall(re.escape(INSTALLED_SBIN) + r"([\w.-]+)",
                                   text):
                built = os.path.join(BUILD, "src", prog)
                assert os.access(built, os.X_OK), \
                    "%s runs %s, which the build does not have (%s)" % (
                        os.path.basename(path), prog, built)
                text = text.replace(INSTALLED_SBIN + prog, built)
            copy = os.path.join(tmp, os.path.basename(path))
            with open(copy, "w") as f:
                f.write(text)
            copies[os.path.basename(path)] = copy
        yield copies
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_units_verify(unit_copy):
    names = sorted(unit_copy)
    p = subprocess.run([systemd_analyze(), "verify", "--man=no"]
                       + [unit_copy[n] for n in names],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, SYSTEMD_LOG_LEVEL="notice"))
    ours = re.compile("|".join(re.escape(n) for n in names)
                      + "|" + re.escape(os.path.dirname(unit_copy[names[0]])))
    about_us = [line for line in (p.stdout + p.stderr).splitlines()
                if ours.search(line)]
    assert p.returncode == 0 and not about_us, \
        "systemd-analyze verify (%d):\n%s%s" % (p.returncode, p.stdout,
                                                p.stderr)


@pytest.mark.parametrize("service", [os.path.basename(p) for p in SERVICES])
def test_service_hardening(unit_copy, service):
    threshold = str(int(float(MAX_EXPOSURE) * 10))
    p = subprocess.run([systemd_analyze(), "security", "--offline=yes",
                        "--no-pager", "--threshold=" + threshold,
                        unit_copy[service]],
                       capture_output=True, text=True, timeout=120)
    level = re.search(r"Overall exposure level for \S+: ([\d.]+)", p.stdout)
    assert level, p.stdout + p.stderr
    assert p.returncode == 0 and float(level.group(1)) <= \
        float(MAX_EXPOSURE), "exposure %s > %s:\n%s" % (
            level.group(1), MAX_EXPOSURE, p.stdout)


def unit_settings(path):
    """[(section, key, value)] of a unit file."""
    out, section = [], None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            m = re.match(r"^\[(\w+)\]$", line)
            if m:
                section = m.group(1)
                continue
            key, _, value = line.partition("=")
            out.append((section, key.strip(), value.strip()))
    return out


def test_socket_matches_web_servers():
    """otpd.socket listens where the shipped web server configurations
    connect, and the web server's group (www-data) may connect."""
    sock = unit_settings(os.path.join(UNIT_DIR, "otpd.socket"))
    assert ("Socket", "ListenStream", SOCKET) in sock
    assert ("Socket", "SocketGroup", "www-data") in sock
    assert ("Socket", "SocketMode", "0660") in sock
    for server in ("lighttpd", "apache"):
        with open(os.path.join(REPO, "deploy", server, "otpd.conf")) as f:
            assert SOCKET in f.read(), server
    svc = unit_settings(os.path.join(UNIT_DIR, "otpd.service"))
    assert ("Unit", "Requires", "otpd.socket") in svc


# ---------------------------------------------------------------- cron

CRON_RANGES = [("minute", 0, 59, None),
               ("hour", 0, 23, None),
               ("day of month", 1, 31, None),
               ("month", 1, 12, ["jan", "feb", "mar", "apr", "may", "jun",
                                 "jul", "aug", "sep", "oct", "nov", "dec"]),
               ("day of week", 0, 7, ["sun", "mon", "tue", "wed", "thu",
                                      "fri", "sat"])]
CRON_SPECIAL = {"@reboot", "@yearly", "@annually", "@monthly", "@weekly",
                "@daily", "@midnight", "@hourly"}


def cron_field_ok(field, lo, hi, names):
    """A cron time field: lists of *, N, N-M, each with an optional /step;
    names (jan, mon) only alone, as cron allows."""
    if names and field.lower() in names:
        return True
    for item in field.split(","):
        m = re.fullmatch(r"(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?", item)
        if not m:
            return False
        first, last, step = m.group(2), m.group(3), m.group(4)
        if first is not None:
            a = int(first)
            b = int(last) if last is not None else a
            if not (lo <= a <= hi and lo <= b <= hi and a <= b):
                return False
        if step is not None and not 1 <= int(step) <= hi - lo + 1:
            return False
    return True


def cron_jobs(path):
    """(line number, fields) of the job lines; environment lines skipped."""
    jobs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            if re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", s):
                continue
            jobs.append((n, s.split(None, 6) if not s.startswith("@")
                         else s.split(None, 2)))
    return jobs


def test_cron_validator_itself():
    assert cron_field_ok("*/5", 0, 59, None)
    assert cron_field_ok("0,15,30-45", 0, 59, None)
    assert not cron_field_ok("60", 0, 59, None)
    assert not cron_field_ok("5-1", 0, 59, None)
    assert not cron_field_ok("*/0", 0, 59, None)
    assert not cron_field_ok("x", 0, 59, None)
    assert cron_field_ok("mon", 0, 7, CRON_RANGES[4][3])


@pytest.mark.parametrize("path", CRON_FILES,
                         ids=[os.path.basename(p) for p in CRON_FILES])
def test_cron_file(path):
    name = os.path.basename(path)
    # cron skips files in /etc/cron.d whose names have dots (and others)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", name), name
    with open(path) as f:
        text = f.read()
    assert text.endswith("\n"), "%s: cron ignores a last line without a " \
        "newline" % name
    jobs = cron_jobs(path)
    assert jobs, "%s has no job" % name
    for n, fields in jobs:
        where = "%s:%d" % (name, n)
        if fields[0].startswith("@"):
            assert fields[0] in CRON_SPECIAL, where
            assert len(fields) == 3, "%s: @when user command" % where
            user, command = fields[1], fields[2]
        else:
            assert len(fields) == 7, \
                "%s: 5 time fields, a user and a command" % where
            for value, (what, lo, hi, names) in zip(fields[:5], CRON_RANGES):
                assert cron_field_ok(value, lo, hi, names), \
                    "%s: bad %s %r" % (where, what, value)
            user, command = fields[5], fields[6]
        assert re.fullmatch(r"[a-z_][a-z0-9_-]*\$?", user), \
            "%s: bad user %r" % (where, user)
        # cron turns an unescaped % into a newline
        assert not re.search(r"(?<!\\)%", command), \
            "%s: unescaped %% in the command" % where
        if command.split()[0] in OUR_DAEMONS:
            assert re.search(r"(^|\s)-c %s(\s|$)" % re.escape(CONFIG),
                             command), \
                "%s: %s without -c %s" % (where, command.split()[0], CONFIG)


def test_cron_runs_the_sender_with_its_config():
    jobs = [fields[-1] for path in CRON_FILES for _, fields in cron_jobs(path)]
    senders = [c for c in jobs if c.split()[0] == "otpd-sender"]
    assert senders, "no cron job runs otpd-sender"
    for command in senders:
        assert "-c " + CONFIG in command, command


@pytest.mark.parametrize("path", SERVICES, ids=os.path.basename)
def test_units_pass_the_config(path):
    """ExecStart names the configuration: the credential loaded from
    /etc/otpd/otpd.conf."""
    with open(path) as f:
        text = f.read()
    starts = re.findall(r"(?m)^ExecStart=(\S+)(.*)$", text)
    ours = [(prog, args) for prog, args in starts
            if os.path.basename(prog) in OUR_DAEMONS]
    assert ours, "%s starts none of %s" % (path, OUR_DAEMONS)
    for prog, args in ours:
        assert re.search(r"(^|\s)-c %d/otpd\.conf(\s|$)", args), (prog, args)
    assert re.search(r"(?m)^LoadCredential=otpd\.conf:%s$" % re.escape(CONFIG),
                     text), path
