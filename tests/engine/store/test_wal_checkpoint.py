"""The embedded store's log is checkpointed by a thread of its own, not inside a commit: the
connections' own checkpoint is set far out, the thread copies the log into the database file
while commits happen, ends when they stop, and starts again with the next one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.records import RunState
from engine.store import wal_checkpoint
from engine.store.base import RunFilter
from engine.store.sqlite import SqliteStore
from tests.conftest import wait_until


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "state.db")
    yield opened
    opened.close()


def order(n: int) -> RunState:
    body = {"order": n, "lines": [{"sku": f"SKU-{i:04d}", "qty": i} for i in range(60)]}
    return RunState(run_id=f"r{n:05d}", flow_id="orders", flow_version="v1",
                    envelope={"body": body, "headers": {}, "vars": {}, "meta": {}},
                    original={"body": body, "headers": {}}, correlation_id=f"c{n}")


def checkpointer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "flowrun-wal-checkpoint"]


def test_commits_leave_the_checkpoint_to_the_thread(store: SqliteStore,
                                                    tmp_path: Path) -> None:
    # no commit checkpoints before the log holds SAFETY_PAGES pages
    [(pages,)] = store._query("PRAGMA wal_autocheckpoint")
    assert pages == wal_checkpoint.SAFETY_PAGES > 1000  # SQLite's own default is 1,000
    main_file = tmp_path / "state.db"
    before = main_file.stat().st_size
    for start in range(0, 600, 50):
        store.create_runs([(order(n), None) for n in range(start, start + 50)])
    # about 2 MB of runs went to the log; the thread copies them into the database file
    wait_until(lambda: store._checkpoints.checkpoints >= 1, what="a checkpoint by the thread")
    wait_until(lambda: main_file.stat().st_size > before + 1_000_000,
               what="the runs copied into the database file")
    assert len(store.list_runs(RunFilter(flow="orders", limit=1000))) == 600
    store.close()
    reopened = SqliteStore(main_file)
    try:
        assert reopened.get_run("r00599") is not None
    finally:
        reopened.close()


def test_the_thread_ends_without_commits_and_comes_back_with_one(
        store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wal_checkpoint, "EVERY", 0.02)
    monkeypatch.setattr(wal_checkpoint, "IDLE", 0.1)
    store.create_runs([(order(1), None)])
    wait_until(lambda: store._checkpoints.checkpoints >= 1, what="the first checkpoint")
    wait_until(lambda: store._checkpoints._thread is None, what="the idle thread to end")
    store.create_runs([(order(2), None)])
    assert store._checkpoints._thread is not None
    wait_until(lambda: store._checkpoints.checkpoints >= 2, what="a checkpoint after it")


def test_closing_the_store_stops_the_thread(tmp_path: Path) -> None:
    opened = SqliteStore(tmp_path / "state.db")
    opened.create_runs([(order(1), None)])
    thread = opened._checkpoints._thread
    assert thread is not None and thread.is_alive()
    opened.close()
    assert not thread.is_alive()
    assert thread not in checkpointer_threads()
