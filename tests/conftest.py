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
pytest_plugins = ["tests.redis_fixture", "tests.postgres_fixture"]


@pytest.fixture
def loader() -> Loader:
    return Loader(schemas=SchemaStore(ROOT / "schemas"), secrets=Secrets(environ={}))
