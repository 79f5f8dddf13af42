"""Console sessions and the failed-login throttle, kept where every `flowrun serve` sees them.

Several servers behind a load balancer share one store, so a session made on one is good on
the others, a logout on one ends it on all, and guesses counted on one count on all. The
shared state lives in the configured store: Redis keys (`engine.console.redis_state`) when the
store is Redis, tables of the SQLite or PostgreSQL store otherwise
(`engine.console.sql_state`). A store of another kind (a test's) keeps both in this process.

A session id is a random 256-bit value in the browser's cookie; the store keeps only its
SHA-256, so a copy of the store (a backup, a replica) holds no session anyone can use.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from engine.console import throttle
from engine.console.throttle import Throttle

if TYPE_CHECKING:
    from engine.store.base import Store

MAX_SESSIONS = 10_000  # in-process sessions: the oldest are dropped first


@dataclass
class Session:
    user: str
    role: str
    # token, settings (FLOWRUN_CONSOLE_USER), file (the users file) or oidc, then ':' and a
    # mark of the credential used (engine.console.auth): a changed token or password ends it
    source: str
    csrf: str
    expires_at: float  # Unix seconds, on the throttle's clock


class Sessions(Protocol):
    """Sessions by the SHA-256 of their id; an expired one is never returned."""

    def put(self, key: str, session: Session) -> None: ...

    def get(self, key: str) -> Session | None: ...

    def delete(self, key: str) -> None: ...


class Throttles(Protocol):
    """The interface of `engine.console.throttle.Throttle`, which every backend keeps."""

    def blocked(self, keys: list[str]) -> int | None: ...

    def failed(self, keys: list[str]) -> None: ...

    def succeeded(self, keys: list[str]) -> None: ...


def session_key(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


class MemorySessions:
    """Sessions of this process only (a store that keeps none)."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def put(self, key: str, session: Session) -> None:
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions, key=lambda k: self._sessions[k].expires_at)
                del self._sessions[oldest]
            self._sessions[key] = session

    def get(self, key: str) -> Session | None:
        with self._lock:
            session = self._sessions.get(key)
            if session is not None and session.expires_at < throttle.clock():
                del self._sessions[key]
                return None
            return session

    def delete(self, key: str) -> None:
        with self._lock:
            self._sessions.pop(key, None)


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
