"""The console's shared sessions and throttle, one contract for every backend: in-process,
SQLite, Redis and PostgreSQL. A session comes back until it expires or is deleted; a throttle
key blocks after LIMIT failures until the oldest leaves the window, other keys stay free, and a
success clears the keys it was made under. The clock is the test's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.console.sessions import MemorySessions, Session, Sessions, Throttles
from engine.console.state import shared_state
from engine.console.throttle import LIMIT, WINDOW, Throttle
from engine.store.base import Store
from tests.engine.console.support import Clock


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Sessions, Throttles]]:
    store: Store | None = None
    if request.param == "memory":
        yield MemorySessions(), Throttle()
        return
    if request.param == "sqlite":
        from engine.store.sqlite import SqliteStore

        store = SqliteStore(tmp_path / "state.db")
    elif request.param == "redis":
        from engine.store.redis import RedisStore

        store = RedisStore(request.getfixturevalue("redis_url"))
    else:
        from engine.store.postgres import PostgresStore

        store = PostgresStore(request.getfixturevalue("postgres_url"))
    yield shared_state(store)
    store.close()


def test_a_session_lives_until_it_expires_or_is_deleted(
        state: tuple[Sessions, Throttles], clock: Clock) -> None:
    sessions, _ = state
    kept = Session("alice", "operator", "file", "csrf-1", clock.now + 60)
    sessions.put("k1", kept)
    sessions.put("k2", Session("bob", "viewer", "oidc", "csrf-2", clock.now + 120))
    assert sessions.get("k1") == kept
    assert sessions.get("nope") is None
    sessions.delete("k2")
    assert sessions.get("k2") is None
    clock.now += 61
    assert sessions.get("k1") is None


def test_a_key_blocks_after_the_limit_until_its_oldest_failure_leaves(
        state: tuple[Sessions, Throttles], clock: Clock) -> None:
    _, limiter = state
    for _ in range(LIMIT - 1):
        limiter.failed(["addr:10.0.0.1", "user:alice"])
        clock.now += 2
    assert limiter.blocked(["addr:10.0.0.1"]) is None  # one short of the limit
    limiter.failed(["addr:10.0.0.2", "user:alice"])  # the user name, from elsewhere
    assert limiter.blocked(["addr:10.0.0.2", "user:alice"]) == WINDOW - 2 * (LIMIT - 1)
    assert limiter.blocked(["addr:10.0.0.3"]) is None  # another caller, another name
    clock.now += WINDOW - 2 * (LIMIT - 1) - 0.5
    assert limiter.blocked(["user:alice"]) == 1
    clock.now += 0.5
    assert limiter.blocked(["user:alice"]) is None


def test_a_success_clears_its_keys(state: tuple[Sessions, Throttles], clock: Clock) -> None:
    _, limiter = state
    for _ in range(LIMIT):
        limiter.failed(["addr:10.0.0.9", "user:carol"])
    assert limiter.blocked(["user:carol"]) is not None
    limiter.succeeded(["addr:10.0.0.9", "user:carol"])
    assert limiter.blocked(["addr:10.0.0.9", "user:carol"]) is None
