"""Shared fixtures and helpers: the repository root, a loader over the shipped schemas, an App
over flows written in a test's folder, a free loopback port, and waiting for background work.
"""

from __future__ import annotations

import logging
import os
import socket
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from engine.app import App
from engine.loader import Loader
from engine.refs import Secrets
from engine.schemas import SchemaStore
from engine.settings import Settings
from engine.store.base import Store

ROOT = Path(__file__).resolve().parent.parent

#: FLOWRUN_RELIABILITY=full: the reliability suite and the bus and event ordering proofs run at
#: full size
FULL = os.environ.get("FLOWRUN_RELIABILITY", "").strip().lower() == "full"


def size(reduced: int, full: int) -> int:
    """A scenario's size: *full* with FLOWRUN_RELIABILITY=full, else *reduced*."""
    return full if FULL else reduced

# redis_server and redis_url, registered once: one redis-server for the whole session
# (a module importing the fixtures got a session fixture, and a server, of its own)
pytest_plugins = ["tests.redis_fixture", "tests.sentinel_fixture", "tests.postgres_fixture"]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Install redis-server and Chromium when missing (see tests/system_packages.py), or stop
    the session at once with one line saying what to install."""
    from tests.system_packages import ensure

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stop = ensure(lambda line: reporter.write_line(line) if reporter else print(line))
    if stop:
        raise pytest.UsageError(stop)  # one line, exit status 4, no test run


@pytest.fixture
def loader() -> Loader:
    return Loader(schemas=SchemaStore(ROOT / "schemas"), secrets=Secrets(environ={}))


def flow_text(text: str) -> str:
    """A flow written indented in a test, as the file holds it."""
    return textwrap.dedent(text).lstrip()


def make_app(tmp_path: Path, flows: dict[str, str], *, store: Store | None = None,
             secrets: dict[str, str] | None = None, **settings: Any) -> App:
    """An App over *flows* ({flow id: YAML}) written to tmp_path/flows, its home in
    tmp_path/home unless *settings* say otherwise; *secrets* go to a secrets file only the
    owner may read. The flows must load."""
    folder = tmp_path / "flows"
    folder.mkdir(parents=True, exist_ok=True)
    for flow_id, text in flows.items():
        (folder / f"{flow_id}.yaml").write_text(flow_text(text), encoding="utf-8")
    if secrets is not None:
        file = tmp_path / "secrets.env"
        file.write_text("".join(f"{k}={v}\n" for k, v in secrets.items()), encoding="utf-8")
        os.chmod(file, 0o600)
        settings["secrets_file"] = file
    settings.setdefault("home", tmp_path / "home")
    app = App(Settings(flows=folder, **settings), store=store)
    assert app.flows.ok, [str(p) for p in app.flows.problems]
    return app


def free_port() -> int:
    """A TCP port free on loopback just now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def logger_with(name: str, handler: logging.Handler) -> Iterator[logging.Logger]:
    """The logger *name* at INFO, writing through *handler* alone (nothing propagates to the
    root's handlers) until the block ends."""
    log = logging.getLogger(name)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield log
    finally:
        log.removeHandler(handler)
        log.propagate = True


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll *check* until it returns something truthy, and return that; fail after *timeout*."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
