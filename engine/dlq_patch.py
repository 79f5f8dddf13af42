"""A patch for many dead letters at once: one JSONata expression that rewrites each entry's body.

500 orders failed on the same discontinued article: the operator writes one expression, sees
what it makes of a few of the entries (the body before and after, and where each would go),
then replays them all with it. The expression sees

* ``$`` — the body the replay starts with: the body at the failed step (``--from
  failed-step``, the default) or the original message's body (``--from start``);
* ``$entry`` — the entry's facts: ``id``, ``flow``, ``version``, ``step`` (the failed step),
  ``key``, ``correlation_id``, ``created_at`` (epoch seconds), ``error`` (its message),
  ``status`` (the failed call's HTTP status, when there was one).

Its value is the new body. An expression that fails on an entry (or gives no value) leaves that
entry open with the error on its audit trail; every replayed entry's audit item holds the patch.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from engine import dlq, jsonata_backend, step_snapshots
from engine.envelope import Envelope
from engine.expressions import DEFAULT_MAX_DEPTH, DEFAULT_TIMEOUT_MS
from engine.records import DeadLetter, RunState

if TYPE_CHECKING:
    from engine.app import App

PREVIEW = 3  # entries previewed unless asked otherwise
MAX_SOURCE = 20_000
#: the largest body (bytes of JSON) a patch may make: the largest edited body the console takes.
#: A patch that builds more (``[1..10000000]`` is 100 MB) would tie up a preview's diff and
#: store a copy per replayed entry.
MAX_RESULT = 4 * 1024 * 1024


class PatchError(dlq.ReplayRefused):
    """The patch expression cannot be compiled, or failed on one entry; says where."""

    def __init__(self, message: str, position: int | None = None):
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"patch expression error{where}: {message}")
        self.position = position


class Patch:
    def __init__(self, source: str):
        if not source.strip():
            raise PatchError("the expression is empty")
        if len(source) > MAX_SOURCE:
            raise PatchError(f"the expression is longer than {MAX_SOURCE:,} characters")
        self.source = source
        try:
            self._compiled = jsonata_backend.compile(source)
        except jsonata_backend.SyntaxFailure as exc:
            raise PatchError(exc.message, exc.offset) from None

    def apply(self, entry: DeadLetter, start_from: str) -> Any:
        """The new body for *entry*; `PatchError` when the expression fails on it."""
        try:
            result = self._compiled.evaluate(body_of(entry, start_from),
                                             {"entry": facts(entry)},
                                             timeout_ms=DEFAULT_TIMEOUT_MS,
                                             max_depth=DEFAULT_MAX_DEPTH)
        except jsonata_backend.EvaluationFailure as exc:
            raise PatchError(exc.message, exc.offset) from None
        if result is None:
            raise PatchError("the expression gave no value for this entry (undefined or null)")
        size = len(step_snapshots.encode(result))
        if size > MAX_RESULT:
            raise PatchError(f"the expression made a body of {size:,} bytes of JSON; a patch "
                             f"may make at most {MAX_RESULT:,}")
        return result


def body_of(entry: DeadLetter, start_from: str) -> Any:
    if start_from == "start":
        return entry.original.get("body")
    return Envelope.from_dict(entry.envelope).body


def facts(entry: DeadLetter) -> dict[str, Any]:
    return {"id": entry.id, "flow": entry.flow_id, "version": entry.flow_version,
            "step": entry.step, "key": entry.key, "correlation_id": entry.correlation_id,
            "created_at": entry.created_at, "error": entry.message,
            "status": entry.reason.get("status")}


def replay(app: App, entry_id: str, patch: Patch | None, *, start_from: str = "failed-step",
           version: str = "original", who: str | None = None, force: bool = False) -> RunState:
    """Replay *entry_id* with its body rewritten by *patch* (unchanged without one)."""
    entry = app.store.get_dead_letter(entry_id)
    if patch is None or entry is None or entry.status == "discarded" or (
            entry.status in ("replayed", "replaying") and not force):
        # nothing to patch: the ordinary replay says why it is refused, or replays as it is
        return app.replay(entry_id, start_from=start_from, version=version, who=who,
                          force=force)
    try:
        body = patch.apply(entry, start_from)
    except PatchError as exc:
        dlq.record(entry, "replay_refused", who=who, reason=str(exc), patch=patch.source)
        app.store.update_dead_letter(entry)
        raise
    return app.replay(entry_id, start_from=start_from, version=version, body=body, edited=True,
                      who=who, force=force, patch=patch.source)


def selection(app: App, entry_ids: list[str]) -> dict[str, Any]:
    """How many entries, of which flows: what a confirmation names before acting."""
    flows: Counter[str] = Counter()
    missing = 0
    for entry_id in entry_ids:
        entry = app.store.get_dead_letter(entry_id)
        if entry is None:
            missing += 1
        else:
            flows[entry.flow_id] += 1
    return {"total": len(entry_ids) - missing, "flows": dict(sorted(flows.items())),
            "missing": missing}


def _text(app: App, value: Any) -> str:
    return json.dumps(app.secrets.redactor.data(value), indent=2, ensure_ascii=False,
                      default=str, sort_keys=True)


def preview(app: App, entry_ids: list[str], patch: Patch | None, *,
            start_from: str = "failed-step", version: str = "original",
            count: int = PREVIEW) -> list[dict[str, Any]]:
    """What the patch makes of the first *count* entries and where each would then go.

    The "where" is a dry run (engine/dlq.dry_run): the flow's steps without side effects run,
    and the run stops before the first step that has one (a call, a publish) — so a route
    branch and a hand-off target are shown, and no partner is called. Nothing is recorded."""
    out = []
    for entry_id in entry_ids[:count]:
        entry = app.store.get_dead_letter(entry_id)
        if entry is None:
            out.append({"entry": entry_id, "error": f"no dead-letter entry '{entry_id}'"})
            continue
        before = body_of(entry, start_from)
        item: dict[str, Any] = {"entry": entry.id, "flow": entry.flow_id,
                                "resume_at": entry.step if start_from == "failed-step"
                                else "start", "before": _text(app, before), "after": None,
                                "diff": "", "error": None, "dry_run": None}
        try:
            after = patch.apply(entry, start_from) if patch else before
        except PatchError as exc:
            item["error"] = str(exc)
            out.append(item)
            continue
        item["after"] = _text(app, after)
        item["diff"] = "".join(difflib.unified_diff(
            item["before"].splitlines(keepends=True), item["after"].splitlines(keepends=True),
            "before", "after", n=2))
        try:
            state = app.replay(entry.id, start_from=start_from, version=version, body=after,
                               edited=patch is not None, dry_run=True)
        except dlq.ReplayRefused as exc:
            item["error"] = str(exc)
        else:
            item["dry_run"] = where(app, state)
        out.append(item)
    return out


def where(app: App, state: RunState) -> dict[str, Any]:
    """A dry run's path: the steps it took and where it ended (or stopped before acting)."""
    error = state.error or {}
    return {"status": state.status,
            # the step it stopped before is not one it ran
            "steps": [{"id": s["id"], "kind": s.get("kind"), "status": s["status"]}
                      for s in state.steps if s["status"] != "dry_run"],
            "hand_off": [s.flow for s in state.spawn if s.flow != state.flow_id],
            "message": app.secrets.redactor.text(str(error.get("message") or ""))}
