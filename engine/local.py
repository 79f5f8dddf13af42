"""Run messages to completion in this process: used by `flowrun run` and by tests.

A small due-time loop: runs whose retry is due later wait in a heap, and the loop picks the next
one due. Split items and hand-offs become runs of their own and are executed in turn.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable
from typing import Any

from engine.compiled import CompiledFlow, CompiledStep, FlowSet
from engine.events import Events
from engine.processing import Core
from engine.records import RunState, start
from engine.refs import Secrets
from engine.runner import Runner
from engine.types import Resources
from engine.versions import FlowVersions

MAX_RUNS = 100_000


class StepLog(logging.LoggerAdapter[logging.Logger]):
    """A logger bound to flow, step, run and correlation id, with secrets redacted."""

    def __init__(self, logger: logging.Logger, extra: dict[str, Any], secrets: Secrets):
        super().__init__(logger, extra)
        self._secrets = secrets

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs.setdefault("extra", {}).update(self.extra or {})
        return self._secrets.redactor.text(str(msg)), kwargs

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        # format before redacting: a secret passed as a %-argument must be masked too
        if args and self.isEnabledFor(level):
            msg, args = str(msg) % args, ()
        super().log(level, msg, *args, **kwargs)


def resources_factory(secrets: Secrets, services: dict[str, Any] | None = None,
                      ) -> Callable[[CompiledFlow, CompiledStep, RunState], Resources]:
    logger = logging.getLogger("flowrunner.flow")
    shared = services or {}

    def make(flow: CompiledFlow, step: CompiledStep, state: RunState) -> Resources:
        extra = {"flow": flow.id, "step": step.id, "run_id": state.run_id,
                 "correlation_id": state.correlation_id}
        return Resources(log=StepLog(logger, extra, secrets), secrets=secrets, services=shared)

    return make


def run_to_completion(flows: FlowSet, flow: CompiledFlow, body: Any,
                      headers: dict[str, Any] | None = None, *, runner: Runner,
                      sleep: Callable[[float], None] = time.sleep,
                      run_ids: Callable[[], str] | None = None, trigger: str = "manual",
                      deliver_events: bool = True) -> list[RunState]:
    """Run one message and everything it spawns; returns every run, the first one first.

    Runs are received at ``runner.clock()``; *run_ids* (if given) names them, so a test with a
    virtual clock and fixed ids sees the same envelope every time. Nothing is recorded: the
    execution core runs without a store. Events published reach the subscribers among *flows*
    (run in turn like hand-offs) unless *deliver_events* is false (a flow test only records
    them).
    """
    core = Core(runner, FlowVersions(flows), run_ids=run_ids,
                events=Events(deliver=deliver_events))
    first = start(flow, body, headers, run_id=run_ids() if run_ids else None, now=runner.clock(),
                  trigger=trigger)
    pending: list[tuple[float, int, RunState]] = [(0.0, 0, first)]
    finished: list[RunState] = []
    counter = 1
    while pending:
        due, _, state = heapq.heappop(pending)
        wait = due - runner.clock()
        if wait > 0:
            sleep(wait)  # the only wait: this loop has nothing else to do until the retry is due
        current = core.flow_of(state)
        if current is None:
            finished.append(state)
            continue
        children = core.run(current, state)
        if not state.done:
            heapq.heappush(pending, (state.due_at or 0.0, counter, state))
            counter += 1
            continue
        finished.append(state)
        for child in children:
            heapq.heappush(pending, (0.0, counter, child))
            counter += 1
        if len(finished) >= MAX_RUNS:
            break
    return finished
