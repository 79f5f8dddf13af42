"""Group-committed intake: deliveries waiting while a group is written are recorded together,
each is answered only once its group is recorded, duplicates are found inside a group, and a
group that cannot be recorded refuses every delivery in it."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.app import App
from engine.intake import Accepted
from engine.loader import Loader
from engine.settings import Settings
from engine.store.base import RunFilter, StoreError

FLOW = """\
flow: orders
trigger:
  webhook:
    path: /hooks/orders
    idempotency_key: $headers."x-delivery-id"
steps:
  - id: shape
    transform: '{"n": n}'
"""


@pytest.fixture
def app(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[App]:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "orders.yaml").write_text(FLOW)
    busy = getattr(request, "param", 20.0)  # how long a write waits for the held lock
    settings = Settings(home=tmp_path / "home", flows=flows, busy_timeout=busy)
    made = App(settings, flows=Loader().load_paths([flows]))
    # the first delivery also keeps the flow's version; later ones write nothing but runs
    made.accept(made.flows.flows["orders"], {"n": -1}, {"x-delivery-id": "warm"})
    made.intake.taken = made.intake.groups = made.intake.written = 0
    yield made
    made.store.close()


class HeldWriter:
    """Holds the SQLite write lock from another connection, as another process would, so the
    intake writer blocks on its first group while more deliveries arrive."""

    def __init__(self, path: Path):
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.db.execute("COMMIT")
        self.db.close()


def deliver(app: App, n: int, delivery_id: str, out: list[Accepted | BaseException]) -> None:
    try:
        out.append(app.accept(app.flows.flows["orders"], {"n": n}, {"x-delivery-id": delivery_id}))
    except BaseException as exc:
        out.append(exc)


def deliveries(app: App, ids: list[str]) -> tuple[list[threading.Thread],
                                                 list[Accepted | BaseException]]:
    out: list[Accepted | BaseException] = []
    threads = [threading.Thread(target=deliver, args=(app, i, d, out)) for i, d in enumerate(ids)]
    return threads, out


def wait_queued(app: App, count: int) -> None:
    """Until the writer took the first delivery (and is held on it) and *count* more deliveries
    wait for it."""
    pause = threading.Event()
    for _ in range(1000):
        with app.intake._cond:
            if app.intake.taken == 1 and len(app.intake._pending) == count:
                return
        pause.wait(0.01)
    raise AssertionError(f"{count} deliveries never queued up behind the writer")


def test_deliveries_that_wait_for_a_group_are_recorded_in_the_next_one(app: App) -> None:
    held = HeldWriter(app.settings.state_db)
    first, first_out = deliveries(app, ["d0"])
    first[0].start()
    rest, rest_out = deliveries(app, [f"d{i}" for i in range(1, 21)])
    wait_queued(app, 0)  # the writer took d0 and is blocked on the lock
    for thread in rest:
        thread.start()
    wait_queued(app, 20)
    assert not first_out and not rest_out  # nobody is answered before the group is recorded
    held.release()
    for thread in [*first, *rest]:
        thread.join(10)
    answers = first_out + rest_out
    assert all(isinstance(a, Accepted) and not a.duplicate for a in answers), answers
    assert (app.intake.groups, app.intake.written) == (2, 21)
    assert len(app.store.list_runs(RunFilter(flow="orders"))) == 21 + 1  # and the warm-up


def test_a_duplicate_in_the_same_group_is_answered_with_the_original(app: App) -> None:
    held = HeldWriter(app.settings.state_db)
    first, _ = deliveries(app, ["warm-up"])
    first[0].start()
    wait_queued(app, 0)
    threads, out = deliveries(app, ["same", "same", "other"])
    for thread in threads:
        thread.start()
    wait_queued(app, 3)
    held.release()
    for thread in [*first, *threads]:
        thread.join(10)
    accepted = [a for a in out if isinstance(a, Accepted)]
    assert len(accepted) == 3
    originals = [a for a in accepted if not a.duplicate]
    duplicates = [a for a in accepted if a.duplicate]
    assert len(originals) == 2 and len(duplicates) == 1
    original = next(a for a in originals if a.run_id == duplicates[0].run_id)
    assert duplicates[0].correlation_id == original.correlation_id
    assert len(app.store.list_runs(RunFilter(flow="orders"))) == 4  # warm-ups, same, other


@pytest.mark.parametrize("app", [0.5], indirect=True)
def test_a_group_that_cannot_be_recorded_refuses_every_delivery(app: App) -> None:
    held = HeldWriter(app.settings.state_db)  # held past the store's busy_timeout (0.5 s)
    try:
        threads, out = deliveries(app, ["a", "b", "c"])
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    finally:
        held.release()
    assert len(out) == 3 and all(isinstance(a, StoreError) for a in out), out
    assert len(app.store.list_runs(RunFilter(flow="orders"))) == 1  # only the warm-up
    # the store is free again: the senders' retries are recorded
    retry = app.accept(app.flows.flows["orders"], {"n": 1}, {"x-delivery-id": "a"})
    assert not retry.duplicate and app.store.get_run(retry.run_id) is not None
