"""The observer seam (engine/processing): what an observer is told of a run's life, in order,
and that an observer that raises never changes a run's outcome.

A real App on the embedded executor and SQLite; the observers are added beside the App's own
run log and metrics, through the one `Observers` that intake, the core and replay share.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.app import App
from engine.loader import CompiledFlow
from engine.observe import Observer, Retry
from engine.records import DeadLetter, RunState
from engine.retry import REASON_KINDS, reason_kind
from engine.store.base import DeadLetterFilter
from tests.conftest import make_app, wait_until

FLOW = """
flow: tally
key: $string(n)
steps:
  - id: triage
    route:
      - when: qty < 1
        dead_letter: no quantity
      - otherwise: keep
  - id: keep
    set: {q: qty}
"""


class Recorder(Observer):
    """Every event, as (event, run id, detail)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, Any]] = []
        self.lock = threading.Lock()

    def _note(self, event: str, run_id: str, detail: Any = None) -> None:
        with self.lock:
            self.seen.append((event, run_id, detail))

    def accepted(self, state: RunState) -> None:
        self._note("accepted", state.run_id, state.trigger)

    def advanced(self, flow: CompiledFlow, state: RunState, before: int) -> None:
        self._note("advanced", state.run_id, [s["id"] for s in state.steps[before:]])

    def retry_scheduled(self, flow: CompiledFlow, state: RunState, retry: Retry) -> None:
        self._note("retry_scheduled", state.run_id, retry)

    def dead_lettered(self, state: RunState) -> None:
        self._note("dead_lettered", state.run_id, (state.error or {}).get("kind"))

    def finished(self, state: RunState) -> None:
        self._note("finished", state.run_id, state.status)

    def replayed(self, entry: DeadLetter, state: RunState, who: str | None) -> None:
        self._note("replayed", state.run_id, (entry.id, who))

    def discarded(self, entry: DeadLetter, who: str | None) -> None:
        self._note("discarded", entry.run_id, (entry.id, who))

    def of(self, run_id: str) -> list[tuple[str, Any]]:
        with self.lock:
            return [(event, detail) for event, rid, detail in self.seen if rid == run_id]


class Boom(Observer):
    """Raises on every event it is told of."""

    def _boom(self, *args: Any) -> None:
        raise RuntimeError("observer bug")

    accepted = advanced = retry_scheduled = dead_lettered = finished = _boom
    replayed = discarded = _boom


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    made = make_app(tmp_path, {"tally": FLOW})
    made.executor.start()
    yield made
    made.executor.stop()
    made.store.close()


def test_an_observer_hears_each_run_in_order_and_a_failing_one_changes_nothing(
        app: App, caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    observers = app.core.observers
    observers.members = (Boom(), *observers.members, recorder)
    flow = app.flows.flows["tally"]
    with caplog.at_level(logging.ERROR, "flowrunner.executor"):
        good = app.accept(flow, {"n": 1, "qty": 3})
        bad = app.accept(flow, {"n": 2, "qty": 0})
        assert app.wait_for(good.run_id)[0].status == "succeeded"
        assert app.wait_for(bad.run_id)[0].status == "dead_lettered"
        wait_until(lambda: len(recorder.of(bad.run_id)) == 4, 10, "the bad run's events")
        wait_until(lambda: len(recorder.of(good.run_id)) == 3, 10, "the good run's events")

    assert recorder.of(good.run_id) == [("accepted", "manual"),
                                        ("advanced", ["triage", "keep"]),
                                        ("finished", "succeeded")]
    assert recorder.of(bad.run_id) == [("accepted", "manual"), ("advanced", ["triage"]),
                                       ("dead_lettered", "route"),
                                       ("finished", "dead_lettered")]
    assert "observer Boom failed on accepted" in caplog.text
    assert "observer Boom failed on finished" in caplog.text
    # the App's own observers were told too, Boom notwithstanding
    assert app.metrics.dead_letters.labels("tally", "triage", "route")._value.get() == 1

    [entry] = [e for e in app.store.list_dead_letters(DeadLetterFilter())
               if e.run_id == bad.run_id]
    replay = app.replay(entry.id, who="console:alice")
    app.wait_for(replay.run_id)
    app.discard(entry.id, who="cli:bob")
    assert recorder.of(replay.run_id)[0] == ("replayed", (entry.id, "console:alice"))
    assert ("discarded", (entry.id, "cli:bob")) in recorder.of(bad.run_id)


@pytest.mark.parametrize(("kind", "status", "expected"), [
    ("http", 503, "http_status"), ("invalid_response", 502, "http_status"),
    ("timeout", None, "timeout"), ("dns", None, "connection"), ("tls", None, "connection"),
    ("invalid_input", None, "validation"), ("expression", None, "expression"),
    ("route", None, "route"), ("too_deep", None, "unrecordable"), ("loop", None, "internal"),
    ("not_found", None, "io"), (None, None, "other"), ("a-plugin's-own", None, "other"),
])
def test_a_failure_falls_in_one_of_a_fixed_set_of_reason_kinds(
        kind: str | None, status: int | None, expected: str) -> None:
    assert reason_kind(kind, status) == expected in REASON_KINDS
