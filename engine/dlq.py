"""Dead-letter entries: made from a failed run, replayed (after a fix) or discarded, with audit.

A replay is a new run: from the start with the original trigger message, or from the failed
step with the envelope as it was there; on the flow version it failed on or the current one;
with an edited body if the operator fixed the data. An edited body is first dry-run through the
flow's pure steps (no calls), so a body that still fails validation is refused and the entry
kept. Every replay and discard is appended to the entry's audit trail.
"""

from __future__ import annotations

import copy
import getpass
import time
from dataclasses import dataclass, replace
from typing import Any, Literal

from engine.envelope import Envelope
from engine.loader import CompiledFlow, CompiledStep
from engine.records import DeadLetter, RunState, start
from engine.runner import Runner
from engine.types import Outcome, Resources, Stop


class ReplayRefused(Exception):
    """The replay cannot be done; the message says why and the entry is left as it was."""

    def __init__(self, message: str, detail: Any = None):
        super().__init__(message)
        self.detail = detail


def operator() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a container: the audit still records the action
        return "unknown"


@dataclass
class ReplayPlan:
    entry: DeadLetter
    flow: CompiledFlow
    state: RunState


def plan_replay(entry: DeadLetter, flow: CompiledFlow, *,
                start_from: Literal["start", "failed-step"], body: Any = None,
                edited: bool = False, force: bool = False) -> ReplayPlan:
    """Build the new run for a replay of *entry* on *flow* (already the chosen version).

    An entry already replayed with success, or with a replay still in flight, is refused unless
    *force*: replaying it again would repeat its effects downstream (a second sales order)."""
    if entry.status == "discarded":
        raise ReplayRefused(f"entry {entry.id} was discarded; it cannot be replayed")
    if entry.status in ("replayed", "replaying") and not force:
        last: dict[str, Any] = next(
            (a for a in reversed(entry.audit) if a.get("action") == "replay"), {})
        what = ("was already replayed successfully" if entry.status == "replayed"
                else "has a replay in flight")
        raise ReplayRefused(f"entry {entry.id} {what} (run {last.get('run_id', '?')}); replaying "
                            "it again would repeat its effects — use --force if you mean to")
    headers = dict(entry.original.get("headers") or {})
    if start_from == "start":
        state = start(flow, body if edited else entry.original.get("body"), headers,
                      trigger="replay", correlation_id=entry.correlation_id or None,
                      request=entry.original.get("request"))
    else:
        if not entry.step or entry.step not in flow.index:
            raise ReplayRefused(f"step '{entry.step}' is not in flow '{flow.id}' version "
                                f"{flow.version}; replay from the start instead (--from start)")
        previous = Envelope.from_dict(entry.envelope)
        state = start(flow, body if edited else previous.body, previous.headers,
                      trigger="replay", correlation_id=entry.correlation_id or None,
                      position=flow.index[entry.step], vars=previous.vars)
    state.envelope["meta"]["replay_of"] = entry.id
    if not edited and not force:
        # the same message again: its calls reuse the failed run's Idempotency-Keys, so an
        # effect the downstream applied before the run failed (a call that timed out after
        # the downstream acted) is not applied a second time
        state.envelope["meta"]["effects_of"] = (entry.envelope.get("meta", {}).get("effects_of")
                                                or entry.run_id)
    return ReplayPlan(entry, flow, state)


def _stop(step: CompiledStep) -> Any:
    def stop(envelope: Envelope, resources: Resources) -> Outcome:
        return Stop("dry_run", f"dry run stopped before '{step.id}' ({step.kind}), which has "
                               "side effects")
    return stop


def dry_run(runner: Runner, plan: ReplayPlan) -> RunState:
    """Run the plan's pure steps only; side-effecting steps end the dry run before they act."""
    steps = [replace(s, fn=_stop(s)) if s.side_effect else s for s in plan.flow.steps]
    flow = replace(plan.flow, steps=steps)
    flow.index = plan.flow.index
    state = RunState.from_dict(copy.deepcopy(plan.state.to_dict()))
    return runner.advance(flow, state)


def check_edited(runner: Runner, plan: ReplayPlan) -> RunState:
    """Refuse an edited body that the flow's pure steps reject (e.g. it still fails validation)."""
    state = dry_run(runner, plan)
    if state.status in ("dead_lettered", "failed"):
        error = state.error or {}
        raise ReplayRefused(f"the edited body is refused: {error.get('message')}",
                            detail=error.get("detail"))
    return state


def record(entry: DeadLetter, action: str, **how: Any) -> None:
    entry.audit.append({"at": time.time(), "who": how.pop("who", None) or operator(),
                        "action": action, **how})
