"""Console sessions and the failed-login throttle in the SQLite or PostgreSQL store's database.

Two small tables beside the records (created here for SQLite; by migration 0002 for
PostgreSQL): ``console_sessions`` (the SHA-256 of a session id, its user, role, where the user
came from, CSRF token and expiry) and ``console_failures`` (one row per failed credential: key
and time). Expired rows go when new ones are written, so neither table grows beyond the live
sessions and the failures of the last window. Every statement is its own short transaction.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.console import throttle
from engine.console.sessions import Session

if TYPE_CHECKING:
    from engine.store.postgres import PostgresStore
    from engine.store.sqlite import SqliteStore

Run = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS console_sessions (
    id TEXT PRIMARY KEY, user_name TEXT NOT NULL, role TEXT NOT NULL, source TEXT NOT NULL,
    csrf TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS console_sessions_expiry ON console_sessions (expires_at);
CREATE TABLE IF NOT EXISTS console_failures (key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS console_failures_key_at ON console_failures (key, at);
CREATE INDEX IF NOT EXISTS console_failures_at ON console_failures (at);
"""


class SqlState:
    """Sessions (the `Sessions` protocol) in one database; `throttle()` gives its throttle.
    *run* executes one statement in its own transaction and returns its rows."""

    def __init__(self, run: Run, mark: str):
        self._run = run
        self._mark = mark  # the driver's parameter placeholder: ? (sqlite3) or %s (psycopg)

    def sql(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        return self._run(statement.replace("?", self._mark), args)

    @classmethod
    def sqlite(cls, store: SqliteStore) -> SqlState:
        def run(statement: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            if statement.lstrip().upper().startswith("SELECT"):
                return store._query(statement, args)
            with store._tx() as db:
                return db.execute(statement, args).fetchall()

        try:
            store._db().executescript(SQLITE_SCHEMA)  # as the store makes its own tables
        except sqlite3.Error as exc:
            raise store._error(exc) from None
        return cls(run, "?")

    @classmethod
    def postgres(cls, store: PostgresStore) -> SqlState:
        def run(statement: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            with store._tx() as cur:
                cur.execute(statement.encode(), args)
                return cur.fetchall() if cur.description else []

        return cls(run, "%s")

    # -- sessions ------------------------------------------------------------------------------
    def put(self, key: str, session: Session) -> None:
        self.sql("DELETE FROM console_sessions WHERE expires_at < ?", throttle.clock())
        self.sql("INSERT INTO console_sessions (id, user_name, role, source, csrf, expires_at) "
                 "VALUES (?, ?, ?, ?, ?, ?)", key, session.user, session.role, session.source,
                 session.csrf, session.expires_at)

    def get(self, key: str) -> Session | None:
        rows = self.sql("SELECT user_name, role, source, csrf, expires_at FROM console_sessions "
                        "WHERE id = ? AND expires_at >= ?", key, throttle.clock())
        return Session(*rows[0]) if rows else None

    def delete(self, key: str) -> None:
        self.sql("DELETE FROM console_sessions WHERE id = ?", key)

    def throttle(self, limit: int = throttle.LIMIT, window: float = throttle.WINDOW,
                 ) -> SqlThrottle:
        return SqlThrottle(self, limit, window)


class SqlThrottle:
    """`engine.console.throttle.Throttle` over the ``console_failures`` table."""

    def __init__(self, state: SqlState, limit: int, window: float):
        self.state, self.limit, self.window = state, limit, window

    def blocked(self, keys: list[str]) -> int | None:
        now = throttle.clock()
        wait = 0.0
        for key in keys:
            # the limit-th newest failure in the window: blocked until it leaves
            rows = self.state.sql("SELECT at FROM console_failures WHERE key = ? AND at > ? "
                                  "ORDER BY at DESC LIMIT 1 OFFSET ?", key, now - self.window,
                                  self.limit - 1)
            if rows:
                wait = max(wait, float(rows[0][0]) + self.window - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def failed(self, keys: list[str]) -> None:
        now = throttle.clock()
        self.state.sql("DELETE FROM console_failures WHERE at <= ?", now - self.window)
        for key in keys:
            self.state.sql("INSERT INTO console_failures (key, at) VALUES (?, ?)", key, now)

    def succeeded(self, keys: list[str]) -> None:
        for key in keys:
            self.state.sql("DELETE FROM console_failures WHERE key = ?", key)
