"""Per-(flow, key) lines, the same behaviour in process memory and in a real Redis: only the
lowest sequence not yet ended may run, a run that may not is parked, and the run that ends
hands the turn on — waking the next one only if it had been parked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.ordering import LocalLines, RedisLines
from engine.records import RunState
from engine.store.redis import RedisStore


def run(run_id: str, seq: int, key: str = "SKU-1", flow: str = "stock") -> RunState:
    meta = {"order": {"key": key, "seq": seq}}
    return RunState(run_id=run_id, flow_id=flow, flow_version="v1",
                    envelope={"body": None, "meta": meta}, original={})


@pytest.fixture(params=["local", "redis"])
def lines(request: pytest.FixtureRequest) -> Iterator[LocalLines | RedisLines]:
    if request.param == "local":
        yield LocalLines()
        return
    store = RedisStore(request.getfixturevalue("redis_url"))
    try:
        yield RedisLines(store)
    finally:
        store.close()


def test_only_the_head_runs_and_the_one_that_ends_wakes_a_parked_next(
        lines: LocalLines | RedisLines) -> None:
    first, second, third = run("r1", 10), run("r2", 20), run("r3", 30)
    other = run("o1", 15, key="SKU-2")
    lines.register([third, first, second, other])  # joined out of order: sequence decides

    assert not lines.enter(third)  # parked
    assert lines.enter(other)  # another key's line runs in parallel
    assert lines.enter(first)
    assert not lines.enter(second)  # parked behind the head
    assert lines.enter(first)  # the head again (a retry that came due) keeps its turn

    assert lines.leave(first) == "r2"  # parked: woken
    assert lines.enter(second)
    assert lines.leave(second) == "r3"
    assert lines.enter(third)
    assert lines.leave(third) is None  # the line is empty
    assert lines.leave(other) is None


def test_a_next_run_that_was_not_parked_is_not_woken_and_a_late_joiner_takes_its_place(
        lines: LocalLines | RedisLines) -> None:
    first, second = run("r1", 1), run("r2", 2)
    lines.register([first, second])
    assert lines.enter(first)
    assert lines.leave(first) is None  # r2 never reached a worker: it comes by itself
    assert lines.enter(second)

    # a run missing from its line (its publisher died before joining it) joins on arrival
    late = run("r0", 0, key="SKU-3")
    assert lines.enter(late)
    assert lines.leave(late) is None


def test_runs_without_an_ordering_key_never_wait(lines: LocalLines | RedisLines) -> None:
    plain = RunState(run_id="p1", flow_id="stock", flow_version="v1",
                     envelope={"body": None, "meta": {}}, original={})
    lines.register([plain])
    assert lines.enter(plain)
    assert lines.leave(plain) is None
