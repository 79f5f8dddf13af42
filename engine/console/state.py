"""Where the console keeps its sessions and failed-login throttle, so every `flowrun serve` sees
them.

Several servers behind a load balancer share one store, so a session made on one is good on
the others, a logout on one ends it on all, and guesses counted on one count on all. The
shared state lives in the configured store: Redis keys (`engine.console.redis_state`) when the
store is Redis, tables of the SQLite or PostgreSQL store otherwise
(`engine.console.sql_state`). A store of another kind (a test's) keeps both in this process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.console.sessions import MemorySessions, Sessions, Throttles
from engine.console.throttle import Throttle

if TYPE_CHECKING:
    from engine.store.base import Store


def shared_state(store: Store | None) -> tuple[Sessions, Throttles]:
    """Sessions and throttle in *store*, which every server of this deployment shares."""
    from engine.store.redis import RedisStore
    from engine.store.sqlite import SqliteStore

    if isinstance(store, RedisStore):  # Redis alone, or Redis beside PostgreSQL records
        from engine.console.redis_state import RedisSessions, RedisThrottle

        return RedisSessions(store), RedisThrottle(store)
    if isinstance(store, SqliteStore):
        from engine.console.sql_state import SqlState

        state = SqlState.sqlite(store)
        return state, state.throttle()
    try:
        from engine.store.postgres import PostgresStore
    except ImportError:  # the optional extra is not installed: no PostgreSQL store either
        PostgresStore = None  # type: ignore[assignment,misc]
    if PostgresStore is not None and isinstance(store, PostgresStore):
        from engine.console.sql_state import SqlState

        state = SqlState.postgres(store)
        return state, state.throttle()
    return MemorySessions(), Throttle()
