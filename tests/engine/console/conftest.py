"""Fixtures shared by the console's tests."""

from __future__ import annotations

import pytest

from engine.console import throttle
from tests.engine.console.support import Clock, Stores


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The throttle's clock, stopped: a test moves it through ``clock.now``."""
    made = Clock()
    monkeypatch.setattr(throttle, "clock", made)
    return made


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def stores(request: pytest.FixtureRequest) -> Stores:
    """Two or more servers of one test share the store these make: on each backend."""
    if request.param == "sqlite":
        return lambda: None
    if request.param == "redis":
        from engine.store.redis import RedisStore

        url = request.getfixturevalue("redis_url")
        return lambda: RedisStore(url)
    from engine.store.postgres import PostgresStore

    url = request.getfixturevalue("postgres_url")
    return lambda: PostgresStore(url)
