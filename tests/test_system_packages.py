"""What the test session does when redis-server or Chromium is missing (nothing is installed
here: `decide` is the choice, `missing` the look)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.system_packages import CHROMIUM, decide, missing

BOTH = ["redis-server", "chromium"]
INSTALL = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq"]


@pytest.mark.parametrize(("present", "expected"), [
    ({"redis-server", CHROMIUM, "postgres"}, []),
    ({CHROMIUM, "postgres"}, ["redis-server"]),
    ({"redis-server", "postgres"}, ["chromium"]),
    ({"redis-server", CHROMIUM}, ["postgresql"]),
    (set(), [*BOTH, "postgresql"]),
])
def test_missing_names_the_packages_whose_programs_are_absent(present: set[str],
                                                              expected: list[str]) -> None:
    found = missing(which=lambda name: f"/usr/bin/{name}" if name in present else None,
                    runnable=lambda path: path in present,
                    postgres=lambda: "postgres" in present)
    assert found == expected


def test_nothing_missing_nothing_done() -> None:
    assert decide([], root=False, sudo=False, apt=False).install == []
    assert decide([], root=False, sudo=False, apt=False).stop is None


def test_root_installs_with_apt() -> None:
    decision = decide(BOTH, root=True, sudo=False, apt=True)
    assert decision.stop is None
    assert decision.install == [["apt-get", "update", "-qq"], [*INSTALL, *BOTH]]


def test_passwordless_sudo_installs_through_sudo() -> None:
    decision = decide(["chromium"], root=False, sudo=True, apt=True)
    assert decision.install == [["sudo", "-n", "apt-get", "update", "-qq"],
                                ["sudo", "-n", *INSTALL, "chromium"]]


@pytest.mark.parametrize(("root", "sudo", "apt", "line"), [
    (False, False, True, "the tests need redis-server chromium: run `sudo apt-get install "
                         "redis-server chromium` (or as root), then run again"),
    (True, False, False, "the tests need redis-server chromium, and there is no apt-get here: "
                         "install redis-server chromium with this system's package manager, "
                         "then run again"),
])
def test_when_it_cannot_install_it_stops_with_one_line(root: bool, sudo: bool, apt: bool,
                                                       line: str) -> None:
    decision = decide(BOTH, root=root, sudo=sudo, apt=apt)
    assert (decision.install, decision.stop) == ([], line)
    assert "\n" not in line


def test_a_session_that_cannot_install_stops_before_any_test_with_one_line(
        tmp_path: Path) -> None:
    # no redis-server and no apt-get on this PATH: the session hook must stop, not install.
    # A session of its own: none of this one's PYTEST_* variables (an xdist worker's name would
    # make installed plugins such as pytest-benchmark warn on stderr)
    base = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "tests/test_system_packages.py"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120,
                          env={**base, "PATH": str(tmp_path), "PYTHONPATH": str(ROOT)})
    assert done.returncode == 4
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "ERROR: the tests need redis-server, and there is no apt-get here: install "
        "redis-server with this system's package manager, then run again"]
