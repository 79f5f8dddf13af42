"""The PostgreSQL store: runs, dead letters, flow versions, cursors and locks in PostgreSQL.

Used when ``FLOWRUN_DATABASE_URL`` is set: alone with the embedded executor, or as the records
of `engine.store.pg_redis.RedisPostgresStore` beside Redis and Celery. Connections come from a
psycopg pool (each checked before use, so one broken by a server restart is replaced, not
failed on). Every write is one transaction; a group of new runs is one transaction however
large, its idempotency keys claimed in it (`create_runs`). Any database failure surfaces as a
`StoreError`. The schema is versioned (engine/store/pg_migrations): a store opened on a schema
this flowrunner does not know refuses to start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

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
from engine.store import pg_migrations, pruning, sql_jobs
from engine.store.base import (
    BulkJob,
    DeadLetterFilter,
    Idempotency,
    PruneReport,
    RetentionPolicy,
    RunFilter,
    StoreError,
)

log = logging.getLogger("flowrunner.store")
T = TypeVar("T")
Cursor = psycopg.Cursor[Any]

#: how often (seconds) a process folds run-count changes and drops expired idempotency keys
TIDY_EVERY = 5.0

_RUN_ROW = ("(run_id, flow_id, status, key, correlation_id, created_at, updated_at, due_at, data,"
            " payload, finished_at)")
# a run's payload (its original body, for search) is written when it is recorded and kept; a
# run finishes once: saved again when done, it keeps its time (migration 0005)
_UPSERT_RUNS = f"""
INSERT INTO runs {_RUN_ROW}
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::float8[],
                     %s::float8[], %s::float8[], %s::bytea[], %s::text[]::jsonb[], %s::float8[])
ON CONFLICT (run_id) DO UPDATE SET flow_id = excluded.flow_id, status = excluded.status,
    key = excluded.key, correlation_id = excluded.correlation_id,
    created_at = excluded.created_at, updated_at = excluded.updated_at,
    due_at = excluded.due_at, data = excluded.data,
    payload = coalesce(excluded.payload, runs.payload),
    finished_at = CASE WHEN excluded.finished_at IS NULL THEN NULL
                       ELSE coalesce(runs.finished_at, excluded.finished_at) END
"""
#: the largest body (JSON bytes) kept as a searchable payload; larger ones are not indexed
PAYLOAD_LIMIT = 64 * 1024


def payload_of(state: RunState) -> str | None:
    """The run's original body as jsonb text, when it is an object or array jsonb can hold
    within `PAYLOAD_LIMIT`; else None (not searchable by payload)."""
    body = state.original.get("body")
    if not isinstance(body, dict | list):
        return None
    try:
        text = orjson.dumps(body)
    except TypeError:  # past 64-bit integers, lone surrogates: not worth a second encoder
        return None
    if len(text) > PAYLOAD_LIMIT or b"\\u0000" in text:  # jsonb refuses NUL characters
        return None
    return text.decode()

# Claims the keys of a group (distinct keys: a statement may touch a row once) and says, per
# key, whether this run now holds it. A key whose holder expired is taken over.
_CLAIM = """
INSERT INTO idempotency AS i (scope, key, run_id, expires_at)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[])
ON CONFLICT (scope, key) DO UPDATE SET run_id = excluded.run_id,
    expires_at = excluded.expires_at WHERE i.expires_at <= %s
RETURNING scope, key
"""

_HOLDERS = """
SELECT scope, key, run_id FROM idempotency
WHERE (scope, key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
"""

# Folds the appended run-count changes into the totals; skipped while another process does it.
_FOLD_COUNTS = """
WITH moved AS (DELETE FROM run_count_changes RETURNING flow_id, status, n)
INSERT INTO run_counts (flow_id, status, n)
SELECT flow_id, status, sum(n) FROM moved GROUP BY flow_id, status
ON CONFLICT (flow_id, status) DO UPDATE SET n = run_counts.n + excluded.n
"""
_TIDY_LOCK = 0x666C6F7774  # pg_try_advisory_xact_lock key of the fold


class PostgresStore:
    #: payload search runs over every run, through the GIN index (engine/store/base)
    payload_indexed = True

    def __init__(self, url: str, *, pool_size: int = 10, timeout: float = 5.0,
                 check_schema: bool = True):
        self.url = url
        self.where = f"the PostgreSQL store {describe(url)}"
        self.timeout = timeout
        self._tidied = 0.0
        self._tidy_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self.pool_size = max(2, pool_size)
        # one plain connection first: a server away, a database missing or a password refused
        # is said at once, and a schema this flowrunner does not know is refused
        try:
            with psycopg.connect(url, autocommit=True,
                                 connect_timeout=max(1, round(timeout))) as conn:
                if check_schema:
                    pg_migrations.check(conn, self.where)
        except psycopg.Error as exc:
            raise self._error(exc) from None
        self.pool = self._open_pool()

    def _open_pool(self) -> ConnectionPool:
        pool = ConnectionPool(
            self.url, min_size=1, max_size=self.pool_size, timeout=self.timeout, open=False,
            name="flowrun", check=ConnectionPool.check_connection,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(self.timeout))})
        try:
            pool.open(wait=True, timeout=self.timeout)
        except psycopg.Error as exc:
            pool.close()
            raise self._error(self._why_not(exc)) from None
        return pool

    def _why_not(self, exc: psycopg.Error) -> BaseException:
        """The reason a pool could not open (refused, no such database, password rejected):
        the pool itself reports only that it timed out."""
        try:
            psycopg.connect(self.url, connect_timeout=max(1, round(self.timeout))).close()
        except psycopg.Error as reason:
            return reason
        return exc

    def _connection(self) -> Any:
        """A connection of the pool; a store used again after `close` opens a new pool, as
        the other stores reconnect."""
        if self.pool.closed:
            with self._pool_lock:
                if self.pool.closed:
                    self.pool = self._open_pool()
        return self.pool.connection()

    # -- plumbing ------------------------------------------------------------------------------
    def _error(self, exc: BaseException) -> StoreError:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreError(f"{self.where} cannot be used: {text}")

    @contextmanager
    def _tx(self) -> Iterator[Cursor]:
        """One transaction, committed when the block ends, rolled back if it raises."""
        try:
            with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
                yield cur
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def _read(self, fn: Callable[[Cursor], T]) -> T:
        try:
            with self._connection() as conn, conn.cursor() as cur:
                return fn(cur)
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def _rows(self, sql: str, args: Any = ()) -> list[tuple[Any, ...]]:
        return self._read(lambda cur: cur.execute(sql.encode(), args).fetchall())

    def close(self) -> None:
        self.pool.close()

    # -- runs ----------------------------------------------------------------------------------
    @staticmethod
    def _run_columns(runs: list[RunState], data: list[bytes] | None = None,
                     new: int = 0) -> tuple[list[Any], ...]:
        """The columns of *runs*; the payload of the first *new* runs only (runs being recorded:
        a saved run keeps the payload it was recorded with, so saving costs no encoding)."""
        return ([r.run_id for r in runs], [r.flow_id for r in runs], [r.status for r in runs],
                [r.key for r in runs], [r.correlation_id for r in runs],
                [r.created_at for r in runs], [r.updated_at for r in runs],
                [r.due_at for r in runs], data or [encode_run(r) for r in runs],
                [payload_of(r) if i < new else None for i, r in enumerate(runs)],
                [r.updated_at if r.status in act.FINISHED else None for r in runs])

    def save_run(self, state: RunState, *, dead_letter: DeadLetter | None = None,
                 children: list[RunState] | None = None) -> None:
        kids = children or []
        # the children are new runs: listed first, so their payloads are written
        columns = self._run_columns([*kids, state], new=len(kids))
        with self._tx() as cur:
            cur.execute(_UPSERT_RUNS.encode(), columns)
            self._sla_enter(cur, children or [])
            if settles_sla(state):
                cur.execute("DELETE FROM sla_due WHERE run_id = %s", (state.run_id,))
            if dead_letter is not None:
                self._put_dead_letter(cur, dead_letter)
        self._tidy()

    def create_run(self, state: RunState, idempotency: Idempotency | None = None) -> str | None:
        return self.create_runs([(state, idempotency)])[0]

    def create_runs(self, runs: list[tuple[RunState, Idempotency | None]],
                    messages: list[tuple[str, str]] | None = None) -> list[str | None]:
        """One transaction for the whole group: the keys claimed and the runs recorded commit
        together, so a crash in between leaves neither (a sender's retry is recorded then).
        Broker *messages* are queued by `RedisPostgresStore`, never here."""
        if messages is not None:
            raise ValueError("the PostgreSQL store cannot queue broker messages")
        now = time.time()
        encoded = [encode_run(state) for state, _ in runs]  # before the transaction
        holders: list[str | None] = [None] * len(runs)
        first: dict[tuple[str, str], int] = {}  # a key's first run in the group claims it
        claims: list[tuple[str, str, str, float]] = []
        for i, (state, idempotency) in enumerate(runs):
            if idempotency is not None and idempotency[:2] not in first:
                first[idempotency[:2]] = i
                claims.append((*idempotency[:2], state.run_id, now + idempotency[2]))
        claims.sort()  # groups claim in one order: two never wait for each other's keys
        with self._tx() as cur:
            if claims:
                scopes, keys, ids, expiries = (list(c) for c in zip(*claims, strict=True))
                cur.execute(_CLAIM.encode(), (scopes, keys, ids, expiries, now))
                won = {(str(s), str(k)) for s, k in cur.fetchall()}
                lost = [c for c in claims if (c[0], c[1]) not in won]
                held = self._holders(cur, lost) if lost else {}
                for i, (_, idempotency) in enumerate(runs):
                    if idempotency is None:
                        continue
                    j = first[idempotency[:2]]
                    if i > j:  # an earlier run of this group has (or met) the key
                        holders[i] = holders[j] or runs[j][0].run_id
                    elif idempotency[:2] not in won:
                        holders[i] = held.get(idempotency[:2])
                        if holders[i] is None:  # its holder expired and went meanwhile
                            raise StoreError(f"{self.where}: idempotency key "
                                             f"{idempotency[1]!r} changed hands; try again")
            fresh = [i for i, holder in enumerate(holders) if holder is None]
            if fresh:
                cur.execute(_UPSERT_RUNS.encode(), self._run_columns(
                    [runs[i][0] for i in fresh], [encoded[i] for i in fresh], new=len(fresh)))
                self._sla_enter(cur, [runs[i][0] for i in fresh])
        self._tidy()
        return holders

    @staticmethod
    def _sla_enter(cur: Cursor, runs: list[RunState]) -> None:
        timed = [run for run in runs if run.deadline is not None]
        if timed:
            cur.execute("INSERT INTO sla_due SELECT * FROM unnest(%s::text[], %s::float8[]) "
                        "ON CONFLICT DO NOTHING", ([r.run_id for r in timed],
                                                   [r.deadline for r in timed]))

    def _holders(self, cur: Cursor, lost: list[tuple[str, str, str, float]]
                 ) -> dict[tuple[str, str], str]:
        """Who holds the keys this group did not get. A key claimed by a transaction that
        committed while the claim waited for it is visible to this new statement."""
        cur.execute(_HOLDERS.encode(), ([c[0] for c in lost], [c[1] for c in lost]))
        return {(str(s), str(k)): str(r) for s, k, r in cur.fetchall()}

    def get_run(self, run_id: str) -> RunState | None:
        rows = self._rows("SELECT data FROM runs WHERE run_id = %s", (run_id,))
        return decode_run(bytes(rows[0][0])) if rows else None

    def list_runs(self, query: RunFilter) -> list[RunState]:
        where, args = _where((("flow_id", query.flow), ("status", query.status),
                              ("key", query.key), ("correlation_id", query.correlation_id)),
                             query.since, query.until)
        if query.payload is not None:
            # containment through the GIN index, over every run (no window); a value that
            # reads as a number or boolean is looked for as that and as text
            docs = [orjson.dumps(_nest(query.payload.path, v)).decode()
                    for v in query.payload.values()]
            where += (" AND " if where else " WHERE ") + "(" + " OR ".join(
                ["payload @> %s::jsonb"] * len(docs)) + ")"
            args.extend(docs)
        rows = self._rows(f"SELECT data FROM runs{where} ORDER BY created_at DESC LIMIT %s",
                          (*args, query.limit))
        return [decode_run(bytes(r[0])) for r in rows]

    def active_runs(self) -> list[RunState]:
        rows = self._rows("SELECT data FROM runs WHERE status = ANY(%s) ORDER BY created_at",
                          (list(ACTIVE),))
        return [decode_run(bytes(r[0])) for r in rows]

    def runs_queued_before(self, when: float, limit: int) -> list[str]:
        """Runs recorded ``queued`` before *when*, oldest first (the stuck-run sweep)."""
        rows = self._rows("SELECT run_id FROM runs WHERE status = 'queued' AND created_at <= %s "
                          "ORDER BY created_at LIMIT %s", (when, limit))
        return [str(r[0]) for r in rows]

    def count_runs(self, flow: str | None = None) -> dict[str, int]:
        self._tidy()
        only = " WHERE flow_id = %s" if flow else ""
        rows = self._rows(
            "SELECT status, sum(n) FROM (SELECT flow_id, status, n FROM run_counts UNION ALL "
            f"SELECT flow_id, status, n FROM run_count_changes) AS c{only} GROUP BY status "
            "HAVING sum(n) > 0", (flow,) if flow else ())
        return {str(status): int(n) for status, n in rows}

    def count_dead_letters(self, status: str = "open") -> dict[str, int]:
        rows = self._rows("SELECT flow_id, count(*) FROM dead_letters WHERE status = %s "
                          "GROUP BY flow_id", (status,))
        return {str(flow): int(n) for flow, n in rows if n}

    def activity(self, flow: str | None, since: float, until: float,
                 bucket: float) -> list[act.Bucket]:
        start, count = act.frame(since, until, bucket)
        end = start + count * bucket
        only, extra = (" AND flow_id = %s", (flow,)) if flow is not None else ("", ())
        runs = self._rows(
            "SELECT floor((finished_at - %s) / %s)::int AS b, (status = ANY(%s))::int AS bad, "
            f"{act.sql_slot('finished_at - created_at')} AS slot, count(*) FROM runs "
            f"WHERE finished_at >= %s AND finished_at < %s{only} GROUP BY b, bad, slot",
            (start, bucket, list(act.FAILED), start, end, *extra))
        entries = self._rows(
            "SELECT floor((created_at - %s) / %s)::int AS b, count(*) FROM dead_letters "
            f"WHERE created_at >= %s AND created_at < %s{only} GROUP BY b",
            (start, bucket, start, end, *extra))
        return act.fill(start, count, bucket, runs, entries)

    def _tidy(self) -> None:
        """Fold run-count changes and drop expired idempotency keys, every few seconds per
        process that writes or counts; one process at a time, the others skip it. Counting
        reads the changes not folded yet too: folding keeps them few, it is not needed to
        count right."""
        now = time.monotonic()
        if now - self._tidied < TIDY_EVERY:
            return
        if not self._tidy_lock.acquire(blocking=False):
            return
        try:
            self._tidied = now
            with self._tx() as cur:
                cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (_TIDY_LOCK,))
                row = cur.fetchone()
                if row and row[0]:
                    cur.execute(_FOLD_COUNTS.encode())
                    cur.execute("DELETE FROM idempotency WHERE ctid = ANY(ARRAY(SELECT ctid "
                                "FROM idempotency WHERE expires_at < %s LIMIT 10000))",
                                (time.time(),))
        except StoreError as exc:  # housekeeping: the write it follows is done, and stands
            log.warning("%s", exc)
        finally:
            self._tidy_lock.release()

    # -- flow versions -------------------------------------------------------------------------
    def save_flow_version(self, flow_id: str, version: str, text: str) -> None:
        with self._tx() as cur:
            cur.execute("INSERT INTO flow_versions VALUES (%s, %s, %s, %s) ON CONFLICT DO "
                        "NOTHING", (flow_id, version, text, time.time()))

    def get_flow_version(self, flow_id: str, version: str) -> str | None:
        rows = self._rows("SELECT text FROM flow_versions WHERE flow_id = %s AND version = %s",
                          (flow_id, version))
        return str(rows[0][0]) if rows else None

    # -- dead letters --------------------------------------------------------------------------
    @staticmethod
    def _put_dead_letter(cur: Cursor, entry: DeadLetter) -> None:
        cur.execute(
            "INSERT INTO dead_letters (id, run_id, flow_id, step, message, status, created_at, "
            "data, kind, http_status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON "
            "CONFLICT (id) DO UPDATE SET run_id = excluded.run_id, flow_id = excluded.flow_id, "
            "step = excluded.step, message = excluded.message, status = excluded.status, "
            "created_at = excluded.created_at, data = excluded.data, kind = excluded.kind, "
            "http_status = excluded.http_status",
            (entry.id, entry.run_id, entry.flow_id, entry.step, entry.message, entry.status,
             entry.created_at, encode_dead_letter(entry), *_classified(entry)))

    def get_dead_letter(self, entry_id: str) -> DeadLetter | None:
        rows = self._rows("SELECT data FROM dead_letters WHERE id = %s", (entry_id,))
        return decode_dead_letter(bytes(rows[0][0])) if rows else None

    def list_dead_letters(self, query: DeadLetterFilter) -> list[DeadLetter]:
        where, args = _where((("flow_id", query.flow), ("step", query.step),
                              ("status", query.status)), query.since, query.until)
        if query.error:
            escaped = query.error.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where += (" AND " if where else " WHERE ") + "message ILIKE %s"
            args.append(f"%{escaped}%")
        for column, value in (("kind", query.kind), ("http_status", query.http_status)):
            if value is not None:
                where += (" AND " if where else " WHERE ") + f"{column} = %s"
                args.append(value)
        rows = self._rows(f"SELECT data FROM dead_letters{where} ORDER BY created_at DESC "
                          "LIMIT %s", (*args, query.limit))
        return [decode_dead_letter(bytes(r[0])) for r in rows]

    def update_dead_letter(self, entry: DeadLetter) -> None:
        with self._tx() as cur:
            cur.execute("UPDATE dead_letters SET status = %s, data = %s, kind = %s, "
                        "http_status = %s WHERE id = %s",
                        (entry.status, encode_dead_letter(entry), *_classified(entry), entry.id))

    # -- cursors and locks ---------------------------------------------------------------------
    # -- retention (engine/store/pruning: the rules; here the primitives) ------------------------
    def prune(self, policy: RetentionPolicy, now: float, *, batch: int = 500,
              flow: str | None = None, dry_run: bool = False) -> PruneReport:
        return pruning.prune(self, policy, now, batch=batch, flow=flow, dry_run=dry_run)

    def prune_flows(self) -> set[str]:
        self._tidy()
        rows = self._rows("SELECT flow_id FROM run_counts UNION SELECT flow_id FROM "
                          "run_count_changes UNION SELECT DISTINCT flow_id FROM dead_letters")
        return {str(r[0]) for r in rows}

    def oldest_runs(self, flow: str, since: float | None, before: float, offset: int,
                    limit: int) -> list[tuple[RunState, int]]:
        rows = self._rows("SELECT data FROM runs WHERE flow_id = %s AND created_at >= %s AND "
                          "created_at < %s ORDER BY created_at, run_id LIMIT %s OFFSET %s",
                          (flow, -1e300 if since is None else since, before, limit, offset))
        return [(decode_run(bytes(r[0])), len(r[0])) for r in rows]

    def oldest_entries(self, flow: str, since: float | None, before: float, offset: int,
                       limit: int) -> list[tuple[DeadLetter, int]]:
        rows = self._rows("SELECT data FROM dead_letters WHERE flow_id = %s AND created_at >= %s "
                          "AND created_at < %s ORDER BY created_at, id LIMIT %s OFFSET %s",
                          (flow, -1e300 if since is None else since, before, limit, offset))
        return [(decode_dead_letter(bytes(r[0])), len(r[0])) for r in rows]

    def remove(self, runs: list[RunState], entries: list[DeadLetter]) -> set[str]:
        """One transaction: the counts follow by the runs table's triggers."""
        gone: set[str] = set()
        with self._tx() as cur:
            if runs:
                cur.execute("DELETE FROM runs AS r USING unnest(%s::text[], %s::text[]) AS "
                            "g(id, status) WHERE r.run_id = g.id AND r.status = g.status "
                            "RETURNING r.run_id", ([r.run_id for r in runs],
                                                   [r.status for r in runs]))
                gone.update(str(row[0]) for row in cur.fetchall())
            if entries:
                cur.execute("DELETE FROM dead_letters AS d USING unnest(%s::text[], %s::text[]) "
                            "AS g(id, status) WHERE d.id = g.id AND d.status = g.status "
                            "RETURNING d.id, d.run_id", ([e.id for e in entries],
                                                         [e.status for e in entries]))
                removed = cur.fetchall()
                gone.update(str(row[0]) for row in removed)
                if removed:
                    cur.execute("DELETE FROM runs WHERE run_id = ANY(%s) AND "
                                "status = 'dead_lettered'", ([str(row[1]) for row in removed],))
            # a run's SLA rows go with it (engine/sla)
            run_ids = [r.run_id for r in runs] + [e.run_id for e in entries]
            cur.execute("DELETE FROM sla_due WHERE run_id = ANY(%s::text[]) AND NOT EXISTS "
                        "(SELECT 1 FROM runs WHERE runs.run_id = sla_due.run_id)", (run_ids,))
            cur.execute("DELETE FROM sla_breaches WHERE run_id = ANY(%s::text[]) AND NOT EXISTS "
                        "(SELECT 1 FROM runs WHERE runs.run_id = sla_breaches.run_id)",
                        (run_ids,))
        return gone

    def replace_runs(self, runs: list[tuple[RunState, bytes]]) -> set[str]:
        if not runs:
            return set()
        with self._tx() as cur:
            # compacted: the searchable payload goes with the body
            cur.execute("UPDATE runs AS r SET data = g.data, payload = NULL FROM "
                        "unnest(%s::text[], %s::text[], %s::bytea[]) AS g(id, status, data) "
                        "WHERE r.run_id = g.id AND r.status = g.status RETURNING r.run_id",
                        ([r.run_id for r, _ in runs], [r.status for r, _ in runs],
                         [data for _, data in runs]))
            return {str(row[0]) for row in cur.fetchall()}

    def expired_keys(self, now: float, limit: int, dry_run: bool) -> int:
        if dry_run:
            return int(self._rows("SELECT count(*) FROM idempotency WHERE expires_at < %s",
                                  (now,))[0][0])
        with self._tx() as cur:
            cur.execute("DELETE FROM idempotency WHERE ctid IN (SELECT ctid FROM idempotency "
                        "WHERE expires_at < %s LIMIT %s)", (now, limit))
            return int(cur.rowcount)

    # -- business SLAs (engine/sla) --------------------------------------------------------------
    def sla_due(self, now: float, limit: int) -> list[tuple[str, float]]:
        rows = self._rows("SELECT run_id, deadline FROM sla_due WHERE deadline <= %s "
                          "ORDER BY deadline LIMIT %s", (now, limit))
        return [(str(r[0]), float(r[1])) for r in rows]

    def settle_sla(self, run_ids: list[str]) -> None:
        with self._tx() as cur:
            cur.execute("DELETE FROM sla_due WHERE run_id = ANY(%s::text[])", (run_ids,))

    def claim_breach(self, breach: Breach) -> bool:
        data = encode_breach(breach)
        with self._tx() as cur:
            cur.execute("DELETE FROM sla_due WHERE run_id = %s", (breach.run_id,))
            cur.execute("INSERT INTO sla_breaches VALUES (%s, %s, %s, %s) ON CONFLICT DO "
                        "NOTHING", (breach.run_id, breach.flow_id, breach.detected_at, data))
            return bool(cur.rowcount)

    def get_breach(self, run_id: str) -> Breach | None:
        rows = self._rows("SELECT data FROM sla_breaches WHERE run_id = %s", (run_id,))
        return decode_breach(bytes(rows[0][0])) if rows else None

    def list_breaches(self, flow: str | None = None, limit: int = 100) -> list[Breach]:
        where, args = (" WHERE flow_id = %s", (flow,)) if flow else ("", ())
        rows = self._rows(f"SELECT data FROM sla_breaches{where} ORDER BY detected_at DESC "
                          "LIMIT %s", (*args, limit))
        return [decode_breach(bytes(r[0])) for r in rows]

    def get_cursor(self, name: str) -> str | None:
        rows = self._rows("SELECT value FROM cursors WHERE name = %s", (name,))
        return str(rows[0][0]) if rows else None

    def set_cursor(self, name: str, value: str) -> None:
        with self._tx() as cur:
            cur.execute("INSERT INTO cursors VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET "
                        "value = excluded.value", (name, value))

    def acquire_lock(self, name: str, owner: str, ttl: float) -> bool:
        now = time.time()
        with self._tx() as cur:
            cur.execute("INSERT INTO locks AS l VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE "
                        "SET owner = excluded.owner, expires_at = excluded.expires_at "
                        "WHERE l.owner = excluded.owner OR l.expires_at <= %s RETURNING 1",
                        (name, owner, now + ttl, now))
            return cur.fetchone() is not None

    def release_lock(self, name: str, owner: str) -> None:
        with self._tx() as cur:
            cur.execute("DELETE FROM locks WHERE name = %s AND owner = %s", (name, owner))

    def lock_owner(self, name: str) -> str | None:
        rows = self._rows("SELECT owner FROM locks WHERE name = %s AND expires_at > %s",
                          (name, time.time()))
        return str(rows[0][0]) if rows else None

    # -- console bulk jobs (engine/store/sql_jobs) ---------------------------------------------
    @staticmethod
    def _execute(cur: Cursor) -> sql_jobs.Execute:
        return lambda statement, args: cur.execute(statement.replace("?", "%s").encode(), args)

    def put_job(self, job: BulkJob) -> None:
        with self._tx() as cur:
            sql_jobs.put(self._execute(cur), job)

    def add_job_outcome(self, job_id: str, entry_id: str, outcome: str, detail: str,
                        at: float) -> bool:
        with self._tx() as cur:
            return sql_jobs.add_outcome(self._execute(cur), job_id, entry_id, outcome, detail,
                                        at)

    def get_job(self, job_id: str) -> BulkJob | None:
        return self._read(lambda cur: sql_jobs.get(self._execute(cur), job_id))


def _nest(path: tuple[str, ...], value: Any) -> Any:
    """``{"a": {"b": value}}`` for the path ('a', 'b'): the document a payload contains."""
    for name in reversed(path):
        value = {name: value}
    return value


def _classified(entry: DeadLetter) -> tuple[str | None, int | None]:
    """An entry's failure kind and HTTP status, as its filter columns hold them."""
    kind, status = entry.reason.get("kind"), entry.reason.get("status")
    return (str(kind) if kind is not None else None,
            status if isinstance(status, int) and not isinstance(status, bool)
            and -2**31 <= status < 2**31 else None)


def _where(equal: tuple[tuple[str, str | None], ...], since: float | None,
           until: float | None) -> tuple[str, list[Any]]:
    """The WHERE clause of a listing (column names are this module's, never the caller's)."""
    parts: list[str] = []
    args: list[Any] = []
    for column, value in equal:
        if value is not None:
            parts.append(f"{column} = %s")
            args.append(value)
    if since is not None:
        parts.append("created_at >= %s")
        args.append(since)
    if until is not None:
        parts.append("created_at < %s")
        args.append(until)
    return (" WHERE " + " AND ".join(parts) if parts else ""), args


def describe(url: str) -> str:
    """host:port/database of *url*, never its password, for messages."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return "(an unreadable FLOWRUN_DATABASE_URL)"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"{host}:{port}/{info.get('dbname') or info.get('user') or ''}"
