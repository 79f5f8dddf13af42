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
from engine.store.group_commit import GroupCommit, _Waiting
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

    # a group being written: the saves wait behind it
    hold, held = threading.Event(), threading.Event()
    write = store._saves._write

    def slow_write(jobs: list) -> None:
        if not held.is_set():
            held.set()
            hold.wait(10)
        write(jobs)

    store._saves._write = slow_write
    first = threading.Thread(target=save, args=(a_run("r-first", status="succeeded"),))
    first.start()
    held.wait(10)
    threads = [threading.Thread(target=save, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(store._saves._pending) == 8, what="the saves waiting")
    hold.set()
    for thread in (first, *threads):
        thread.join(10)
    assert errors == []
    assert (store._saves.groups, store._saves.written) == (2, 9)
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
    hold = threading.Event()

    def write(jobs: list[int]) -> None:
        if jobs == [-1]:
            hold.wait(10)
        sizes.append(len(jobs))

    group: GroupCommit[int] = GroupCommit(write, max_group=3)
    first = threading.Thread(target=group, args=(-1,))
    first.start()
    wait_until(lambda: group._writing, what="the first write under way")
    threads = [threading.Thread(target=group, args=(n,)) for n in range(7)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(group._pending) == 7, what="seven saves waiting")
    hold.set()
    for thread in (first, *threads):
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert sizes == [1, 3, 3, 1]


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


def test_a_caller_interrupted_while_chosen_to_write_hands_the_turn_on() -> None:
    written: list[list[str]] = []
    hold = threading.Event()

    def write(jobs: list[str]) -> None:
        if jobs == ["first"]:
            hold.wait(10)
        written.append(jobs)

    group: GroupCommit[str] = GroupCommit(write)
    first = threading.Thread(target=group, args=("first",))
    first.start()
    wait_until(lambda: group._writing, what="the first write under way")
    # a caller whose wait an exception cut short: its job waits, nobody waits for it
    interrupted = _Waiting("interrupted")
    with group._lock:
        group._pending.append(interrupted)
    later = threading.Thread(target=group, args=("later",))
    later.start()
    wait_until(lambda: len(group._pending) == 2, what="two callers waiting")
    hold.set()
    first.join(10)
    wait_until(lambda: interrupted.leads, what="the interrupted caller chosen to write")
    group._withdraw(interrupted)  # what its exception handler does
    later.join(10)
    assert not later.is_alive()
    assert written == [["first"], ["later"]]
