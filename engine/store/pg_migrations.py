"""The PostgreSQL schema's versions: numbered SQL files applied by ``flowrun db upgrade``.

``engine/store/migrations/NNNN_name.sql`` are shipped with the package; ``schema_migrations``
holds the versions applied. Each migration runs in its own transaction with its row in
``schema_migrations``, so one interrupted half way (a killed process, a lost connection) left
nothing behind and the next upgrade runs it whole. An advisory lock makes a second upgrade wait
for the first and then find nothing to do. A process opening the store checks the version and
refuses a schema it does not know (`check`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from engine.store.base import StoreError

#: pg_advisory_lock key of `flowrun db upgrade` ("flowrun" in ASCII)
UPGRADE_LOCK = 0x666C6F7772756E
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The migrations this flowrunner ships, oldest first."""
    found = []
    for item in resources.files("engine.store.migrations").iterdir():
        match = _NAME.match(item.name)
        if match:
            found.append(Migration(int(match[1]), match[2], item.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def latest() -> int:
    return migrations()[-1].version


def applied(conn: psycopg.Connection) -> list[int]:
    """The versions recorded in the database (none for an empty database)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return []
    return [int(row[0]) for row in
            conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


def upgrade(conn: psycopg.Connection, *, shipped: list[Migration] | None = None,
            ) -> list[Migration]:
    """Apply every pending migration of *shipped* (default: this flowrunner's), each in a
    transaction; the ones applied now. *conn* is in autocommit mode: each migration is its own
    transaction."""
    shipped = migrations() if shipped is None else shipped
    newest = shipped[-1].version
    conn.execute("SELECT pg_advisory_lock(%s)", (UPGRADE_LOCK,))
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY "
                     "KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        done = set(applied(conn))
        newer = [v for v in done if v > newest]
        if newer:
            raise StoreError(too_new(max(newer)))
        ran = []
        for migration in shipped:
            if migration.version in done:
                continue
            with conn.transaction():
                conn.execute(migration.sql.encode())
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                             (migration.version, migration.name))
            ran.append(migration)
        return ran
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (UPGRADE_LOCK,))


def too_new(version: int) -> str:
    return (f"this flowrunner is older than the database schema {version} (it knows versions "
            f"up to {latest()}); upgrade flowrunner before using this database")


def check(conn: psycopg.Connection, where: str) -> None:
    """Refuse a database whose schema this flowrunner does not know, saying what to do."""
    versions = applied(conn)
    current = max(versions, default=0)
    if current > latest():
        raise StoreError(f"{where}: {too_new(current)}")
    missing = [m.version for m in migrations() if m.version not in versions]
    if missing:
        at = f"at schema version {current}" if current else "empty (no flowrunner schema)"
        raise StoreError(f"{where} is {at}; this flowrunner needs version {latest()}: run "
                         "`flowrun db upgrade`")
