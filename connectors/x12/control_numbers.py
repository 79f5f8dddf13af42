"""Control number sources for outbound interchanges, groups and transaction sets.

X12 wants ISA13, GS06 and ST02 to be unique per trading partner so that
duplicates can be detected and 997s correlated.  The protocol is deliberately
one method wide so each deployment backs it with its own store:
:class:`SqliteControlNumbers` is the durable default of the embedded executor,
:class:`RedisControlNumbers` the one shared by Celery workers on several machines
(a file per machine would hand two partners' interchanges the same ISA13), and
:class:`MemoryControlNumbers` serves tests and dry runs.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

Kind = Literal["interchange", "group", "transaction"]
KINDS: tuple[Kind, ...] = ("interchange", "group", "transaction")
#: ISA13 is nine digits; all three kinds wrap to 1 after this.
MAX_CONTROL_NUMBER = 999_999_999


@runtime_checkable
class ControlNumbers(Protocol):
    def next(self, kind: Kind, partner: str) -> int:
        """Return the next unused number (1…999999999) for this kind and partner."""
        ...


def _check(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"control number kind must be one of {KINDS}, got {kind!r}")


class MemoryControlNumbers:
    """Thread-safe counters that live as long as the object."""

    def __init__(self, start: int = 1) -> None:
        self._start = start
        self._values: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def next(self, kind: Kind, partner: str) -> int:
        _check(kind)
        with self._lock:
            current = self._values.get((kind, partner))
            value = self._start if current is None else _following(current)
            self._values[(kind, partner)] = value
            return value


def _following(current: int) -> int:
    return 1 if current >= MAX_CONTROL_NUMBER else current + 1


class SqliteControlNumbers:
    """Counters in a small SQLite table, safe across threads and processes.

    Each call is one UPSERT … RETURNING statement in its own immediate
    transaction, so concurrent callers (threads here, or other worker
    processes on the same file) never receive the same number.
    """

    _SCHEMA = """
        CREATE TABLE IF NOT EXISTS x12_control_numbers (
            kind    TEXT    NOT NULL,
            partner TEXT    NOT NULL,
            value   INTEGER NOT NULL,
            PRIMARY KEY (kind, partner)
        )
    """
    _NEXT = """
        INSERT INTO x12_control_numbers (kind, partner, value) VALUES (?, ?, ?)
        ON CONFLICT (kind, partner) DO UPDATE SET value =
            CASE WHEN value >= ? THEN 1 ELSE value + 1 END
        RETURNING value
    """

    def __init__(self, path: str | Path, *, start: int = 1, timeout: float = 30.0) -> None:
        self._path = str(path)
        self._start = start
        self._timeout = timeout
        self._lock = threading.Lock()
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves so the
        # write lock is taken up front instead of on first write.
        self._conn = sqlite3.connect(
            self._path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        self._conn.execute(self._SCHEMA)

    def next(self, kind: Kind, partner: str) -> int:
        _check(kind)
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute(
                    self._NEXT, (kind, partner, self._start, MAX_CONTROL_NUMBER)
                ).fetchone()
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqliteControlNumbers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# KEYS: counter. ARGV: start, max. Seeds a new sequence at start; wraps to 1 after max.
_REDIS_NEXT = """
local v = redis.call('GET', KEYS[1])
if not v then v = tonumber(ARGV[1])
elseif tonumber(v) >= tonumber(ARGV[2]) then v = 1
else v = tonumber(v) + 1 end
redis.call('SET', KEYS[1], v)
return v
"""


class RedisControlNumbers:
    """Counters in Redis, one key per kind and partner, each step atomic in one script; with
    the store's persistence (AOF) they survive a restart like the run records do."""

    def __init__(self, client: Any, *, prefix: str = "flowrun:", start: int = 1) -> None:
        self._client = client
        self._prefix = prefix
        self._start = start
        self._next = client.register_script(_REDIS_NEXT)

    def next(self, kind: Kind, partner: str) -> int:
        _check(kind)
        key = f"{self._prefix}x12:control:{kind}:{partner}"
        return int(self._next(keys=[key], args=[self._start, MAX_CONTROL_NUMBER]))
