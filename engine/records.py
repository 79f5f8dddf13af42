"""What flowrunner records: runs and dead-letter entries, and how they are encoded for a store.

Below the runner, the stores and the executors, which all import it; it imports nothing of
theirs. A run record keeps the message once: right after intake (and until a step changes
them) the envelope's body and headers are the original's, and the encoded record says so
instead of holding them twice. Records are encoded with orjson; a record orjson cannot encode
exactly (an integer past 64 bits, a lone surrogate in a string) falls back to the standard
library and is marked by a leading space, so it is decoded by the standard library too and
comes back the same — orjson would read such integers back as floats.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from engine import spans
from engine.envelope import Envelope

if TYPE_CHECKING:
    from engine.envelope import Envelope as _Envelope


class FlowLike(Protocol):
    """What a new run needs of its flow (a `CompiledFlow`): records sit below the loader."""

    id: str
    version: str

    @property
    def key(self) -> _Key | None: ...


class _Key(Protocol):
    def evaluate(self, envelope: _Envelope) -> Any: ...

TERMINAL = frozenset({"succeeded", "filtered", "dropped", "dead_lettered", "failed", "dry_run",
                      "handed_off", "split"})
ACTIVE = ("queued", "running", "retrying")
#: the outcomes that meet an SLA deadline (engine/sla); a hand-off after a failure does not
SLA_MET = frozenset({"succeeded", "filtered", "split", "handed_off"})
#: the envelope parts a record may keep once, in the original message
_SHAREABLE = ("body", "headers")


def new_id() -> str:
    return uuid.uuid4().hex


class RecordError(ValueError):
    """A record that cannot be encoded at all (e.g. an integer past the interpreter's limit)."""


@dataclass
class Spawn:
    """A message this run hands to another run: a split item or a hand-off to another flow."""

    flow: str
    envelope: dict[str, Any]
    position: int = 0


@dataclass
class RunState:
    """Everything needed to resume a run anywhere: JSON-serialisable, checkpointed by stores."""

    run_id: str
    flow_id: str
    flow_version: str
    envelope: dict[str, Any]
    original: dict[str, Any]
    status: str = "queued"
    position: int = 0
    attempt: int = 1
    step_started_at: float | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    due_at: float | None = None
    executed: int = 0
    key: str | None = None
    correlation_id: str = ""
    trigger: str = "manual"
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    spawn: list[Spawn] = field(default_factory=list)
    parent_run_id: str | None = None
    #: a rate-limit token taken for a step while the run waits for it: {step, limit, at}
    reserved: dict[str, Any] | None = None
    #: when retention dropped the run's message and kept its summary (`compact`), or None
    compacted_at: float | None = None
    #: when the flow's ``sla:`` wants the run to have succeeded (Unix seconds), or None
    deadline: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A new top-level dict sharing the nested values: every caller serialises it at once
        (or deep-copies it), and `asdict`'s deep copy of the whole envelope was most of the
        cost of recording a run."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["spawn"] = [asdict(s) for s in self.spawn]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        data = dict(data)
        data["spawn"] = [Spawn(**s) for s in data.get("spawn", [])]
        return cls(**data)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


@dataclass
class DeadLetter:
    """A message that failed for good, kept with everything needed to fix and replay it."""

    id: str
    run_id: str
    flow_id: str
    flow_version: str
    step: str | None
    reason: dict[str, Any]
    original: dict[str, Any]
    envelope: dict[str, Any]
    created_at: float
    correlation_id: str = ""
    key: str | None = None
    status: str = "open"
    audit: list[dict[str, Any]] = field(default_factory=list)

    @property
    def message(self) -> str:
        return str(self.reason.get("message", ""))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def for_run(cls, state: RunState) -> DeadLetter:
        """The entry of a run that ended dead-lettered, with copies of its messages."""
        error = state.error or {}
        return cls(id=new_id()[:16], run_id=state.run_id, flow_id=state.flow_id,
                   flow_version=state.flow_version, step=error.get("step"), reason=error,
                   original=copy.deepcopy(state.original),
                   envelope=copy.deepcopy(state.envelope),
                   created_at=time.time(), correlation_id=state.correlation_id, key=state.key)


@dataclass
class Breach:
    """A run that was not successful by its deadline (engine/sla): claimed once, by whichever
    process saw it first, and kept beside the run."""

    run_id: str
    flow_id: str
    deadline: float
    detected_at: float
    #: seconds past the deadline when it was detected, and the run's status then
    late_by: float
    status: str
    key: str | None = None
    correlation_id: str = ""
    #: the run of the alert flow that was told of it, if the flow has one
    alert_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def encode_breach(breach: Breach) -> bytes:
    return dumps(breach.to_dict())


def decode_breach(data: bytes | str) -> Breach:
    return Breach(**loads(data))


def settles_sla(state: RunState) -> bool:
    """Whether saving *state* takes it out of the SLA due-set: it has a deadline and ended in
    an outcome that meets it (engine/sla.MET) by then."""
    return (state.deadline is not None and state.status in SLA_MET
            and not (state.status == "handed_off" and state.error)
            and state.updated_at <= state.deadline)


def compact(state: RunState, now: float) -> RunState:
    """The summary of a finished run that retention keeps once its message goes: status, keys,
    timings, steps and their outcomes, the error; no body, headers, variables, request or the
    steps' output snapshots."""
    meta = {k: v for k, v in state.envelope.get("meta", {}).items() if k != "request"}
    # the steps' output snapshots are parts of the message too (engine/step_snapshots)
    steps = [{k: v for k, v in s.items() if k != "output"} for s in state.steps]
    return RunState(**{**state.__dict__, "envelope": {"meta": meta}, "original": {},
                       "steps": steps,
                       "spawn": [], "reserved": None, "compacted_at": now})


def start(flow: FlowLike, body: Any, headers: dict[str, Any] | None = None, *,
          trigger: str = "manual", correlation_id: str | None = None, run_id: str | None = None,
          position: int = 0, vars: dict[str, Any] | None = None,
          parent_run_id: str | None = None, now: float | None = None,
          request: dict[str, Any] | None = None) -> RunState:
    """A new run of *flow* for one message, not yet executed; *now* is the receipt time (the
    runner's clock, so a test's virtual clock fixes ``meta.received_at``). *request* is what a
    webhook's URL carried (path, path params, query), kept as ``meta.request`` and with the
    original message so a replay from the start sees it too."""
    from engine.expressions import ExpressionError  # expressions pull in the engines

    run_id = run_id or new_id()
    correlation_id = correlation_id or run_id
    headers = dict(headers or {})
    meta = {"run_id": run_id, "flow": flow.id, "flow_version": flow.version,
            "correlation_id": correlation_id, "trigger": trigger,
            "received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "attempt": 1}
    if parent_run_id:
        meta["parent_run_id"] = parent_run_id
    spans.stamp(meta)  # the trace this run continues (the current span's), when tracing is on
    original: dict[str, Any] = {"body": body, "headers": headers}
    if request:
        meta["request"] = original["request"] = request
    envelope = Envelope(body=body, headers=headers, vars=dict(vars or {}), meta=meta)
    state = RunState(run_id=run_id, flow_id=flow.id, flow_version=flow.version,
                     envelope=envelope.to_dict(), original=original,
                     position=position, correlation_id=correlation_id, trigger=trigger,
                     parent_run_id=parent_run_id)
    if flow.key is not None:
        try:
            key = flow.key.evaluate(envelope)
            state.key = None if key is None else str(key)
        except ExpressionError as exc:
            import logging

            logging.getLogger("flowrunner.runner").warning(
                "business key of run %s not computed: %s", run_id, exc)
    sla = getattr(flow, "sla", None)
    # items of a split and hand-offs are part of the run that received the message, a replay
    # answers for the run it replays, and an alert of a breach must never breach in turn
    # (engine/sla): none of them starts a clock of its own
    if sla is not None and trigger not in ("split", "handoff", "replay", "sla"):
        state.deadline = state.created_at + sla.within_for(state.key, envelope)
    return state


# -- encoding ----------------------------------------------------------------------------------
def dumps(value: Any) -> bytes:
    """*value* as JSON bytes: orjson, or the standard library (marked) where orjson would not be
    exact. Raises `RecordError` when neither can encode it."""
    try:
        return orjson.dumps(value)
    except TypeError:
        pass
    try:
        return b" " + json.dumps(value, separators=(",", ":")).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError, RecursionError) as exc:
        raise RecordError(str(exc)) from None


def loads(data: bytes | str) -> Any:
    """The value of `dumps` output (or of plain JSON written by an earlier version)."""
    first = data[:1]
    if first in (b" ", " "):
        text = data.decode("utf-8", "surrogatepass") if isinstance(data, bytes) else data
        return json.loads(text)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # plain JSON orjson refuses (a NaN written long ago)
        return json.loads(data)


def encode_run(state: RunState) -> bytes:
    """The stored record of *state*, its body and headers kept once while they are the
    original's."""
    record = state.to_dict()
    envelope, original = state.envelope, state.original
    # the body by identity (a step that changes it assigns a new value); the headers, small
    # and copied by every `Envelope.from_dict`, by equality
    shared = [part for part in _SHAREABLE if part in envelope and (
        envelope[part] is original.get(part)
        or (part == "headers" and envelope[part] == original.get(part)))]
    if shared:
        record["envelope"] = {k: v for k, v in envelope.items() if k not in shared}
        record["shared"] = shared
    return dumps(record)


def decode_run(data: bytes | str) -> RunState:
    record = loads(data)
    shared = record.pop("shared", None)
    if shared:
        for part in shared:  # the same objects again, so the next save shares them too
            record["envelope"][part] = record["original"].get(part)
    return RunState.from_dict(record)


def encode_dead_letter(entry: DeadLetter) -> bytes:
    return dumps(entry.to_dict())


def decode_dead_letter(data: bytes | str) -> DeadLetter:
    return DeadLetter(**loads(data))
