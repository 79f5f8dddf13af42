"""Run one case: its message through the real runner, in this process, on a virtual clock.

The flow runs exactly as the embedded executor would run it (`run_to_completion`, the compiled
steps, the retry policy); only the world around it is replaced: HTTP and SFTP answers come from
the case's mocks (the transports' in-memory twins, `engine.testing.twins`), time is the case's
`VirtualClock` (a ten-minute back-off costs nothing), secrets and the environment are the
case's own.
"""

from __future__ import annotations

import copy
import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from engine.compiled import CompiledFlow, CompiledStep
from engine.envelope import Envelope
from engine.events import Event, accepts
from engine.expressions import ExpressionError
from engine.local import resources_factory, run_to_completion
from engine.records import RunState
from engine.refs import Secrets
from engine.runner import Runner
from engine.testing import coverage
from engine.testing.expect import CaseOutcome, Failure, check, route_failure, where
from engine.testing.load import TestFile
from engine.testing.mock_http import MockBook, UnmockedCall, VirtualClock
from engine.testing.twins import transports
from engine.types import Resources


class _EnvGate:
    """``${env:X}`` is read from os.environ, which every thread shares: cases that need the same
    values run together, a case that needs other values waits until those have finished."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._key: tuple[tuple[str, str], ...] | None = None
        self._users = 0
        self._saved: dict[str, str | None] = {}

    @contextmanager
    def use(self, env: dict[str, str]) -> Iterator[None]:
        key = tuple(sorted(env.items()))
        with self._cond:
            while self._users and self._key != key:
                self._cond.wait()
            if not self._users:
                self._saved = {name: os.environ.get(name) for name in env}
                os.environ.update(env)
                self._key = key
            self._users += 1
        try:
            yield
        finally:
            with self._cond:
                self._users -= 1
                if not self._users:
                    for name, value in self._saved.items():
                        if value is None:
                            os.environ.pop(name, None)
                        else:
                            os.environ[name] = value
                    self._key = None
                    self._cond.notify_all()


ENV = _EnvGate()


@dataclass
class CaseResult:
    """The verdict on one case, with what is needed to report it and count coverage."""

    file: str
    flow: str
    name: str
    line: int
    failures: list[Failure] = field(default_factory=list)
    states: list[RunState] = field(default_factory=list)
    branches: set[tuple[str, str, int]] = field(default_factory=set)
    seconds: float = 0.0

    @property
    def id(self) -> str:
        return f"{self.flow}::{self.name}"

    @property
    def passed(self) -> bool:
        return not self.failures

    def report(self) -> str:
        return "\n".join(f.render() for f in self.failures)


class _Runner(Runner):
    """The real runner, noting the delay of every retry it schedules."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.delays: list[tuple[str, str, str, float]] = []

    def advance(self, flow: CompiledFlow, state: RunState,
                checkpoint: Callable[[RunState], None] | None = None) -> RunState:
        super().advance(flow, state, checkpoint)
        if state.status == "retrying" and state.due_at is not None:
            step = flow.steps[state.position].id
            self.delays.append((state.run_id, flow.id, step, state.due_at - self.clock()))
        return state


def run_case(doc: TestFile, index: int) -> CaseResult:
    """Run case *index* of a loaded, valid test file and compare it with its expectations."""
    assert doc.model is not None and doc.flow is not None and doc.flows is not None
    model, flow, flows = doc.model, doc.flow, doc.flows
    case = model.cases[index]
    result = CaseResult(doc.file, flow.id, case.name, doc.case_line(index))
    clock = VirtualClock(case.clock.timestamp() if case.clock else time.time())
    secrets = Secrets(environ={f"FLOWRUN_SECRET_{k}": v
                               for k, v in {**model.secrets, **case.secrets}.items()})
    book = MockBook(list(case.mocks))
    base = resources_factory(secrets)
    twins: dict[str, dict[str, Any]] = {}

    def resources(flow: CompiledFlow, step: CompiledStep, state: RunState) -> Resources:
        made = base(flow, step, state)
        if step.id not in twins:
            twins[step.id] = transports(book, step.id, clock)
        return replace(made, services={**made.services, **twins[step.id]})

    def on_step(step: CompiledStep, state: RunState, envelope: Envelope) -> None:
        if state.run_id == first_run[0]:
            if not live:
                live.append(state)
            _note_writers(step, state, envelope, seen, writers)
        if step.kind == "route":
            taken = coverage.taken_rule(flows.flows[state.flow_id], step, envelope)
            if taken is not None:
                result.branches.add((state.flow_id, step.id, taken))

    writers: dict[str, str] = {}
    seen: dict[str, Any] = {}
    first_run: list[str] = []
    live: list[RunState] = []  # the first run while it runs, for a report if a call is unmocked
    runner = _Runner(resources, secrets.redactor, clock=clock.now, on_step=on_step)
    numbers = itertools.count(1)

    def run_ids() -> str:
        # the first id names the run whose steps the expectations are about
        run_id = f"run-{next(numbers)}" if case.fixed_ids else uuid.uuid4().hex
        first_run.append(run_id)
        return run_id

    headers = {str(k).lower(): v for k, v in case.input.headers.items()}
    trigger = "manual"
    if flow.subscription is not None:  # the input is the data of an event it subscribes to
        trigger = "event"
        event = Event(flow.subscription.type, headers.get("event-id", "test-event"),
                      doc.bodies[index], headers.get("event-key"))
        headers = {**event.headers(), **headers}
        with ENV.use({**model.env, **case.env}):
            verdict = _subscribed(doc, index, flow, event)
        if verdict is not None:
            result.failures.extend(verdict)
            return result
    started = time.perf_counter()
    try:
        with ENV.use({**model.env, **case.env}):
            states = run_to_completion(flows, flow, copy.deepcopy(doc.bodies[index]), headers,
                                       runner=runner, sleep=clock.sleep, run_ids=run_ids,
                                       trigger=trigger, deliver_events=False)
    except UnmockedCall as exc:
        result.failures.append(Failure(
            "mocks", f"{exc}; add a mock for it, e.g. mocks: [{{step: {exc.step}, responses: "
                     "[{status: 200}]}]", f"{doc.file}:{result.line}", where(flow, exc.step)))
        # the run stopped at the call; the route so far often shows why it was made at all
        result.states = live  # what ran before the call still counts for coverage
        route = [r["id"] for r in live[0].steps] if live else []
        route.append(exc.step)
        expected = case.expect.route
        if expected is not None and route != expected[:len(route)]:
            line, column = doc.source.position(("cases", index, "expect", "route"), key=True)
            result.failures.append(route_failure(expected, route, flow,
                                                 f"{doc.file}:{line}:{column}", partial=True))
        return result
    finally:
        result.seconds = time.perf_counter() - started
    result.states = states
    first = states[0].run_id
    delays = [(step, delay) for run, flow_id, step, delay in runner.delays
              if run == first and flow_id == flow.id]
    outcome = CaseOutcome(states, book.calls, delays, writers)
    result.failures = check(case, index, doc.source, flow, outcome, doc.asserts[index])
    return result


def _subscribed(doc: TestFile, index: int, flow: CompiledFlow,
                event: Event) -> list[Failure] | None:
    """None when the case goes on to run; else its verdict: the subscription's ``when:``
    decides whether a run starts at all, against ``expect.subscribed``."""
    assert doc.model is not None
    expected = doc.model.cases[index].expect.subscribed
    line, column = doc.source.position(("cases", index, "expect"), key=True)
    at = f"{doc.file}:{line}:{column}"
    try:
        taken, _ = accepts(flow.subscription, event)
    except ExpressionError as exc:
        return [Failure("trigger.event", f"the subscription cannot be evaluated on this event: "
                        f"{exc}", at)]
    if taken:
        if expected is False:
            return [Failure("expect.subscribed", "the subscription takes this event (its when: "
                            "is true): a run would start", at)]
        return None
    if expected is False:
        return []
    return [Failure("expect.subscribed", f"the subscription does not take this event (its "
                    f"when: is false): no run of '{flow.id}' would start; write subscribed: "
                    "false if that is what you expect", at)]


def _note_writers(step: CompiledStep, state: RunState, envelope: Envelope, seen: dict[str, Any],
                  writers: dict[str, str]) -> None:
    """Remember which step last changed the body and each var, to name it in a failure."""
    if not seen:
        seen["body"] = state.original.get("body")
    if envelope.body != seen["body"]:
        writers["body"], seen["body"] = step.id, copy.deepcopy(envelope.body)
    for name, value in envelope.vars.items():
        key = f"vars.{name}"
        if key not in seen or seen[key] != value:
            writers[key], seen[key] = step.id, copy.deepcopy(value)
