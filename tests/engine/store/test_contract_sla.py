"""The Store contract for business SLAs (engine/sla), on SQLite, Redis and PostgreSQL alike: the
due-set of runs with a deadline, read by deadline; breaches claimed once, listed latest first.
"""

from __future__ import annotations

import threading

from engine.records import Breach, RunState
from engine.store.base import Store
from tests.engine.store import test_contract
from tests.engine.store.test_contract import T0, run

store = test_contract.store  # the contract's fixture: each case on the three stores


def timed(run_id: str, deadline: float, **extra: object) -> RunState:
    return run(run_id, deadline=T0 + deadline, **extra)  # type: ignore[arg-type]


def breach(run_id: str, *, flow: str = "orders", detected: float = 100.0) -> Breach:
    return Breach(run_id=run_id, flow_id=flow, deadline=T0 + 10, detected_at=T0 + detected,
                  late_by=detected - 10, status="retrying", key="B2B-1",
                  correlation_id=run_id)


def test_new_runs_with_a_deadline_are_due_by_deadline_earliest_first(store: Store) -> None:
    store.create_runs([(timed("late", 30), None), (timed("early", 10), None),
                       (run("untimed"), None), (timed("later", 500), None)])
    assert store.sla_due(T0 + 100, 10) == [("early", T0 + 10), ("late", T0 + 30)]
    assert store.sla_due(T0 + 100, 1) == [("early", T0 + 10)]
    assert store.sla_due(T0 + 5, 10) == []
    assert store.get_run("late").deadline == T0 + 30  # type: ignore[union-attr]


def test_a_duplicate_run_does_not_stay_due_as_a_run_of_its_own(store: Store) -> None:
    assert store.create_run(timed("first", 10), ("orders", "1001", 60)) is None
    assert store.create_run(timed("again", 10), ("orders", "1001", 60)) == "first"
    due = [run_id for run_id, _ in store.sla_due(T0 + 100, 10)]
    # a store may keep the duplicate's entry (the sweep drops an entry without its run)
    assert "first" in due
    assert all(run_id == "first" or store.get_run(run_id) is None for run_id in due)


def test_children_saved_with_their_parent_enter_the_due_set(store: Store) -> None:
    parent = timed("parent", 10)
    store.create_run(parent)
    parent.status = "handed_off"
    store.save_run(parent, children=[timed("child", 20, status="queued")])
    assert [run_id for run_id, _ in store.sla_due(T0 + 100, 10)] == ["parent", "child"]


def test_a_run_that_succeeds_in_time_leaves_the_due_set_a_late_one_stays(store: Store) -> None:
    store.create_runs([(timed("in-time", 10), None), (timed("too-late", 10), None),
                       (timed("failed", 10), None)])
    on_time, late, failed = (store.get_run(i) for i in ("in-time", "too-late", "failed"))
    assert on_time and late and failed
    on_time.status, on_time.updated_at = "succeeded", T0 + 9
    late.status, late.updated_at = "succeeded", T0 + 11
    failed.status, failed.updated_at = "dead_lettered", T0 + 5
    for state in (on_time, late, failed):
        store.save_run(state)
    assert sorted(i for i, _ in store.sla_due(T0 + 100, 10)) == ["failed", "too-late"]


def test_settled_runs_leave_the_due_set(store: Store) -> None:
    store.create_runs([(timed("a", 10), None), (timed("b", 20), None)])
    store.settle_sla(["a", "missing"])
    assert store.sla_due(T0 + 100, 10) == [("b", T0 + 20)]


def test_a_breach_is_claimed_once_and_leaves_the_due_set(store: Store) -> None:
    store.create_run(timed("r1", 10))
    assert store.claim_breach(breach("r1")) is True
    assert store.claim_breach(breach("r1", detected=200)) is False
    assert store.sla_due(T0 + 1000, 10) == []
    assert store.get_breach("r1") == breach("r1")
    assert store.get_breach("r2") is None


def test_two_claimers_at_once_one_wins(store: Store) -> None:
    store.create_run(timed("r1", 10))
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        barrier.wait()
        results.append(store.claim_breach(breach("r1")))

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]


def test_breaches_are_listed_latest_first_by_flow(store: Store) -> None:
    for run_id, flow, detected in (("a", "orders", 100), ("b", "invoices", 300),
                                   ("c", "orders", 200)):
        store.claim_breach(breach(run_id, flow=flow, detected=detected))
    assert [b.run_id for b in store.list_breaches()] == ["b", "c", "a"]
    assert [b.run_id for b in store.list_breaches("orders")] == ["c", "a"]
    assert [b.run_id for b in store.list_breaches(limit=1)] == ["b"]
    assert store.list_breaches("nothing") == []


def test_pruning_a_run_removes_its_due_entry_and_its_breach(store: Store) -> None:
    from engine.store.base import Keep, RetentionPolicy

    store.create_runs([(timed("late", 10), None), (timed("due", 10), None)])
    for run_id in ("late", "due"):
        state = store.get_run(run_id)
        assert state is not None
        state.status, state.updated_at = "failed", T0 + 20
        store.save_run(state)
    store.claim_breach(breach("late"))
    report = store.prune(RetentionPolicy(Keep(runs=60.0)), T0 + 1000)
    assert report.counts == {("orders", "runs"): 2}
    assert store.get_breach("late") is None and store.list_breaches("orders") == []
    assert store.list_breaches() == []
    assert store.sla_due(T0 + 1e6, 10) == []
