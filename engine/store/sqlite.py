"""The embedded store: one SQLite file in WAL mode (default ``.flowrun/state.db``).

Each thread gets its own connection. A file locked by another process is waited for up to
``busy_timeout`` seconds, then reported as a `StoreError` naming the file — never a hang.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.home import private_file
from engine.records import (
    ACTIVE,
    Breach,
    DeadLetter,
    RunState,
    decode_breach,
    decode_dead_letter,
    decode_run,
    encode_breach,
    encode_dead_letter,
    encode_run,
    settles_sla,
)
from engine.store import activity as act
from engine.store import pruning
from engine.store.base import (
    DeadLetterFilter,
    Idempotency,
    PruneReport,
    RetentionPolicy,
    RunFilter,
    StoreError,
)
from engine.store.group_commit import GroupCommit
from engine.store.wal_checkpoint import SAFETY_PAGES, Checkpointer

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, flow_id TEXT NOT NULL, status TEXT NOT NULL, key TEXT,
    correlation_id TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL, due_at REAL,
    data TEXT NOT NULL, finished_at REAL);
CREATE INDEX IF NOT EXISTS runs_flow ON runs(flow_id, created_at);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE INDEX IF NOT EXISTS runs_key ON runs(key);
CREATE INDEX IF NOT EXISTS runs_correlation ON runs(correlation_id);
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL, key TEXT NOT NULL, run_id TEXT NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (scope, key));
CREATE TABLE IF NOT EXISTS flow_versions (
    flow_id TEXT NOT NULL, version TEXT NOT NULL, text TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (flow_id, version));
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL, flow_id TEXT NOT NULL, step TEXT,
    message TEXT NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS dead_letters_flow ON dead_letters(flow_id, created_at);
-- entries filed per bucket of every flow (the console's dead-letter inflow)
CREATE INDEX IF NOT EXISTS dead_letters_created ON dead_letters(created_at);
-- entries by status and flow (the console's and /metrics' open counts): a covering scan
CREATE INDEX IF NOT EXISTS dead_letters_status ON dead_letters(status, flow_id);
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS locks (name TEXT PRIMARY KEY, owner TEXT NOT NULL,
    expires_at REAL NOT NULL);
-- business SLAs (engine/sla): runs with a deadline not yet met or claimed, and breaches
CREATE TABLE IF NOT EXISTS sla_due (run_id TEXT PRIMARY KEY, deadline REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sla_due_deadline ON sla_due(deadline);
CREATE TABLE IF NOT EXISTS sla_breaches (
    run_id TEXT PRIMARY KEY, flow_id TEXT NOT NULL, detected_at REAL NOT NULL,
    data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sla_breaches_detected ON sla_breaches(detected_at);
CREATE INDEX IF NOT EXISTS sla_breaches_flow ON sla_breaches(flow_id, detected_at);
"""


# Runs by flow and status, kept by triggers in the transaction that writes the run (a saved run
# is replaced: with recursive_triggers on, the replaced row is counted out by the delete
# trigger). Counting a flow's runs row by row took 180 ms at a million runs; the console's flow
# health and /metrics count every flow on every view and scrape. A state file from before the
# table is counted once, when it is opened.
COUNTS = (
    "CREATE TABLE run_counts (flow_id TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL,"
    " PRIMARY KEY (flow_id, status)) WITHOUT ROWID",
    "CREATE TRIGGER runs_counted AFTER INSERT ON runs BEGIN"
    " INSERT INTO run_counts VALUES (new.flow_id, new.status, 1)"
    " ON CONFLICT DO UPDATE SET n = n + 1; END",
    "CREATE TRIGGER runs_uncounted AFTER DELETE ON runs BEGIN"
    " UPDATE run_counts SET n = n - 1 WHERE flow_id = old.flow_id AND status = old.status; END",
    "CREATE TRIGGER runs_recounted AFTER UPDATE OF flow_id, status ON runs BEGIN"
    " UPDATE run_counts SET n = n - 1 WHERE flow_id = old.flow_id AND status = old.status;"
    " INSERT INTO run_counts VALUES (new.flow_id, new.status, 1)"
    " ON CONFLICT DO UPDATE SET n = n + 1; END",
    "INSERT INTO run_counts SELECT flow_id, status, COUNT(*) FROM runs GROUP BY flow_id, status",
)

# When a run finished (its terminal save's updated_at; NULL while it is active), indexed by flow
# with what the console's activity charts group by, so a window is one range of a covering index
# per flow. The index is partial: intake's new runs are not in it, and pay nothing for it. A
# state file from before the column gets it, filled from the finished runs, when it is opened.
FINISHED = (
    "ALTER TABLE runs ADD COLUMN finished_at REAL",
    "UPDATE runs SET finished_at = updated_at WHERE status IN ({terminal})",
)
FINISHED_INDEX = ("CREATE INDEX IF NOT EXISTS runs_finished ON runs(flow_id, finished_at, status,"
                  " created_at) WHERE finished_at IS NOT NULL")


#: one run's save: the run, the runs written with it and their encodings, its children, its
#: dead-letter entry and that entry's encoding
_Save = tuple[RunState, list[RunState], list[bytes], list[RunState], DeadLetter | None,
              bytes | None]


class SqliteStore:
    def __init__(self, path: str | Path, busy_timeout: float = 5.0,
                 durability: str = "process_crash"):
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        # WAL with NORMAL syncs at checkpoints only: safe against a killed process, not against
        # a power loss; FULL syncs the log at every commit (one per intake group)
        self._synchronous = "FULL" if durability == "power_loss" else "NORMAL"
        try:
            private_file(self.path)  # 0600 in a 0700 folder: messages are nobody else's
        except OSError as exc:
            raise StoreError(f"the state database {self.path} cannot be used: the folder "
                             f"cannot be created ({exc.strerror})") from None
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._saves: GroupCommit[_Save] = GroupCommit(self._write_saves)
        # the log is copied into the database by a thread of its own, not inside a commit
        self._checkpoints = Checkpointer(self._connect)
        try:
            self._db().executescript(SCHEMA)
            counted = "SELECT 1 FROM sqlite_master WHERE name = 'run_counts'"
            if not self._db().execute(counted).fetchone():
                with self._tx() as db:  # one process adds and fills the table
                    if not db.execute(counted).fetchone():
                        for statement in COUNTS:
                            db.execute(statement)
            self._add_finished()
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def _add_finished(self) -> None:
        columns = "SELECT name FROM pragma_table_info('runs') WHERE name = 'finished_at'"
        if not self._db().execute(columns).fetchone():
            with self._tx() as db:  # one process adds and fills the column
                if not db.execute(columns).fetchone():
                    terminal = ",".join(f"'{status}'" for status in act.FINISHED)
                    for statement in FINISHED:
                        db.execute(statement.format(terminal=terminal))
        self._db().execute(FINISHED_INDEX)

    # -- plumbing ------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                             check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.execute(f"PRAGMA wal_autocheckpoint={SAFETY_PAGES}")  # engine/store/wal_checkpoint
        return db

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = self._connect()
                db.execute("PRAGMA recursive_triggers=ON")  # see COUNTS
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    def _error(self, exc: sqlite3.Error) -> StoreError:
        if "locked" in str(exc) or "busy" in str(exc):
            return StoreError(f"the state database {self.path} is locked by another process; "
                              f"waited {self.busy_timeout:g} s — stop the other flowrun process "
                              "or use another FLOWRUN_HOME")
        return StoreError(f"the state database {self.path} cannot be used: {exc}")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # Writers of this process queue here rather than in SQLite's busy handler, which
        # sleeps and polls (up to 100 ms a time): under load that, not the work, set latency.
        if not self._write_lock.acquire(timeout=self.busy_timeout):
            raise self._error(sqlite3.OperationalError("database is locked"))
        try:
            db = self._db()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._error(exc) from None
        finally:
            self._write_lock.release()
        self._checkpoints.committed()

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        self._checkpoints.close()
        # a write under way (the intake writer, a worker) finishes first: closing a connection
        # another thread is inside of would crash the process, not just fail the write
        locked = self._write_lock.acquire(timeout=self.busy_timeout)
        try:
            with self._lock:
                for db in self._connections:
                    db.close()
                self._connections.clear()
            self._local = threading.local()
        finally:
            if locked:
                self._write_lock.release()

    # -- runs ----------------------------------------------------------------------------------
    def save_run(self, state: RunState, *, dead_letter: DeadLetter | None = None,
                 children: list[RunState] | None = None) -> None:
        runs = [state, *(children or [])]
        encoded = [encode_run(run) for run in runs]  # before the lock: no I/O in it
        entry = encode_dead_letter(dead_letter) if dead_letter is not None else None
        # the saves of worker threads finishing at once share one transaction; this returns
        # once the one holding this save committed (engine/store/group_commit)
        self._saves((state, runs, encoded, children or [], dead_letter, entry))

    def _write_saves(self, saves: list[_Save]) -> None:
        with self._tx() as db:
            for state, runs, encoded, children, dead_letter, entry in saves:
                for run, data in zip(runs, encoded, strict=True):
                    self._insert_run(db, run, data)
                self._sla_enter(db, children)
                if settles_sla(state):
                    db.execute("DELETE FROM sla_due WHERE run_id = ?", (state.run_id,))
                if dead_letter is not None:
                    db.execute("INSERT OR REPLACE INTO dead_letters VALUES (?,?,?,?,?,?,?,?)",
                               (dead_letter.id, dead_letter.run_id, dead_letter.flow_id,
                                dead_letter.step, dead_letter.message, dead_letter.status,
                                dead_letter.created_at, entry))

    def get_run(self, run_id: str) -> RunState | None:
        rows = self._query("SELECT data FROM runs WHERE run_id = ?", (run_id,))
        return decode_run(rows[0][0]) if rows else None

    def list_runs(self, query: RunFilter) -> list[RunState]:
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("flow_id", query.flow), ("status", query.status),
                              ("key", query.key), ("correlation_id", query.correlation_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.since is not None:
            where.append("created_at >= ?")
            args.append(query.since)
        if query.until is not None:
            where.append("created_at < ?")
            args.append(query.until)
        sql = "SELECT data FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        if query.payload is not None:
            return self._search_payload(sql, args, query)
        rows = self._query(sql + " ORDER BY created_at DESC LIMIT ?", (*args, query.limit))
        return [decode_run(r[0]) for r in rows]

    def _search_payload(self, sql: str, args: list[Any], query: RunFilter) -> list[RunState]:
        """Runs whose original body has the field, among the latest `query.window` that match
        the other conditions: json_extract reads each record, so the window bounds the work.
        SQLite's JSON reads true as 1; the decoded record settles such cases."""
        assert query.payload is not None
        values = [v for v in query.payload.values() if v is not None]
        path = "$.original.body" + "".join(f'."{name}"' for name in query.payload.path)
        marks = ",".join("?" * len(values))
        # json_extract gives SQL NULL for a JSON null, which IN never matches: ask its type
        null = (" OR json_type(CAST(data AS TEXT), ?) = 'null'"
                if len(values) < len(query.payload.values()) else "")
        latest = sql.replace("SELECT data FROM", "SELECT data, created_at FROM", 1)
        # json_valid first: a record of an old version that SQLite cannot parse (a NaN) is
        # passed over instead of failing the search; it reuses json_extract's parse
        rows = self._query(f"SELECT data FROM ({latest} ORDER BY created_at DESC LIMIT ?) WHERE "
                           "json_valid(CAST(data AS TEXT)) AND "
                           f"(json_extract(CAST(data AS TEXT), ?) IN ({marks}){null}) "
                           "ORDER BY created_at DESC",
                           (*args, query.window, path, *values, *([path] if null else [])))
        found = [decode_run(r[0]) for r in rows]
        return [run for run in found if query.payload.matches(run.original.get("body"))
                ][:query.limit]

    def active_runs(self) -> list[RunState]:
        marks = ",".join("?" * len(ACTIVE))
        rows = self._query(f"SELECT data FROM runs WHERE status IN ({marks}) ORDER BY created_at",
                           ACTIVE)
        return [decode_run(r[0]) for r in rows]

    def count_runs(self, flow: str | None = None) -> dict[str, int]:
        sql = "SELECT status, SUM(n) FROM run_counts" + (" WHERE flow_id = ?" if flow else "")
        rows = self._query(sql + " GROUP BY status", (flow,) if flow else ())
        return {status: count for status, count in rows if count > 0}

    def count_dead_letters(self, status: str = "open") -> dict[str, int]:
        rows = self._query("SELECT flow_id, COUNT(*) FROM dead_letters WHERE status = ? "
                           "GROUP BY flow_id", (status,))
        return {flow: count for flow, count in rows if count}

    def activity(self, flow: str | None, since: float, until: float,
                 bucket: float) -> list[act.Bucket]:
        start, count = act.frame(since, until, bucket)
        end = start + count * bucket
        only = " AND flow_id = ?" if flow is not None else ""
        # all flows: one range of the index per flow (SQLite has no skip-scan without ANALYZE)
        every = "flow_id IN (SELECT flow_id FROM run_counts) AND " if flow is None else ""
        marks = ",".join("?" * len(act.FAILED))
        runs = self._query(
            f"SELECT CAST((finished_at - ?) / ? AS INTEGER) AS b, status IN ({marks}) AS bad, "
            f"{act.sql_slot('finished_at - created_at')} AS slot, COUNT(*) FROM runs "
            f"WHERE {every}finished_at >= ? AND finished_at < ?{only} GROUP BY b, bad, slot",
            (start, bucket, *act.FAILED, start, end, *((flow,) if flow is not None else ())))
        entries = self._query(
            "SELECT CAST((created_at - ?) / ? AS INTEGER) AS b, COUNT(*) FROM dead_letters "
            f"WHERE created_at >= ? AND created_at < ?{only} GROUP BY b",
            (start, bucket, start, end, *((flow,) if flow is not None else ())))
        return act.fill(start, count, bucket, runs, entries)

    # -- idempotency ---------------------------------------------------------------------------
    def create_run(self, state: RunState, idempotency: Idempotency | None = None) -> str | None:
        return self.create_runs([(state, idempotency)])[0]

    def create_runs(self, runs: list[tuple[RunState, Idempotency | None]],
                    messages: list[tuple[str, str]] | None = None) -> list[str | None]:
        """One transaction for the whole group: one commit (one sync) however many runs."""
        if messages is not None:
            raise ValueError("the SQLite store cannot queue broker messages")
        now = time.time()
        encoded = [encode_run(state) for state, _ in runs]  # before the lock: no I/O in it
        holders: list[str | None] = []
        with self._tx() as db:
            for (state, idempotency), data in zip(runs, encoded, strict=True):
                if idempotency is not None:
                    scope, key, ttl = idempotency
                    row = db.execute("SELECT run_id, expires_at FROM idempotency WHERE scope=? "
                                     "AND key=?", (scope, key)).fetchone()
                    if row is not None and row[1] > now:
                        holders.append(str(row[0]))
                        continue
                    db.execute("INSERT OR REPLACE INTO idempotency VALUES (?,?,?,?)",
                               (scope, key, state.run_id, now + ttl))
                self._insert_run(db, state, data)
                self._sla_enter(db, [state])
                holders.append(None)
        return holders

    @staticmethod
    def _sla_enter(db: sqlite3.Connection, runs: list[RunState]) -> None:
        for run in runs:
            if run.deadline is not None:
                db.execute("INSERT OR IGNORE INTO sla_due VALUES (?,?)", (run.run_id,
                                                                          run.deadline))

    def _insert_run(self, db: sqlite3.Connection, run: RunState, data: bytes) -> None:
        # a saved run is updated in place: only the status index changes (a REPLACE deleted and
        # wrote again the row and all five index entries); flow, creation and correlation id
        # never change once a run is recorded
        # a run finishes once: saved again when done (compacted, say), it keeps its time
        db.execute("INSERT INTO runs (run_id, flow_id, status, key, correlation_id, created_at, "
                   "updated_at, due_at, data, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?) "
                   "ON CONFLICT (run_id) DO UPDATE "
                   "SET status = excluded.status, key = excluded.key, "
                   "updated_at = excluded.updated_at, due_at = excluded.due_at, "
                   "data = excluded.data, finished_at = CASE WHEN excluded.finished_at IS NULL "
                   "THEN NULL ELSE coalesce(runs.finished_at, excluded.finished_at) END",
                   (run.run_id, run.flow_id, run.status, run.key, run.correlation_id,
                    run.created_at, run.updated_at, run.due_at, data,
                    run.updated_at if run.status in act.FINISHED else None))

    # -- flow versions -------------------------------------------------------------------------
    def save_flow_version(self, flow_id: str, version: str, text: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO flow_versions VALUES (?,?,?,?)",
                       (flow_id, version, text, time.time()))

    def get_flow_version(self, flow_id: str, version: str) -> str | None:
        rows = self._query("SELECT text FROM flow_versions WHERE flow_id=? AND version=?",
                           (flow_id, version))
        return str(rows[0][0]) if rows else None

    # -- dead letters --------------------------------------------------------------------------
    def get_dead_letter(self, entry_id: str) -> DeadLetter | None:
        rows = self._query("SELECT data FROM dead_letters WHERE id = ?", (entry_id,))
        return decode_dead_letter(rows[0][0]) if rows else None

    def list_dead_letters(self, query: DeadLetterFilter) -> list[DeadLetter]:
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("flow_id", query.flow), ("step", query.step),
                              ("status", query.status)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.error:
            where.append("message LIKE ? ESCAPE '\\'")
            escaped = query.error.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(f"%{escaped}%")
        if query.since is not None:
            where.append("created_at >= ?")
            args.append(query.since)
        if query.until is not None:
            where.append("created_at < ?")
            args.append(query.until)
        # the classification is in the record only: read where the indexed conditions lead
        if query.kind is not None or query.http_status is not None:
            where.append("json_valid(CAST(data AS TEXT))")  # as in `_search_payload`
        if query.kind is not None:
            where.append("json_extract(CAST(data AS TEXT), '$.reason.kind') = ?")
            args.append(query.kind)
        if query.http_status is not None:
            where.append("json_extract(CAST(data AS TEXT), '$.reason.status') = ?")
            args.append(query.http_status)
        sql = "SELECT data FROM dead_letters" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._query(sql + " ORDER BY created_at DESC LIMIT ?", (*args, query.limit))
        return [decode_dead_letter(r[0]) for r in rows]

    def update_dead_letter(self, entry: DeadLetter) -> None:
        with self._tx() as db:
            db.execute("UPDATE dead_letters SET status=?, data=? WHERE id=?",
                       (entry.status, encode_dead_letter(entry), entry.id))

    # -- retention (engine/store/pruning) ---------------------------------------------------------
    def prune(self, policy: RetentionPolicy, now: float, *, batch: int = 500,
              flow: str | None = None, dry_run: bool = False) -> PruneReport:
        return pruning.prune(self, policy, now, batch=batch, flow=flow, dry_run=dry_run)

    def prune_flows(self) -> set[str]:
        rows = self._query("SELECT flow_id FROM run_counts UNION "
                           "SELECT DISTINCT flow_id FROM dead_letters")
        return {str(r[0]) for r in rows}

    def oldest_runs(self, flow: str, since: float | None, before: float, offset: int,
                    limit: int) -> list[tuple[RunState, int]]:
        rows = self._query("SELECT data FROM runs WHERE flow_id = ? AND created_at >= ? AND "
                           "created_at < ? ORDER BY created_at, run_id LIMIT ? OFFSET ?",
                           (flow, -1e300 if since is None else since, before, limit, offset))
        return [(decode_run(r[0]), len(r[0])) for r in rows]

    def oldest_entries(self, flow: str, since: float | None, before: float, offset: int,
                       limit: int) -> list[tuple[DeadLetter, int]]:
        rows = self._query("SELECT data FROM dead_letters WHERE flow_id = ? AND created_at >= ? "
                           "AND created_at < ? ORDER BY created_at, id LIMIT ? OFFSET ?",
                           (flow, -1e300 if since is None else since, before, limit, offset))
        return [(decode_dead_letter(r[0]), len(r[0])) for r in rows]

    def remove(self, runs: list[RunState], entries: list[DeadLetter]) -> set[str]:
        gone: set[str] = set()
        with self._tx() as db:
            for run in runs:
                if db.execute("DELETE FROM runs WHERE run_id = ? AND status = ?",
                              (run.run_id, run.status)).rowcount:
                    gone.add(run.run_id)
            for entry in entries:
                if db.execute("DELETE FROM dead_letters WHERE id = ? AND status = ?",
                              (entry.id, entry.status)).rowcount:
                    gone.add(entry.id)
                    db.execute("DELETE FROM runs WHERE run_id = ? AND status = 'dead_lettered'",
                               (entry.run_id,))
            # a run's SLA rows go with it (engine/sla)
            for run_id in [r.run_id for r in runs] + [e.run_id for e in entries]:
                if not db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                    db.execute("DELETE FROM sla_due WHERE run_id = ?", (run_id,))
                    db.execute("DELETE FROM sla_breaches WHERE run_id = ?", (run_id,))
        return gone

    def replace_runs(self, runs: list[tuple[RunState, bytes]]) -> set[str]:
        done: set[str] = set()
        with self._tx() as db:
            for run, data in runs:
                if db.execute("UPDATE runs SET data = ? WHERE run_id = ? AND status = ?",
                              (data, run.run_id, run.status)).rowcount:
                    done.add(run.run_id)
        return done

    def expired_keys(self, now: float, limit: int, dry_run: bool) -> int:
        # no index on expires_at (every intake would pay for it): the keys are read outside
        # the write lock, then removed by primary key, checked again inside
        if dry_run:
            return int(self._query("SELECT COUNT(*) FROM idempotency WHERE expires_at < ?",
                                   (now,))[0][0])
        rows = self._query("SELECT scope, key FROM idempotency WHERE expires_at < ? LIMIT ?",
                           (now, limit))
        if not rows:
            return 0
        with self._tx() as db:
            return sum(db.execute("DELETE FROM idempotency WHERE scope = ? AND key = ? AND "
                                  "expires_at < ?", (scope, key, now)).rowcount
                       for scope, key in rows)

    # -- business SLAs (engine/sla) --------------------------------------------------------------
    def sla_due(self, now: float, limit: int) -> list[tuple[str, float]]:
        rows = self._query("SELECT run_id, deadline FROM sla_due WHERE deadline <= ? "
                           "ORDER BY deadline LIMIT ?", (now, limit))
        return [(str(r[0]), float(r[1])) for r in rows]

    def settle_sla(self, run_ids: list[str]) -> None:
        with self._tx() as db:
            db.executemany("DELETE FROM sla_due WHERE run_id = ?", [(i,) for i in run_ids])

    def claim_breach(self, breach: Breach) -> bool:
        data = encode_breach(breach)
        with self._tx() as db:
            db.execute("DELETE FROM sla_due WHERE run_id = ?", (breach.run_id,))
            return bool(db.execute("INSERT OR IGNORE INTO sla_breaches VALUES (?,?,?,?)",
                                   (breach.run_id, breach.flow_id, breach.detected_at,
                                    data)).rowcount)

    def get_breach(self, run_id: str) -> Breach | None:
        rows = self._query("SELECT data FROM sla_breaches WHERE run_id = ?", (run_id,))
        return decode_breach(rows[0][0]) if rows else None

    def list_breaches(self, flow: str | None = None, limit: int = 100) -> list[Breach]:
        where, args = (" WHERE flow_id = ?", (flow,)) if flow else ("", ())
        rows = self._query(f"SELECT data FROM sla_breaches{where} ORDER BY detected_at DESC "
                           "LIMIT ?", (*args, limit))
        return [decode_breach(r[0]) for r in rows]

    # -- cursors and locks ---------------------------------------------------------------------
    def get_cursor(self, name: str) -> str | None:
        rows = self._query("SELECT value FROM cursors WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else None

    def set_cursor(self, name: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO cursors VALUES (?,?)", (name, value))

    def acquire_lock(self, name: str, owner: str, ttl: float) -> bool:
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT owner, expires_at FROM locks WHERE name=?", (name,)).fetchone()
            if row is not None and row[0] != owner and row[1] > now:
                return False
            db.execute("INSERT OR REPLACE INTO locks VALUES (?,?,?)", (name, owner, now + ttl))
        return True

    def release_lock(self, name: str, owner: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM locks WHERE name=? AND owner=?", (name, owner))

