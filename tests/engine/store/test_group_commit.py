"""Saves made by many threads at once share transactions, and each returns once committed.

On a real SQLite state file: threads save while a group is being written, then find their
saves written together, readable from another connection once save_run returned. A group whose
transaction fails gives every one of its callers the error.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engine.records import RunState
from engine.store.group_commit import GroupCommit
from engine.store.sqlite import SqliteStore
from tests.conftest import wait_until
from tests.engine.store.test_contract import run as a_run


def test_saves_waiting_together_are_written_in_one_transaction(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    runs = [a_run(f"r{n}", status="succeeded") for n in range(8)]
    errors: list[BaseException] = []

    def save(run: RunState) -> None:
        try:
            store.save_run(run)
        except BaseException as exc:
            errors.append(exc)

    with store._saves._cond:  # a group being written: the saves wait behind it
        store._saves._writing = True
    threads = [threading.Thread(target=save, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(store._saves._pending) == 8, what="the saves waiting")
    with store._saves._cond:
        store._saves._writing = False
        store._saves._cond.notify_all()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert (store._saves.groups, store._saves.written) == (1, 8)
    other = SqliteStore(tmp_path / "state.db")
    try:
        found = [other.get_run(run.run_id) for run in runs]
        assert [r.status if r else None for r in found] == ["succeeded"] * 8
    finally:
        other.close()
        store.close()


def test_a_failed_group_fails_every_save_in_it() -> None:
    written: list[list[str]] = []
    hold = threading.Event()

    def write(jobs: list[str]) -> None:
        if jobs == ["first"]:
            hold.wait(10)
        if "bad" in jobs:
            raise RuntimeError("the transaction rolled back")
        written.append(jobs)

    group: GroupCommit[str] = GroupCommit(write)
    outcome: dict[str, str] = {}

    def call(job: str) -> None:
        try:
            group(job)
            outcome[job] = "written"
        except RuntimeError as exc:
            outcome[job] = str(exc)

    first = threading.Thread(target=call, args=("first",))
    first.start()
    wait_until(lambda: group._writing, what="the first write under way")
    later = [threading.Thread(target=call, args=(job,)) for job in ("ok", "bad")]
    for thread in later:
        thread.start()
    wait_until(lambda: len(group._pending) == 2, what="two saves waiting")
    hold.set()
    for thread in (first, *later):
        thread.join(10)
    assert written == [["first"]]
    assert outcome == {"first": "written", "ok": "the transaction rolled back",
                       "bad": "the transaction rolled back"}


def test_more_than_a_group_waiting_takes_several_turns() -> None:
    sizes: list[int] = []
    group: GroupCommit[int] = GroupCommit(lambda jobs: sizes.append(len(jobs)), max_group=3)
    with group._cond:
        group._writing = True
    threads = [threading.Thread(target=group, args=(n,)) for n in range(7)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(group._pending) == 7, what="seven saves waiting")
    with group._cond:
        group._writing = False
        group._cond.notify_all()
    for thread in threads:
        thread.join(10)
    assert sum(sizes) == 7 and max(sizes) <= 3


@pytest.mark.parametrize("count", [1, 5])
def test_every_save_returns_written(count: int) -> None:
    seen: list[int] = []
    group: GroupCommit[int] = GroupCommit(seen.extend)
    threads = [threading.Thread(target=group, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(seen) == list(range(count))
