"""Messages sent with ``mdn: async`` whose receipt has not come yet, by AS2 Message-Id.

The `as2` step adds one after the partner took the message; the endpoint that receives the
MDN later finds it here (the run, the step and the MIC to compare) and settles it. Kept where
the app keeps its state: Redis when it runs on Redis (every worker and server share it), else
a SQLite file under the app's home.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from engine.home import private_file

#: how long an unanswered message is remembered (an MDN later than this is refused)
TTL = 30 * 24 * 3600


class SqlitePending:
    def __init__(self, path: str):
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, timeout=30, isolation_level=None,
                                     check_same_thread=False)
        self._conn.execute("CREATE TABLE IF NOT EXISTS as2_pending (message_id TEXT PRIMARY "
                           "KEY, record TEXT NOT NULL)")

    def add(self, message_id: str, record: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO as2_pending VALUES (?, ?)",
                               (message_id, json.dumps(record)))

    def get(self, message_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT record FROM as2_pending WHERE message_id = ?",
                                     (message_id,)).fetchone()
        return json.loads(row[0]) if row else None


class RedisPending:
    def __init__(self, client: Any):
        self._redis = client

    def add(self, message_id: str, record: dict[str, Any]) -> None:
        self._redis.set(f"flowrun:as2:pending:{message_id}", json.dumps(record), ex=TTL)

    def get(self, message_id: str) -> dict[str, Any] | None:
        raw = self._redis.get(f"flowrun:as2:pending:{message_id}")
        return json.loads(raw) if raw else None


Pending = SqlitePending | RedisPending


def pending(services: dict[str, Any]) -> Pending:
    """The deployment's pending messages (see the module docstring)."""
    client = services.get("redis")
    if client is not None:
        return _redis(client)
    home = Path(services.get("home") or os.environ.get("FLOWRUN_HOME", ".flowrun"))
    return _sqlite(str(home.resolve() / "as2-pending.db"))


@functools.lru_cache(maxsize=16)
def _sqlite(path: str) -> SqlitePending:
    private_file(Path(path))
    return SqlitePending(path)


@functools.lru_cache(maxsize=16)
def _redis(client: Any) -> RedisPending:
    return RedisPending(client)
