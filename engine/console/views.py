"""What the console shows, as plain data: shared by the HTML pages and the JSON API.

Everything that leaves here went through the App's redactor, and every payload is a bounded
`Snapshot` — a 50 MB order is shown as its first few kilobytes and a note, so no page or API
answer grows with the data an operator happens to look at.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from engine.app import App
from engine.compiled import CompiledFlow
from engine.dsl.base import parse_duration
from engine.metrics import lane_of, poll_lag
from engine.poll import cursor as cursors
from engine.records import TERMINAL, DeadLetter, RunState
from engine.step_snapshots import mask, timeline
from engine.step_snapshots import take as take_snapshot
from engine.store.base import (
    BadPayloadQuery,
    DeadLetterFilter,
    PayloadQuery,
    RunFilter,
    payload_indexed,
)

SNAPSHOT_LIMIT = 16_000  # characters of JSON shown for one payload
EDIT_LIMIT = 512_000  # a body longer than this is replayed with an edited file, not in a form
FAILED = ("dead_lettered", "failed")
RUN_STATUSES = ("queued", "running", "retrying", "succeeded", "filtered", "dropped",
                "dead_lettered", "failed", "handed_off", "split")
DLQ_STATUSES = ("open", "replaying", "replayed", "discarded", "all")
#: the failure kinds offered by the dead-letter filters (`StepError.kind`); any other may be
#: typed in the API and the CLI
ERROR_KINDS = ("http", "timeout", "connection", "validation", "invalid_response", "rejected",
               "expression", "config", "auth", "not_found", "route", "internal")
LIST_LIMIT = 200
PREFIX_SCAN = 10_000  # an id prefix is looked up among this many latest runs


class BadQuery(ValueError):
    """A search parameter that cannot be used; the message names it and says what fits."""


@dataclass
class Snapshot:
    text: str
    truncated: bool
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {"json": self.text, "truncated": self.truncated, "size": self.size}


def snapshot(app: App, value: Any, limit: int = SNAPSHOT_LIMIT) -> Snapshot:
    # fields named like secrets (password, token, authorization, ...) are masked as in the
    # steps' snapshots; an entry's editable body alone shows them, to be fixed and replayed
    text = mask(json.dumps(app.secrets.redactor.data(value), indent=2, ensure_ascii=False,
                           default=str))
    if len(text) <= limit:
        return Snapshot(text, False, len(text))
    return Snapshot(text[:limit], True, len(text))


def when(text: str | None, name: str) -> float | None:
    """'2026-11-20', '2026-11-20T10:00' (UTC unless an offset is given) or a span ago: '2h'."""
    if not text:
        return None
    try:
        return time.time() - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadQuery(f"{name}: '{text}' is not a time; write 2026-11-20, 2026-11-20T10:00 "
                       "or a span like 2h (two hours ago)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def ts(value: float | None) -> str:
    if value is None:
        return "-"
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def span(seconds: float | None) -> str:
    """A lag for people: 45s, 12m 5s, 3h 20m, 2d 4h."""
    if seconds is None:
        return "–"
    left = int(max(0.0, seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
    return " ".join(parts[:2])


def _limit(params: dict[str, str]) -> int:
    raw = params.get("limit") or "50"
    # ASCII digits only: "²" is a digit to str.isdigit, and no number to int()
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= LIST_LIMIT:
        raise BadQuery(f"limit: give a number from 1 to {LIST_LIMIT}")
    return int(raw)


def run_filter(params: dict[str, str]) -> RunFilter:
    status = params.get("status") or None
    if status is not None and status not in RUN_STATUSES:
        raise BadQuery(f"status: '{status}' is not a run status; one of {', '.join(RUN_STATUSES)}")
    return RunFilter(flow=params.get("flow") or None, status=status,
                     key=(params.get("key") or "").strip() or None,
                     correlation_id=(params.get("correlation_id") or "").strip() or None,
                     since=when(params.get("since"), "since"),
                     until=when(params.get("until"), "until"), limit=_limit(params),
                     payload=payload_query(params.get("payload")))


def payload_query(text: str | None) -> PayloadQuery | None:
    if not (text or "").strip():
        return None
    try:
        return PayloadQuery.parse(str(text))
    except BadPayloadQuery as exc:
        raise BadQuery(str(exc)) from None


def searched(app: App, query: RunFilter) -> str | None:
    """What a payload search covered, for people: None when it covered every run."""
    if query.payload is None or payload_indexed(app.store):
        return None
    return f"searched the latest {query.window:,} runs matching the other filters"


def dead_letter_filter(params: dict[str, str], limit: int | None = None) -> DeadLetterFilter:
    status = params.get("status") or "open"
    if status not in DLQ_STATUSES:
        raise BadQuery(f"status: '{status}' is not an entry status; one of "
                       f"{', '.join(DLQ_STATUSES)}")
    http_status = (params.get("http_status") or "").strip()
    if http_status and not (http_status.isascii() and http_status.isdigit()
                            and 100 <= int(http_status) <= 599):
        raise BadQuery(f"http_status: '{http_status}' is not an HTTP status; give 100 to 599")
    return DeadLetterFilter(flow=params.get("flow") or None, step=params.get("step") or None,
                            error=params.get("error") or None,
                            since=when(params.get("since"), "since"),
                            until=when(params.get("until"), "until"),
                            status=None if status == "all" else status,
                            limit=limit or _limit(params),
                            kind=(params.get("kind") or "").strip() or None,
                            http_status=int(http_status) if http_status else None)


# -- flows -------------------------------------------------------------------------------------
def flow_health(app: App) -> list[dict[str, Any]]:
    open_entries = app.store.count_dead_letters("open")
    out = []
    now = time.time()
    for flow_id, flow in sorted(app.flows.flows.items()):
        counts = app.store.count_runs(flow_id)
        finished = sum(n for status, n in counts.items() if status in TERMINAL)
        failed = sum(counts.get(status, 0) for status in FAILED)
        last = app.store.list_runs(RunFilter(flow=flow_id, limit=1))
        out.append({
            "flow": flow_id, "version": flow.version, "trigger": flow.trigger_kind,
            "description": getattr(flow.model, "description", None) or "",
            "runs": sum(counts.values()), "finished": finished, "failed": failed,
            "success_rate": round(100 * (finished - failed) / finished, 1) if finished else None,
            "active": sum(counts.get(s, 0) for s in ("queued", "running", "retrying")),
            "last_run": run_summary(last[0]) if last else None,
            "dlq_depth": open_entries.get(flow_id, 0), "lane": lane_of(flow),
            **poll_health(app, flow, now)})
    return out


def poll_health(app: App, flow: CompiledFlow, now: float) -> dict[str, Any]:
    """A polling flow's lag (now − cursor), last good poll and last error; None elsewhere."""
    if flow.trigger_kind != "poll":
        return {"poll_lag": None, "last_poll_at": None, "poll_error": None}
    status = cursors.read_status(app.store, flow.id)
    error = status.get("last_error") if status.get("state") == "failed" else None
    return {"poll_lag": poll_lag(app.store, flow.id, now),
            "last_poll_at": status.get("last_poll_at"),
            "poll_error": app.secrets.redactor.text(str(error.get("message", "")))
            if isinstance(error, dict) else None}


# -- runs --------------------------------------------------------------------------------------
def error_text(error: dict[str, Any] | None) -> str:
    if not error:
        return ""
    attempts = error.get("attempts") or []
    last = attempts[-1].get("error") if attempts else None
    if last and error.get("step"):
        status = f" {error['status']}" if error.get("status") else ""
        return f"{error['step']} ({error.get('kind')}{status}): {last}"
    return str(error.get("message", ""))


def run_summary(state: RunState) -> dict[str, Any]:
    return {"run_id": state.run_id, "flow": state.flow_id, "version": state.flow_version,
            "status": state.status, "key": state.key, "correlation_id": state.correlation_id,
            "trigger": state.trigger, "created_at": state.created_at,
            "updated_at": state.updated_at, "error": error_text(state.error) or None}


def find_run(app: App, run_id: str) -> RunState | None:
    state = app.store.get_run(run_id)
    if state is None and 6 <= len(run_id) < 32:  # an id prefix, as `flowrun runs show` takes
        matches = [s for s in app.store.list_runs(RunFilter(limit=PREFIX_SCAN))
                   if s.run_id.startswith(run_id)]
        state = matches[0] if len(matches) == 1 else None
    return state


def run_detail(app: App, state: RunState) -> dict[str, Any]:
    redact = app.secrets.redactor
    longest = max([s.get("duration_ms", 0) for s in state.steps] or [0]) or 1
    steps = []
    seen = step_io(app, state)
    for i, record in enumerate(state.steps):
        steps.append({"index": i + 1, "id": record["id"], "kind": record.get("kind"),
                      "status": record["status"], "attempts": record.get("attempts", 1),
                      "duration_ms": record.get("duration_ms", 0),
                      "share": round(100 * record.get("duration_ms", 0) / longest, 1),
                      "error": redact.text(record.get("error", "")) or None, **seen[i]})
    error = redact.data(state.error) if state.error else None
    meta = state.envelope.get("meta", {})
    return {**run_summary(state), "steps": steps, "error_detail": error,
            "attempts": redact.data((state.error or {}).get("attempts") or state.attempts),
            "violations": violations((state.error or {}).get("detail")),
            "answer": answer(app, state.error), "due_at": state.due_at, "done": state.done,
            "parent_run_id": state.parent_run_id,
            "children": list(meta.get("children", [])), "replay_of": meta.get("replay_of"),
            "deadline": state.deadline, "late": late_of(app, state),
            "input": snapshot(app, state.original), "output": snapshot(app, {
                k: state.envelope.get(k) for k in ("body", "vars", "headers", "meta")})}


def late_of(app: App, state: RunState) -> dict[str, Any] | None:
    """The run's SLA breach as the Late list shows it, or None when it was not late."""
    from engine.sla import late_view

    breach = app.store.get_breach(state.run_id) if state.deadline is not None else None
    return late_view(breach, state, time.time()) if breach is not None else None


def late_filter(params: Any) -> tuple[str | None, int]:
    """The Late list's flow and limit from query parameters (a bad limit: 100)."""
    flow = params.get("flow") or None
    try:
        limit = max(1, min(int(params.get("limit") or 100), 1000))
    except ValueError:
        limit = 100
    return flow, limit


def step_io(app: App, state: RunState) -> list[dict[str, Any]]:
    """Each step's input and output snapshots ({json, size, truncated, to}; None when not
    recorded), masked again with what the secrets store knows now."""
    recorded = "body" in state.original and any("output" in s for s in state.steps)
    first = take_snapshot(state.original["body"], app.secrets.redactor) if recorded else None
    held = "body" in state.envelope and any((s.get("output") or {}).get("ref")
                                            for s in state.steps)
    body = take_snapshot(state.envelope["body"], app.secrets.redactor) if held else None
    out: list[dict[str, Any]] = []
    for seen in timeline(state.steps, first, body):
        if seen is None:
            out.append({"input": None, "output": None, "unchanged": False})
            continue
        out.append({"input": _masked(app, seen["input"]), "output": _masked(app, seen["output"]),
                     "unchanged": bool(seen.get("unchanged"))})
    return out


def _masked(app: App, snap: dict[str, Any] | None) -> dict[str, Any] | None:
    if snap is None:
        return None
    text = str(snap.get("json", ""))
    if not snap.get("truncated"):  # whole: shown indented (a cut one is shown as kept)
        with contextlib.suppress(ValueError):
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return {"json": app.secrets.redactor.text(text),
            "size": int(snap.get("size", 0)), "truncated": bool(snap.get("truncated")),
            "to": str(snap.get("to", "body"))}


def answer(app: App, error: dict[str, Any] | None) -> dict[str, Any] | None:
    """The partner's answer to a failed call (connectors/http: status, selected headers, the
    body's first 4 KiB), secrets redacted; None when the failure was no answered call."""
    detail = (error or {}).get("detail")
    if not isinstance(detail, dict) or not isinstance(detail.get("status"), int) \
            or not isinstance(detail.get("body"), str):
        return None
    headers = detail.get("headers")
    return app.secrets.redactor.data({
        "status": detail["status"], "reason": detail.get("reason"),
        "headers": {str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict)
        else {},
        "body": detail["body"], "truncated": bool(detail.get("truncated")),
        "size": detail.get("size")})


def violations(detail: Any) -> list[dict[str, str]]:
    """Schema violations of a validation error as {path, message} rows (else none)."""
    found = detail.get("violations") if isinstance(detail, dict) else None
    if not isinstance(found, list):
        return []
    return [{"path": str(v.get("path", "")), "message": str(v.get("message", ""))}
            for v in found if isinstance(v, dict)]


# -- dead letters ------------------------------------------------------------------------------
def entry_summary(entry: DeadLetter) -> dict[str, Any]:
    return {"id": entry.id, "run_id": entry.run_id, "flow": entry.flow_id,
            "version": entry.flow_version, "step": entry.step, "status": entry.status,
            "key": entry.key, "correlation_id": entry.correlation_id,
            "created_at": entry.created_at, "error": error_text(entry.reason)}


def entry_for_run(app: App, state: RunState) -> DeadLetter | None:
    if state.status != "dead_lettered":
        return None
    replayed = state.envelope.get("meta", {}).get("replay_of")
    if replayed:  # a replay that failed again is on the entry it replays (engine/dlq.settle)
        return app.store.get_dead_letter(replayed)
    candidates = app.store.list_dead_letters(DeadLetterFilter(
        flow=state.flow_id, since=state.created_at - 1, status=None, limit=500))
    return next((e for e in candidates if e.run_id == state.run_id), None)


def entry_detail(app: App, entry: DeadLetter) -> dict[str, Any]:
    redact = app.secrets.redactor
    body = entry.envelope.get("body")
    editable = json.dumps(redact.data(body), indent=2, ensure_ascii=False, default=str)
    return {**entry_summary(entry), "message": redact.text(entry.message),
            "kind": entry.reason.get("kind"), "http_status": entry.reason.get("status"),
            "gave_up": entry.reason.get("gave_up"),
            "attempts": redact.data(entry.reason.get("attempts") or []),
            "violations": violations(entry.reason.get("detail")),
            "answer": answer(app, entry.reason), "original": snapshot(app, entry.original),
            "envelope": snapshot(app, entry.envelope),
            "editable_body": editable if len(editable) <= EDIT_LIMIT else None,
            "audit": redact.data(entry.audit)}


def query_string(params: dict[str, Any]) -> str:
    return urlencode({k: v for k, v in params.items() if v})
