"""test_manpages.py: every manual page in doc/ passes mandoc's linter at
the warning level with no output at all, and renders."""

import glob
import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO

PAGES = sorted(glob.glob(os.path.join(REPO, "doc", "*.[1-9]")))
EXPECTED = ["otpd.8", "otpd-sender.8", "otpd-keygen.8", "otpd-migrate.8",
            "otpd.conf.5"]


def mandoc():
    exe = shutil.which("mandoc")
    if exe is None:
        pytest.fail("mandoc is needed to check the manual pages "
                    "(Debian: apt-get install mandoc)", pytrace=False)
    return exe


def test_pages_present():
    names = [os.path.basename(p) for p in PAGES]
    missing = [n for n in EXPECTED if n not in names]
    assert not missing, "missing manual pages in doc/: %s" % missing


@pytest.mark.parametrize("page", PAGES, ids=os.path.basename)
def test_mandoc_lint(page):
    # -W warning: report warnings and worse; any output at all fails.
    p = subprocess.run([mandoc(), "-T", "lint", "-W", "warning", page],
                       capture_output=True, text=True, timeout=60)
    out = (p.stdout + p.stderr).strip()
    assert p.returncode == 0 and out == "", \
        "mandoc -T lint -W warning %s (exit %d):\n%s" % (
            os.path.relpath(page, REPO), p.returncode, out)


@pytest.mark.parametrize("page", PAGES, ids=os.path.basename)
def test_mandoc_renders(page):
    p = subprocess.run([mandoc(), "-T", "ascii", page], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    text = re.sub(".\x08", "", p.stdout)     # no overstrike bold
    name = os.path.basename(page).rsplit(".", 1)[0]
    assert "NAME" in text and name in text, text[:500]
