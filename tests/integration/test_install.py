"""test_install.py: "make install DESTDIR=..." from the build under test
($OTPD_BUILD or this checkout) puts every program in sbindir, every SQL
file of sql/ in $(datadir)/otpd/sql, the example configuration in
$(sysconfdir)/otpd/, the man pages the build lists in mandir and the
lighttpd error documents where deploy/lighttpd/otpd.conf looks for them;
and the installed otpd-migrate works from the installed SQL directory
against the test cluster: --status on the suite's database (up to date),
then a fresh database brought from nothing to the current version.
"""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import uuid

import pytest

from conftest import BUILD, REPO

# the directories and lists make knows, printed by an extra makefile
PRINT_MK = """
otpd-print-install-vars:
\t@echo 'prefix=$(prefix)'
\t@echo 'sbindir=$(sbindir)'
\t@echo 'datadir=$(datadir)'
\t@echo 'pkgdatadir=$(pkgdatadir)'
\t@echo 'sysconfdir=$(sysconfdir)'
\t@echo 'mandir=$(mandir)'
\t@echo 'sbin_PROGRAMS=$(sbin_PROGRAMS)'
\t@echo 'man_pages=$(dist_man_MANS) $(man_MANS)'
"""
REQUIRED_PROGRAMS = {"otpd", "otpd-keygen", "otpd-migrate"}


@pytest.fixture(scope="module")
def installed():
    """(DESTDIR, {make variable: value}) after make install."""
    if not os.path.exists(os.path.join(BUILD, "Makefile")):
        pytest.fail("%s is not configured (./configure, make)" % BUILD,
                    pytrace=False)
    tmp = tempfile.mkdtemp(prefix="otpd-install-")
    try:
        os.chmod(tmp, 0o755)
        mk = os.path.join(tmp, "print.mk")
        with open(mk, "w") as f:
            f.write(PRINT_MK)
        p = subprocess.run(["make", "--no-print-directory", "-s", "-C", BUILD,
                            "-f", "Makefile", "-f", mk,
                            "otpd-print-install-vars"],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        var = dict(line.split("=", 1) for line in p.stdout.splitlines()
                   if "=" in line)
        dest = os.path.join(tmp, "root")
        p = subprocess.run(["make", "--no-print-directory", "-s", "-C", BUILD,
                            "install", "DESTDIR=" + dest],
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, "make install failed:\n%s%s" % (p.stdout,
                                                                   p.stderr)
        yield dest, var
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def under(dest, path):
    return dest + path


def test_programs_in_sbindir(installed):
    dest, var = installed
    progs = {os.path.basename(p) for p in var["sbin_PROGRAMS"].split()}
    assert REQUIRED_PROGRAMS <= progs, progs
    for prog in progs:
        path = under(dest, os.path.join(var["sbindir"], prog))
        assert os.path.isfile(path) and os.access(path, os.X_OK), path


def test_sql_in_datadir(installed):
    dest, var = installed
    assert var["pkgdatadir"] == var["datadir"] + "/otpd"
    sqldir = under(dest, var["pkgdatadir"] + "/sql")
    want = sorted(os.path.basename(p)
                  for p in glob.glob(os.path.join(REPO, "sql", "*.sql")))
    assert want, "no sql/*.sql in the source tree"
    have = sorted(os.listdir(sqldir))
    assert have == want, "installed %s, sql/ has %s" % (have, want)
    for name in want:
        with open(os.path.join(REPO, "sql", name), "rb") as a, \
                open(os.path.join(sqldir, name), "rb") as b:
            assert a.read() == b.read(), name


def test_example_config_in_sysconfdir(installed):
    dest, var = installed
    path = under(dest, var["sysconfdir"] + "/otpd/otpd.conf.example")
    with open(path) as f, \
            open(os.path.join(REPO, "deploy", "otpd.conf.example")) as g:
        assert f.read() == g.read()


def test_programs_know_the_layout(installed):
    """The installed programs default to the installed paths."""
    dest, var = installed
    sbin = under(dest, var["sbindir"])
    out = subprocess.run([os.path.join(sbin, "otpd-migrate"), "--help"],
                         capture_output=True, text=True, timeout=30)
    assert var["pkgdatadir"] + "/sql" in out.stdout + out.stderr
    out = subprocess.run([os.path.join(sbin, "otpd"), "--help"],
                         capture_output=True, text=True, timeout=30)
    assert var["sysconfdir"] + "/otpd/otpd.conf" in out.stdout + out.stderr


def test_man_pages_in_mandir(installed):
    dest, var = installed
    pages = var["man_pages"].split()
    for page in pages:
        name = os.path.basename(page)
        section = name.rsplit(".", 1)[1]
        path = under(dest, "%s/man%s/%s" % (var["mandir"], section, name))
        assert os.path.isfile(path), path


def test_lighttpd_error_documents(installed):
    dest, var = installed
    with open(os.path.join(REPO, "deploy", "lighttpd", "otpd.conf")) as f:
        conf = f.read()
    m = re.search(r'^\s*server\.errorfile-prefix\s*=\s*"([^"]+)"', conf, re.M)
    assert m, "no errorfile-prefix in deploy/lighttpd/otpd.conf"
    prefix = m.group(1)
    # the shipped file assumes the default prefix
    assert prefix == "/usr/local/share/otpd/lighttpd/status-", prefix
    installed_prefix = under(dest, var["pkgdatadir"] + "/lighttpd/status-")
    for src in glob.glob(os.path.join(REPO, "deploy", "lighttpd", "errors",
                                      "status-*.html")):
        code = re.search(r"status-(\d+)\.html$", src).group(1)
        assert os.path.isfile(installed_prefix + code + ".html"), code


def migrate(installed, conninfo, *args):
    dest, var = installed
    argv = [under(dest, var["sbindir"] + "/otpd-migrate"), "-d", conninfo,
            "-s", under(dest, var["pkgdatadir"] + "/sql")] + list(args)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, "%s (%d):\n%s%s" % (" ".join(argv),
                                                   p.returncode, p.stdout,
                                                   p.stderr)
    return p.stdout


def newest_version():
    return max(int(os.path.basename(p)[:3])
               for p in glob.glob(os.path.join(REPO, "sql", "[0-9]*.sql")))


def test_installed_migrate_status(installed, stack):
    """The suite's database, migrated from sql/, is up to date by the
    installed SQL."""
    out = migrate(installed, stack.conninfo, "--status")
    assert "schema version %d" % newest_version() in out.splitlines(), out
    assert "pending" not in out, out


def test_installed_migrate_fresh_database(installed, stack):
    name = "install_" + uuid.uuid4().hex[:8]
    stack.pg.create_database(name)
    try:
        conninfo = stack.pg.dsn(name)
        out = migrate(installed, conninfo, "--status")
        pending = [line for line in out.splitlines()
                   if line.startswith("pending ")]
        assert len(pending) == len(glob.glob(os.path.join(REPO, "sql",
                                                          "*.sql"))), out
        migrate(installed, conninfo)
        out = migrate(installed, conninfo, "--status")
        assert "schema version %d" % newest_version() in out.splitlines(), \
            out
        assert "pending" not in out, out
    finally:
        stack.pg.psql('DROP DATABASE IF EXISTS "%s"' % name)
