"""The two context events of the observer seam: `delivering` around one delivery of a run and
`attempting` around each attempt of a step — in order, with the step run inside, and an
observer whose context breaks is logged without failing the run."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.loader import CompiledFlow, CompiledStep, Loader
from engine.local import resources_factory
from engine.processing import Core, Observer
from engine.records import RunState, start
from engine.refs import Secrets
from engine.runner import Runner
from engine.schemas import SchemaStore
from engine.versions import FlowVersions
from tests.conftest import ROOT

FLOW = """flow: two
steps:
  - id: first
    set: {a: "1"}
  - id: second
    set: {b: "2"}
"""


class Story(Observer):
    """Keeps the order of what it is told; *broken* names a context that raises."""

    def __init__(self, broken: str | None = None):
        self.told: list[str] = []
        self.broken = broken

    @contextlib.contextmanager
    def delivering(self, flow: CompiledFlow, state: RunState) -> Iterator[None]:
        self.told.append(f"deliver {state.status}")
        if self.broken == "enter":
            raise RuntimeError("the span could not start")
        yield
        self.told.append(f"delivered {state.status}")
        if self.broken == "exit":
            raise RuntimeError("the span could not end")

    @contextlib.contextmanager
    def attempting(self, flow: CompiledFlow, step: CompiledStep, state: RunState
                   ) -> Iterator[None]:
        before = len(state.steps)
        self.told.append(f"attempt {step.id}")
        yield
        self.told.append(f"attempted {step.id}: {len(state.steps) - before} record")

    def finished(self, state: RunState) -> None:
        self.told.append("finished")


def run(tmp_path: Path, *observers: Observer) -> tuple[RunState, Core]:
    (tmp_path / "two.yaml").write_text(FLOW, encoding="utf-8")
    loader = Loader(schemas=SchemaStore(ROOT / "schemas"), secrets=Secrets(environ={}))
    flows = loader.load_paths([tmp_path])
    runner = Runner(resources_factory(loader.secrets, {}), loader.secrets.redactor)
    core = Core(runner, FlowVersions(flows), observers=observers)
    flow = flows.flows["two"]
    state = start(flow, {"order": 1})
    core.run(flow, state)
    return state, core


def test_a_delivery_wraps_each_attempt_and_each_attempt_wraps_its_step(tmp_path: Path) -> None:
    story = Story()
    state, core = run(tmp_path, story)
    assert state.status == "succeeded"
    assert story.told == ["deliver queued", "attempt first", "attempted first: 1 record",
                          "attempt second", "attempted second: 1 record", "delivered succeeded"]
    assert core.runner.around_step is not None


def test_without_a_context_observer_the_runner_has_no_hook(tmp_path: Path) -> None:
    class Counts(Observer):
        def finished(self, state: RunState) -> None:
            pass

    state, core = run(tmp_path, Counts())
    assert state.status == "succeeded" and core.runner.around_step is None


@pytest.mark.parametrize("broken", ["enter", "exit"])
def test_a_context_that_breaks_is_logged_and_the_run_goes_on(
        tmp_path: Path, broken: str, caplog: pytest.LogCaptureFixture) -> None:
    story, other = Story(broken), Story()
    with caplog.at_level(logging.ERROR, "flowrunner.executor"):
        state, _ = run(tmp_path, story, other)
    assert state.status == "succeeded"
    assert other.told[0] == "deliver queued" and other.told[-1] == "delivered succeeded"
    where = "on delivering" if broken == "enter" else "on leaving delivering"
    assert [r.getMessage() for r in caplog.records] == [f"observer Story failed {where}"]


def test_one_context_observer_among_others_is_guarded_alone(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    story = Story("exit")
    quiet: Any = Observer()
    with caplog.at_level(logging.ERROR, "flowrunner.executor"):
        state, _ = run(tmp_path, story, quiet)
    assert state.status == "succeeded"
    assert [r.getMessage() for r in caplog.records] == [
        "observer Story failed on leaving delivering"]
