"""Dead-letter entries: made from a failed run, replayed (after a fix) or discarded, with audit.

A replay is a new run: from the start with the original trigger message, or from the failed
step with the envelope as it was there; on the flow version it failed on or the current one;
with an edited body if the operator fixed the data. An edited body is first dry-run through the
flow's pure steps (no calls), so a body that still fails validation is refused and the entry
kept. Every replay and discard is appended to the entry's audit trail.

One failed message is one entry, however often it is replayed: a replay run that ends is
settled on the entry it replays (`settle`), in the same write as the run's last record — its
outcome, error, who and when on that replay's audit item; the entry open again (describing
the latest failure) or replayed. A replay run never files an entry of its own, so the queue,
its counts and the ``flowrun_dlq_depth`` metric never double.
"""

from __future__ import annotations

import copy
import getpass
import time
from dataclasses import dataclass, replace
from typing import Any, Literal

from engine.compiled import CompiledFlow, CompiledStep
from engine.envelope import Envelope
from engine.records import DeadLetter, RunState, start
from engine.runner import Runner
from engine.spans import META_KEY
from engine.store.base import Store
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
    trace = entry.envelope.get("meta", {}).get(META_KEY)
    if trace:  # the replay continues the trace of the run that failed (engine/tracing)
        state.envelope["meta"][META_KEY] = dict(trace)
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


def settle(store: Store | None, state: RunState) -> DeadLetter | None:
    """The dead-letter entry to record with *state*, which has just ended, in the same write.

    A replay run (``meta.replay_of``) settles the entry it replays: its outcome goes on that
    replay's audit item and the entry is ``replayed`` when it succeeded, else ``open`` again
    with the run's error, step and envelope as its latest failure (a discarded entry stays
    discarded). Any other dead-lettered run files a new entry; other runs none."""
    entry_id = state.envelope.get("meta", {}).get("replay_of")
    entry = store.get_dead_letter(entry_id) if entry_id and store is not None else None
    if entry is None:
        return DeadLetter.for_run(state) if state.status == "dead_lettered" else None
    item = next((a for a in reversed(entry.audit)
                 if a.get("action") == "replay" and a.get("run_id") == state.run_id), None)
    if item is None:  # its audit item was not written (the store failed in between)
        item = {"at": state.created_at, "who": None, "action": "replay", "run_id": state.run_id}
        entry.audit.append(item)
    item["result"], item["finished_at"] = state.status, time.time()
    succeeded = state.status == "succeeded"
    if not succeeded and state.error:
        error = state.error
        item["error"] = {k: error[k] for k in ("message", "step", "kind", "status")
                         if error.get(k) is not None}
        if state.status == "dead_lettered":
            # the entry now describes its latest failure: a replay from the failed step starts
            # where this one stopped, with the Idempotency-Keys this run's calls used
            envelope = copy.deepcopy(state.envelope)
            meta = envelope.setdefault("meta", {})
            meta["effects_of"] = meta.get("effects_of") or state.run_id
            entry.reason, entry.step, entry.envelope = error, error.get("step"), envelope
            entry.flow_version = state.flow_version
    if entry.status != "discarded":
        entry.status = "replayed" if succeeded else "open"
    return entry
