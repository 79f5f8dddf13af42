"""Shared fixtures: the repository root, the shipped flows and schemas, a loader over them."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.loader import Loader
from engine.refs import Secrets
from engine.schemas import SchemaStore

ROOT = Path(__file__).resolve().parent.parent

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
