"""The Debian packages the tests start or drive, installed by the test session when missing.

``pip install -e '.[dev]' && python -m pytest`` must work on a fresh machine: a missing
``redis-server`` (started by tests/redis_fixture.py), Chromium (driven by tests/browser/) or
PostgreSQL (when no server answers and no initdb is here: tests/postgres_fixture.py) is
installed with apt when this user can (root, or sudo without a password); otherwise the session
stops at once with one line naming the command, instead of failing test after test.
`decide` is the whole choice, kept apart from the commands so it can be tested as a table.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

CHROMIUM = os.environ.get("FLOWRUN_CHROMIUM", "/usr/bin/chromium")


def postgres_here() -> bool:
    """A PostgreSQL server answers where the tests look (tests/postgres_fixture.py), or
    initdb is here to start a private cluster."""
    if shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return True
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            return True
    except OSError:
        return False


def missing(which: Callable[[str], str | None] = shutil.which,
            runnable: Callable[[str], bool] = lambda p: os.access(p, os.X_OK),
            postgres: Callable[[], bool] = postgres_here) -> list[str]:
    """The Debian packages whose programs are not here, in install order."""
    wanted = []
    if which("redis-server") is None:
        wanted.append("redis-server")
    # Playwright drives this binary, never a browser download: a chromium elsewhere on PATH
    # is not the one the browser tests use
    if not runnable(CHROMIUM):
        wanted.append("chromium")
    if not postgres():
        wanted.append("postgresql")
    return wanted


@dataclass(frozen=True)
class Decision:
    install: list[list[str]]  # commands to run, in order; empty when nothing is to be done
    stop: str | None = None  # the one line to stop with instead


def decide(packages: list[str], *, root: bool, sudo: bool, apt: bool) -> Decision:
    if not packages:
        return Decision([])
    names = " ".join(packages)
    if not apt:
        return Decision([], f"the tests need {names}, and there is no apt-get here: install "
                            f"{names} with this system's package manager, then run again")
    if not (root or sudo):
        return Decision([], f"the tests need {names}: run `sudo apt-get install {names}` "
                            "(or as root), then run again")
    prefix = [] if root else ["sudo", "-n"]
    return Decision([[*prefix, "apt-get", "update", "-qq"],
                     [*prefix, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install",
                      "-y", "-qq", *packages]])


def _passwordless_sudo() -> bool:
    if shutil.which("sudo") is None:
        return False
    return subprocess.run(["sudo", "-n", "true"], capture_output=True, timeout=30).returncode == 0


def ensure(say: Callable[[str], None]) -> str | None:
    """Install what is missing when possible; the one line to stop with when not."""
    packages = missing()
    if not packages:
        return None
    root = os.geteuid() == 0
    decision = decide(packages, root=root, sudo=not root and _passwordless_sudo(),
                      apt=shutil.which("apt-get") is not None)
    if decision.stop:
        return decision.stop
    say(f"installing Debian packages the tests need: {' '.join(packages)}")
    for command in decision.install:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return f"`{' '.join(command)}` failed ({last}): install {' '.join(packages)}, " \
                   "then run again"
    still = missing()
    return f"installed, but still missing: {' '.join(still)}" if still else None
