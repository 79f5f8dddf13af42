"""The runner: push one run's message through its flow, step after step, from its checkpoint.

`advance` runs steps until the run ends, or a step failed and its retry is due later — then it
returns with ``state.due_at`` set and the executor schedules it; nothing here ever sleeps. Retry,
failure handling, timing and the step records wrap every step function the same way; steps
themselves know none of it.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from engine.compiled import CompiledFlow, CompiledStep
from engine.envelope import Envelope
from engine.expressions import ExpressionError
from engine.records import RunState, Spawn
from engine.refs import Redactor, UnresolvedReference
from engine.retry import give_up_reason, next_delay
from engine.step_snapshots import LIMIT, MOST_STEPS, take
from engine.types import (
    END,
    Continue,
    Fork,
    Goto,
    HandOff,
    Outcome,
    Resources,
    StepError,
    Stop,
    ToDeadLetter,
)

log = logging.getLogger("flowrunner.runner")

MAX_STEPS_PER_RUN = 10_000


class Runner:
    """Advances runs of compiled flows. One instance serves many threads: it keeps no run state."""

    def __init__(self, resources: Callable[[CompiledFlow, CompiledStep, RunState], Resources],
                 redactor: Redactor | None = None, clock: Callable[[], float] = time.time,
                 on_step: Callable[[CompiledStep, RunState, Envelope], None] | None = None,
                 snapshots: int = LIMIT):
        self._resources = resources
        #: bytes of each step's output kept in its record (engine/step_snapshots); 0: none
        self.snapshots = snapshots
        self._redactor = redactor or Redactor()
        self.clock = clock
        self._on_step = on_step
        #: takes a token of a step's `rate_limit:` (0 = go, else seconds until it is ours);
        #: the executor sets it — without one (flowrun run/test) rate limits are not applied
        self.rate_limiter: Callable[[Any], float] | None = None
        #: a context around each attempt of a step (a trace span), from the observers of the
        #: execution core (engine/processing) — None when none of them makes one
        self.around_step: Callable[[CompiledFlow, CompiledStep, RunState],
                                   AbstractContextManager[Any] | None] | None = None

    def advance(self, flow: CompiledFlow, state: RunState,
                checkpoint: Callable[[RunState], None] | None = None) -> RunState:
        state.status, state.due_at = "running", None
        envelope = Envelope.from_dict(state.envelope)
        while not state.done:
            if state.position >= len(flow.steps):
                state.status = "succeeded"
                break
            if state.executed >= MAX_STEPS_PER_RUN:
                self._end(state, "failed", {"message": f"run exceeded {MAX_STEPS_PER_RUN} steps; "
                                            "a route or on_failure goto loops", "kind": "loop"})
                break
            step = flow.steps[state.position]
            around = self.around_step(flow, step, state) if self.around_step else None
            if around is None:
                went_on = self._run_step(flow, step, state, envelope)
            else:
                with around:
                    went_on = self._run_step(flow, step, state, envelope)
            if not went_on:
                break  # a retry is scheduled for later
            if step.side_effect and checkpoint is not None and not state.done \
                    and state.position < len(flow.steps):
                # the run goes on: record how far it got, with the envelope as it is now, so a
                # redelivery resumes after this step. A run that ended — or whose effect was
                # its last step — is saved once, by the caller, right after, together with
                # its dead-letter entry or the runs it hands on: no step runs in between, so
                # a checkpoint there would only be a second write of the same progress.
                state.envelope = envelope.to_dict()
                state.updated_at = self.clock()
                checkpoint(state)
        state.envelope = envelope.to_dict()
        state.updated_at = self.clock()
        return state

    # -- one step ------------------------------------------------------------------------------
    def _run_step(self, flow: CompiledFlow, step: CompiledStep, state: RunState,
                  envelope: Envelope) -> bool:
        """Run one attempt of *step*. False when the run must wait for a scheduled retry."""
        if self.rate_limiter is not None and not self._admitted(flow, step, state):
            return False
        now = self.clock()
        if state.step_started_at is None:
            state.step_started_at = now
        envelope.meta["attempt"] = state.attempt
        envelope.meta["step"] = step.id
        resources = self._resources(flow, step, state)
        before = envelope.body
        started = time.perf_counter()
        try:
            outcome = step.fn(envelope, resources)
        except StepError as exc:
            return self._failed(flow, step, state, envelope, exc, started)
        except ExpressionError as exc:
            error = StepError(str(exc), kind="expression")
            return self._failed(flow, step, state, envelope, error, started)
        except UnresolvedReference as exc:
            return self._failed(flow, step, state, envelope, StepError(str(exc), kind="config"),
                                started)
        except RecursionError:
            error = StepError("the message is nested too deeply to process", kind="too_deep")
            return self._failed(flow, step, state, envelope, error, started)
        except Exception as exc:  # a bug in a step must not lose the message: dead-letter it
            log.error("step %s of flow %s raised %s\n%s", step.id, flow.id, type(exc).__name__,
                      self._redactor.text(traceback.format_exc()))
            error = StepError(f"internal error in step '{step.id}': {type(exc).__name__}: "
                              f"{self._redactor.text(str(exc))}", kind="internal")
            return self._failed(flow, step, state, envelope, error, started)
        duration = (time.perf_counter() - started) * 1000
        self._record(state, step, "succeeded" if not isinstance(outcome, Stop) else outcome.status,
                     duration)
        self._apply(flow, step, state, envelope, outcome)
        if self.snapshots:
            self._snapshot(step, state, envelope, outcome, before)
        if self._on_step is not None:
            self._on_step(step, state, envelope)
        return True

    def _admitted(self, flow: CompiledFlow, step: CompiledStep, state: RunState) -> bool:
        """Whether *step* may run now under its rate limit. If not, the run waits (as retrying)
        until the token it reserved is due; no attempt is used and the retry clock not started."""
        limit = getattr(flow.model.steps[step.index], "rate_limit", None)  # type: ignore[attr-defined]
        if limit is None or self.rate_limiter is None:
            return True
        if state.reserved is not None and state.reserved.get("step") == step.id:
            state.reserved = None  # the token was taken when the run was put to wait for it
            return True
        wait = self.rate_limiter(limit)
        if wait <= 0:
            return True
        state.status, state.due_at = "retrying", self.clock() + wait
        state.reserved = {"step": step.id, "limit": limit.name, "at": state.due_at}
        return False

    def _apply(self, flow: CompiledFlow, step: CompiledStep, state: RunState, envelope: Envelope,
               outcome: Outcome) -> None:
        state.executed += 1
        state.attempt, state.attempts, state.step_started_at = 1, [], None
        if isinstance(outcome, Continue):
            if outcome.has_value and step.output:
                if step.output.startswith("vars."):
                    envelope.vars[step.output[5:]] = outcome.value
                else:
                    envelope.body = outcome.value
            self._goto_next(flow, step, state)
        elif isinstance(outcome, Goto):
            state.position = len(flow.steps) if outcome.step == END else flow.index[outcome.step]
        elif isinstance(outcome, Stop):
            self._end(state, outcome.status, {"message": outcome.reason, "step": step.id})
        elif isinstance(outcome, ToDeadLetter):
            self._end(state, "dead_lettered", {"message": outcome.reason, "step": step.id,
                                               "kind": "route"})
        elif isinstance(outcome, HandOff):
            state.spawn.append(Spawn(outcome.flow, _handoff(envelope)))
            self._end(state, "handed_off", None)
        elif isinstance(outcome, Fork):
            after = _after(flow, step)
            for i, item in enumerate(outcome.items):
                child = envelope.copy()
                child.body = item
                child.meta["split_index"] = i
                state.spawn.append(Spawn(flow.id, child.to_dict(), after))
            self._end(state, "split", None)

    def _goto_next(self, flow: CompiledFlow, step: CompiledStep, state: RunState) -> None:
        state.position = _after(flow, step)

    # -- failure -------------------------------------------------------------------------------
    def _failed(self, flow: CompiledFlow, step: CompiledStep, state: RunState, envelope: Envelope,
                error: StepError, started: float) -> bool:
        duration = (time.perf_counter() - started) * 1000
        message = self._redactor.text(error.message)
        state.attempts.append({"attempt": state.attempt, "at": self.clock(), "error": message,
                               "kind": error.kind, "status": error.status,
                               "duration_ms": round(duration, 3)})
        elapsed = self.clock() - (state.step_started_at or self.clock())
        delay = next_delay(step.retry, error, state.attempt, elapsed)
        if delay is not None:
            state.attempt += 1
            state.status, state.due_at = "retrying", self.clock() + delay
            state.envelope = envelope.to_dict()
            return False
        detail = self._redactor.data(error.detail)
        reason = {"step": step.id, "message": f"step '{step.id}' ({flow.file}:{step.line}): "
                  f"{message}", "kind": error.kind, "status": error.status, "detail": detail,
                  "attempts": list(state.attempts),
                  "gave_up": give_up_reason(step.retry, error, state.attempt)}
        self._record(state, step, "failed", duration, reason["message"])
        handler = step.on_failure
        state.executed += 1
        if handler == "drop":
            self._end(state, "dropped", reason)
        elif getattr(handler, "goto", None):
            envelope.vars["error"] = reason
            state.attempt, state.attempts, state.step_started_at = 1, [], None
            state.position = flow.index[handler.goto]
        elif getattr(handler, "flow", None):
            envelope.vars["error"] = reason
            state.spawn.append(Spawn(handler.flow, _handoff(envelope)))
            self._end(state, "handed_off", reason)
        else:
            self._end(state, "dead_lettered", reason)
        return True

    def _snapshot(self, step: CompiledStep, state: RunState, envelope: Envelope,
                  outcome: Outcome, before: Any) -> None:
        """Record what *step* left (engine/step_snapshots). A new body is recorded as a
        reference to the envelope's, which holds it until a later step replaces it: only then
        is it encoded, into the step that made it — the run's last body is never kept twice."""
        # steps assign a new body; the same object is no change
        changed = envelope.body is not before
        if changed:
            self._settle(state, before)
        if len(state.steps) > MOST_STEPS:
            return
        if isinstance(outcome, Continue) and outcome.has_value and step.output \
                and step.output.startswith("vars."):
            output = take(outcome.value, self._redactor, self.snapshots, step.output)
        else:
            output = {"ref": "body"} if changed else {"unchanged": True}
        state.steps[-1]["output"] = output

    def _settle(self, state: RunState, body: Any) -> None:
        """The step whose output is *body*, a reference until now, gets its snapshot."""
        for record in reversed(state.steps[:min(len(state.steps) - 1, MOST_STEPS)]):
            output = record.get("output")
            if output is None or output.get("unchanged") or output.get("to", "body") != "body":
                continue
            if output.get("ref"):
                record["output"] = take(body, self._redactor, self.snapshots)
            return

    @staticmethod
    def _record(state: RunState, step: CompiledStep, status: str, duration: float,
                error: str | None = None) -> None:
        record = {"id": step.id, "kind": step.kind, "status": status,
                  "duration_ms": round(duration, 3), "attempts": state.attempt}
        if error:
            record["error"] = error
        state.steps.append(record)

    @staticmethod
    def _end(state: RunState, status: str, error: dict[str, Any] | None) -> None:
        state.status, state.error = status, error


def _after(flow: CompiledFlow, step: CompiledStep) -> int:
    if step.next == END:
        return len(flow.steps)
    if step.next:
        return flow.index[step.next]
    return step.index + 1


def _handoff(envelope: Envelope) -> dict[str, Any]:
    child = envelope.copy()
    child.meta = {"correlation_id": envelope.meta.get("correlation_id"),
                  "parent_run_id": envelope.meta.get("run_id")}
    return child.to_dict()
