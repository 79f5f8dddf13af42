"""The embedded SQLite store: run records, atomic idempotency keys, flow versions, cursors,
leased locks, and a database locked by another process (a bounded wait, then a clear error).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.records import DeadLetter, RecordError, RunState
from engine.store.base import DeadLetterFilter, RunFilter, StoreError
from engine.store.sqlite import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "home" / "state.db")
    yield opened
    opened.close()


def run(run_id: str, flow: str = "orders", status: str = "queued", *, key: str | None = None,
        created: float | None = None, correlation: str = "") -> RunState:
    state = RunState(run_id=run_id, flow_id=flow, flow_version="v1",
                     envelope={"body": {"id": run_id}, "headers": {}, "vars": {}, "meta": {}},
                     original={"body": {"id": run_id}, "headers": {}}, status=status, key=key,
                     correlation_id=correlation or f"c-{run_id}")
    if created is not None:
        state.created_at = created
    return state


def entry(entry_id: str, run_id: str, created: float) -> DeadLetter:
    return DeadLetter(id=entry_id, run_id=run_id, flow_id="orders", flow_version="v1",
                      step="send", reason={"message": "boom", "step": "send"},
                      original={"body": {}, "headers": {}}, envelope={}, created_at=created)


# -- runs --------------------------------------------------------------------------------------
def test_save_and_get_a_run_round_trips_every_field(store: SqliteStore) -> None:
    state = run("r1", status="retrying", key="PO-1")
    state.steps = [{"id": "send", "kind": "call", "status": "failed", "duration_ms": 1.5,
                    "attempts": 2}]
    state.attempts = [{"attempt": 1, "error": "503", "status": 503}]
    state.due_at = time.time() + 60
    state.envelope["body"] = {"text": "Grüße ✓", "n": [1, 2.5, None, True]}
    store.save_run(state)
    loaded = store.get_run("r1")
    assert loaded is not None
    assert loaded.to_dict() == state.to_dict()
    assert store.get_run("missing") is None


def test_save_run_replaces_the_record(store: SqliteStore) -> None:
    state = run("r1")
    store.save_run(state)
    state.status, state.position = "succeeded", 3
    store.save_run(state)
    loaded = store.get_run("r1")
    assert loaded is not None and (loaded.status, loaded.position) == ("succeeded", 3)
    assert len(store.list_runs(RunFilter())) == 1


def test_list_runs_filters_and_order(store: SqliteStore) -> None:
    now = time.time()
    store.save_run(run("a", "orders", "succeeded", key="K1", created=now - 30, correlation="x"))
    store.save_run(run("b", "orders", "dead_lettered", key="K2", created=now - 20))
    store.save_run(run("c", "stock", "succeeded", key="K1", created=now - 10, correlation="x"))

    def ids(**query: object) -> list[str]:
        return [s.run_id for s in store.list_runs(RunFilter(**query))]  # type: ignore[arg-type]

    assert ids() == ["c", "b", "a"]  # newest first
    assert ids(flow="orders") == ["b", "a"]
    assert ids(status="succeeded") == ["c", "a"]
    assert ids(key="K1") == ["c", "a"]
    assert ids(correlation_id="x", flow="stock") == ["c"]
    assert ids(since=now - 25) == ["c", "b"]
    assert ids(until=now - 20) == ["a"]  # until is exclusive
    assert ids(since=now - 25, until=now - 15) == ["b"]
    assert ids(limit=2) == ["c", "b"]
    assert ids(flow="nothing") == []


def test_active_runs_and_counts(store: SqliteStore) -> None:
    now = time.time()
    for i, status in enumerate(["queued", "succeeded", "running", "retrying", "dead_lettered"]):
        store.save_run(run(f"r{i}", status=status, created=now + i))
    assert [s.run_id for s in store.active_runs()] == ["r0", "r2", "r3"]
    assert store.count_runs() == {"queued": 1, "succeeded": 1, "running": 1, "retrying": 1,
                                  "dead_lettered": 1}
    store.save_run(run("other", "stock", "succeeded"))
    assert store.count_runs("stock") == {"succeeded": 1}


def test_run_dead_letter_and_children_are_saved_together(store: SqliteStore) -> None:
    parent = run("p", status="dead_lettered")
    children = [run("c1"), run("c2")]
    store.save_run(parent, dead_letter=entry("d1", "p", time.time()), children=children)
    assert {s.run_id for s in store.list_runs(RunFilter())} == {"p", "c1", "c2"}
    found = store.get_dead_letter("d1")
    assert found is not None and found.run_id == "p" and found.reason["message"] == "boom"


def test_a_failing_transaction_saves_nothing(store: SqliteStore) -> None:
    bad = entry("d1", "p", time.time())
    bad.reason = {"message": object()}  # not JSON: nothing of the write may land
    with pytest.raises(RecordError):
        store.save_run(run("p"), dead_letter=bad)
    assert store.get_run("p") is None
    store.save_run(run("q"))  # the store is still usable
    assert store.get_run("q") is not None


def test_dead_letters_update_and_status_filter(store: SqliteStore) -> None:
    store.save_run(run("p"), dead_letter=entry("d1", "p", time.time()))
    found = store.get_dead_letter("d1")
    assert found is not None
    found.status = "discarded"
    found.audit.append({"action": "discard", "who": "me"})
    store.update_dead_letter(found)
    again = store.get_dead_letter("d1")
    assert again is not None and again.status == "discarded" and again.audit == found.audit
    assert store.list_dead_letters(DeadLetterFilter()) == []
    assert [e.id for e in store.list_dead_letters(DeadLetterFilter(status="discarded"))] == ["d1"]


# -- idempotency -------------------------------------------------------------------------------
def test_create_run_with_a_key_is_atomic_across_threads(store: SqliteStore) -> None:
    threads = 16
    barrier = threading.Barrier(threads)
    results: list[str | None] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def deliver(i: int) -> None:
        try:
            barrier.wait()
            answer = store.create_run(run(f"r{i}"), ("orders", "delivery-1", 60.0))
            with lock:
                results.append(answer)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    workers = [threading.Thread(target=deliver, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert errors == []
    recorded = store.list_runs(RunFilter())
    assert len(recorded) == 1
    winner = recorded[0].run_id
    assert results.count(None) == 1
    assert sorted(r for r in results if r is not None) == [winner] * (threads - 1)


def test_idempotency_key_expires_after_its_ttl(store: SqliteStore) -> None:
    assert store.create_run(run("first"), ("orders", "k", 0.3)) is None
    assert store.create_run(run("second"), ("orders", "k", 0.3)) == "first"
    assert store.create_run(run("other-scope"), ("stock", "k", 0.3)) is None
    time.sleep(0.35)
    assert store.create_run(run("third"), ("orders", "k", 0.3)) is None
    assert store.create_run(run("fourth"), ("orders", "k", 0.3)) == "third"
    assert {s.run_id for s in store.list_runs(RunFilter())} == {"first", "other-scope", "third"}


def test_create_run_without_a_key_always_records(store: SqliteStore) -> None:
    assert store.create_run(run("a")) is None
    assert store.create_run(run("b")) is None
    assert len(store.list_runs(RunFilter())) == 2


# -- flow versions, cursors, locks -------------------------------------------------------------
def test_flow_versions_are_kept(store: SqliteStore) -> None:
    store.save_flow_version("orders", "abc", "flow: orders\n")
    store.save_flow_version("orders", "def", "flow: orders\n# v2\n")
    store.save_flow_version("orders", "abc", "something else")  # a version never changes
    assert store.get_flow_version("orders", "abc") == "flow: orders\n"
    assert store.get_flow_version("orders", "def") == "flow: orders\n# v2\n"
    assert store.get_flow_version("orders", "zzz") is None
    assert store.get_flow_version("stock", "abc") is None


def test_cursors(store: SqliteStore) -> None:
    assert store.get_cursor("supplier-acks") is None
    store.set_cursor("supplier-acks", "2026-01-01T00:00:00Z")
    store.set_cursor("supplier-acks", "2026-02-01T00:00:00Z")
    store.set_cursor("other", "7")
    assert store.get_cursor("supplier-acks") == "2026-02-01T00:00:00Z"
    assert store.get_cursor("other") == "7"


def test_locks_with_a_lease(store: SqliteStore) -> None:
    assert store.acquire_lock("poll:acks", "worker-a", 0.3)
    assert not store.acquire_lock("poll:acks", "worker-b", 0.3)
    assert store.acquire_lock("poll:acks", "worker-a", 0.3)  # the owner renews its lease
    assert store.acquire_lock("poll:other", "worker-b", 0.3)  # locks are per name
    store.release_lock("poll:acks", "worker-b")  # not the owner: nothing happens
    assert not store.acquire_lock("poll:acks", "worker-b", 0.3)
    time.sleep(0.35)
    assert store.acquire_lock("poll:acks", "worker-b", 10)  # the lease ran out
    store.release_lock("poll:acks", "worker-b")
    assert store.acquire_lock("poll:acks", "worker-a", 10)


def test_everything_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = SqliteStore(path)
    first.save_run(run("r1"), dead_letter=entry("d1", "r1", time.time()))
    first.create_run(run("r2"), ("orders", "k", 60))
    first.save_flow_version("orders", "v1", "text")
    first.set_cursor("c", "1")
    first.acquire_lock("l", "me", 60)
    first.close()
    second = SqliteStore(path)
    try:
        assert second.get_run("r1") is not None and second.get_dead_letter("d1") is not None
        assert second.create_run(run("r3"), ("orders", "k", 60)) == "r2"
        assert second.get_flow_version("orders", "v1") == "text"
        assert second.get_cursor("c") == "1"
        assert not second.acquire_lock("l", "someone-else", 60)
    finally:
        second.close()


def test_an_unusable_path_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match=r"state\.db cannot be used: the folder cannot be"):
        SqliteStore(blocker / "state.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"garbage\.db cannot be used"):
        SqliteStore(garbage)


# -- locked by another process -----------------------------------------------------------------
HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "exclusive-mode":
    db.execute("PRAGMA locking_mode=EXCLUSIVE")
db.execute("BEGIN EXCLUSIVE")
db.execute("UPDATE cursors SET value = value")
print("locked", flush=True)
time.sleep(60)
"""


def hold(path: Path, mode: str) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), mode],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def flowrun(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOWRUN_HOME": str(home), "FLOWRUN_FLOWS": str(home / "no-flows"),
           "FLOWRUN_BUSY_TIMEOUT": "300ms"}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_write_waits_boundedly_then_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "home" / "state.db"
    seeded = SqliteStore(path)
    seeded.save_run(run("r1", status="dead_lettered"), dead_letter=entry("d1", "r1", time.time()))
    seeded.close()
    holder = hold(path, "transaction")
    try:
        store = SqliteStore(path, busy_timeout=0.3)
        # WAL: reading goes on while another process writes
        assert store.get_run("anything") is None
        started = time.monotonic()
        with pytest.raises(StoreError) as error:
            store.set_cursor("c", "1")
        waited = time.monotonic() - started
        assert waited >= 0.25
        assert str(path) in str(error.value)
        assert "locked by another process" in str(error.value)
        assert "waited 0.3 s" in str(error.value)
        store.close()
        discard = flowrun(path.parent, "dlq", "discard", "d1")
        assert discard.returncode == 1
        assert f"Error: the state database {path} is locked" in discard.stderr
        assert "Traceback" not in discard.stderr
    finally:
        holder.kill()
        holder.wait()
    # the lock is gone with the process: the store works again
    store = SqliteStore(path, busy_timeout=0.3)
    store.set_cursor("c", "1")
    assert store.get_cursor("c") == "1"
    store.close()


def test_flowrun_runs_on_a_database_held_exclusively(tmp_path: Path) -> None:
    path = tmp_path / "home" / "state.db"
    seeded = SqliteStore(path)
    seeded.save_run(run("r1"))
    seeded.close()
    holder = hold(path, "exclusive-mode")
    try:
        with pytest.raises(StoreError, match="is locked by another process"):
            SqliteStore(path, busy_timeout=0.2).get_run("r1")
        result = flowrun(path.parent, "runs")
        assert result.returncode == 1
        assert result.stdout == ""
        assert result.stderr.strip() == (
            f"Error: the state database {path} is locked by another process; waited 0.3 s — "
            "stop the other flowrun process or use another FLOWRUN_HOME")
    finally:
        holder.kill()
        holder.wait()
    result = flowrun(path.parent, "runs")
    assert result.returncode == 0, result.stderr
    assert "r1" in result.stdout


def test_bad_settings_are_an_error_message_not_a_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["runs"], env={"FLOWRUN_HOME": str(tmp_path),
                                                     "FLOWRUN_BUSY_TIMEOUT": "soon"})
    assert result.exit_code == 1
    assert "bad settings: FLOWRUN_BUSY_TIMEOUT: 'soon' is not a duration" in result.stderr
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


def test_a_state_file_from_before_the_run_counts_is_counted_when_opened(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "state.db"
    store = SqliteStore(path)
    store.close()
    db = sqlite3.connect(path)  # as a state file written by an earlier flowrunner
    db.executescript("DROP TRIGGER runs_counted; DROP TRIGGER runs_uncounted; "
                     "DROP TRIGGER runs_recounted; DROP TABLE run_counts;")
    for i in range(7):
        db.execute("INSERT INTO runs (run_id, flow_id, status, key, correlation_id, created_at, "
                   "updated_at, due_at, data) VALUES (?,?,?,?,?,?,?,?,?)",
                   (f"r{i}", "orders" if i < 5 else "invoices", "succeeded" if i % 2 else
                    "queued", None, "", 0.0, 0.0, None, b"{}"))
    db.commit()
    db.close()
    store = SqliteStore(path)
    try:
        assert store.count_runs() == {"queued": 4, "succeeded": 3}
        assert store.count_runs("invoices") == {"queued": 1, "succeeded": 1}
        store.save_run(run("r9", "invoices", "succeeded"))
        assert store.count_runs("invoices") == {"queued": 1, "succeeded": 2}
    finally:
        store.close()


def test_prune_removes_expired_delivery_ids_and_keeps_live_ones(store: SqliteStore) -> None:
    from engine.store.base import Keep, RetentionPolicy

    for i in range(5):
        store.create_run(run(f"gone{i}"), ("orders", f"old-{i}", 0.05))
    store.create_run(run("live"), ("orders", "live", 60))
    time.sleep(0.1)
    policy = RetentionPolicy(Keep(runs=None, dead_letters=None))
    assert store.prune(policy, time.time(), dry_run=True).counts == {("", "idempotency"): 5}
    assert store.prune(policy, time.time(), batch=2).counts == {("", "idempotency"): 5}
    assert store._query("SELECT key FROM idempotency") == [("live",)]
    assert store.create_run(run("again"), ("orders", "live", 60)) == "live"
    assert store.prune(policy, time.time(), flow="orders").counts == {}


def test_searches_that_read_records_pass_over_one_sqlite_cannot_parse(tmp_path: Path) -> None:
    """A record written long ago with a NaN (plain JSON orjson refuses, SQLite too) is skipped
    by payload and error-kind searches, not a failed search."""
    from engine.records import DeadLetter
    from engine.store.base import DeadLetterFilter, PayloadQuery

    store = SqliteStore(tmp_path / "state.db")
    good = RunState(run_id="good", flow_id="f", flow_version="v", envelope={},
                    original={"body": {"po": "P-1"}, "headers": {}}, created_at=2.0)
    store.create_runs([(good, None)])
    entry = DeadLetter(id="e1", run_id="good", flow_id="f", flow_version="v", step="s",
                       reason={"kind": "http", "status": 422, "message": "m"}, original={},
                       envelope={}, created_at=2.0)
    store.save_run(good, dead_letter=entry)
    db = store._db()
    db.execute("INSERT INTO runs (run_id, flow_id, status, key, correlation_id, created_at, "
               "updated_at, due_at, data) VALUES ('old', 'f', 'succeeded', NULL, 'old', 1.0, "
               "1.0, NULL, '{\"original\": {\"body\": {\"po\": \"P-1\", \"x\": NaN}}}')")
    db.execute("INSERT INTO dead_letters VALUES ('e0', 'old', 'f', 's', 'm', 'open', 1.0, "
               "'{\"reason\": {\"kind\": \"http\", \"x\": NaN}}')")
    found = store.list_runs(RunFilter(payload=PayloadQuery.parse("po = P-1")))
    assert [r.run_id for r in found] == ["good"]
    entries = store.list_dead_letters(DeadLetterFilter(kind="http", http_status=422))
    assert [e.id for e in entries] == ["e1"]
    store.close()


def test_a_state_file_from_before_finished_at_gets_it_from_its_finished_runs(
        tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "state.db"
    SqliteStore(path).close()
    db = sqlite3.connect(path)  # as a state file written before the activity charts
    db.executescript("DROP INDEX runs_finished; ALTER TABLE runs DROP COLUMN finished_at;")
    for i, status in enumerate(("succeeded", "dead_lettered", "queued")):
        db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?)",
                   (f"r{i}", "orders", status, None, "", 600.0, 630.0 + i, None, b"{}"))
    db.commit()
    db.close()
    store = SqliteStore(path)
    try:
        got = store.activity("orders", 600, 720, 60)
        assert [(b.finished, b.failed, b.p95) for b in got] == [(2, 1, 50.0), (0, 0, None)]
        for flows in ("flow_id = 'orders'", "flow_id IN (SELECT flow_id FROM run_counts)"):
            plan = store._query("EXPLAIN QUERY PLAN SELECT status, created_at FROM runs WHERE "
                                f"{flows} AND finished_at >= 0 AND finished_at < 1")
            assert "COVERING INDEX runs_finished (flow_id=? AND finished_at>? AND " \
                   "finished_at<?)" in str(plan), plan
    finally:
        store.close()
