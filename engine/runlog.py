"""The story of each run in the log: one INFO line per event an operator asks about.

`RunLog` is an observer of the execution core (engine/processing), beside `Metrics`: a run
accepted at intake, a retry scheduled, a run dead-lettered, a run finished, a dead-letter entry
replayed or discarded. Every line carries the run's flow, run id, step, business key and
correlation id as structured fields (``extra``; the JSON format writes them out, the text format
shows them in brackets) and an ``event`` name to filter on. A line holds the recorded reason
(secrets masked, shortened) and never a message body or headers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from engine.observe import Observer
from engine.retry import reason_kind

if TYPE_CHECKING:
    from engine.compiled import CompiledFlow
    from engine.observe import Retry
    from engine.records import DeadLetter, RunState

log = logging.getLogger("flowrunner.runs")

#: longest reason text in a line; the whole reason is on the run record and the entry
REASON_CHARS = 300


def _short(text: str) -> str:
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 1] + "…"


def _ids(state: RunState, step: str | None = None) -> dict[str, Any]:
    """The correlation fields of a line about *state* (a record's own attributes)."""
    return {"flow": state.flow_id, "run_id": state.run_id, "step": step, "key": state.key,
            "correlation_id": state.correlation_id or None}


def _seconds(delay: float) -> str:
    return f"{delay * 1000:.0f} ms" if delay < 1 else f"{delay:.3g} s"


def _duration_ms(state: RunState) -> float:
    return round(max(0.0, state.updated_at - state.created_at) * 1000, 1)


class RunLog(Observer):
    """Writes the run events to the ``flowrunner.runs`` logger, at INFO."""

    def __init__(self, logger: logging.Logger = log):
        self.log = logger

    def _on(self) -> bool:
        # asked first by every event: at WARNING a line's text and fields are never built
        return self.log.isEnabledFor(logging.INFO)

    def _line(self, event: str, message: str, ids: dict[str, Any], **fields: Any) -> None:
        self.log.info(message, extra={**ids, "fields": {"event": event, **fields}})

    def accepted(self, state: RunState) -> None:
        if not self._on():
            return
        self._line("run.accepted", f"run accepted from {state.trigger}", _ids(state),
                   trigger=state.trigger, parent_run_id=state.parent_run_id)

    def retry_scheduled(self, flow: CompiledFlow, state: RunState, retry: Retry) -> None:
        if not self._on():
            return
        what = f"{retry.kind} {retry.status}" if retry.status is not None else retry.kind
        self._line("run.retry_scheduled",
                   f"step {retry.step} failed ({what}) on attempt {retry.attempt}; retry in "
                   f"{_seconds(retry.delay)}: {_short(retry.message)}",
                   _ids(state, retry.step), attempt=retry.attempt,
                   delay_ms=round(retry.delay * 1000, 1), reason_kind=retry.kind,
                   http_status=retry.status, reason=_short(retry.message))

    def dead_lettered(self, state: RunState) -> None:
        if not self._on():
            return
        error = state.error or {}
        step, message = error.get("step"), _short(str(error.get("message") or ""))
        kind = reason_kind(error.get("kind"), error.get("status"))
        replay_of = state.envelope.get("meta", {}).get("replay_of")
        where = f" at step {step}" if step else ""
        again = f" again (replay of entry {replay_of})" if replay_of else ""
        self._line("run.dead_lettered", f"run dead-lettered{again}{where} ({kind}): {message}",
                   _ids(state, step), reason_kind=kind, http_status=error.get("status"),
                   reason=message, replay_of=replay_of)

    def finished(self, state: RunState) -> None:
        if not self._on():
            return
        duration = _duration_ms(state)
        self._line("run.finished", f"run finished: {state.status} in {duration:g} ms",
                   _ids(state), status=state.status, duration_ms=duration,
                   trigger=state.trigger)

    def replayed(self, entry: DeadLetter, state: RunState, who: str | None) -> None:
        if not self._on():
            return
        self._line("dlq.replayed", f"dead-letter entry {entry.id} replayed as run "
                   f"{state.run_id} by {who or 'unknown'}", _ids(state, entry.step),
                   entry_id=entry.id, who=who, failed_run_id=entry.run_id)

    def discarded(self, entry: DeadLetter, who: str | None) -> None:
        if not self._on():
            return
        ids = {"flow": entry.flow_id, "run_id": entry.run_id, "step": entry.step,
               "key": entry.key, "correlation_id": entry.correlation_id or None}
        self._line("dlq.discarded", f"dead-letter entry {entry.id} discarded by "
                   f"{who or 'unknown'}", ids, entry_id=entry.id, who=who)
