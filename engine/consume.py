"""Consumers of message buses: one run per message, acknowledged once the run is recorded.

A flow with ``trigger: {consume: {<bus>: ..., connection: NAME}}`` is served by `flowrun
consume`, or by `flowrun serve --consume` (engine/consumers runs one consumer per flow). Each
bus (``amqp``, ``mqtt``...) registers a `ConsumerKind` under the entry-point group
``flowrunner.consumers``; its ``run(gate, stop)`` owns the broker connection and hands every
message to the flow's `Gate`. The gate decodes the body and gives the run to intake (the same
group-committed intake as webhooks and polls); when intake answered, the consumer
acknowledges the message on its own connection thread (`Gate.settled`). So:

- a message is acknowledged only after its run is durably recorded; a consumer killed before
  that leaves it unacknowledged, the broker redelivers it, and intake deduplicates on the
  broker's message id (or the trigger's ``idempotency_key``);
- a message that cannot be taken in — an undecodable body, a body no record can hold, one
  delivered more than ``max_deliveries`` times — is dead-lettered with its original bytes and
  the broker's metadata, then acknowledged: it never circles the queue forever;
- at most ``in_flight`` messages are between the broker and intake (the broker's prefetch and
  the gate's window), so a consumer never reads a backlog into memory.
"""

from __future__ import annotations

import base64
import functools
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from engine import tracing
from engine.dsl.base import ExprSpec
from engine.records import RecordError
from engine.types import BuildContext

if TYPE_CHECKING:  # the plugin surface imports this module: no loader or intake at import
    from engine.compiled import CompiledFlow
    from engine.intake import Accepted

log = logging.getLogger("flowrunner.consume")

GROUP = "flowrunner.consumers"
#: intake deduplicates on the broker's message id unless the trigger names its own key
IDEMPOTENCY = ExprSpec("jsonata", "$meta.request.message_id")
#: longest wait, on stop, for messages already handed to intake to be answered and acked
DRAIN = 10.0


@dataclass
class BusMessage:
    """One message as a bus delivered it."""

    body: bytes
    #: the producer's headers (application headers, MQTT 5 user properties)
    headers: dict[str, Any]
    #: the broker's metadata: bus, queue/topic/stream/subject, message_id, deliveries ...
    where: dict[str, Any]
    #: how many times the broker delivered it, this time included (1 when it cannot tell)
    deliveries: int = 1
    #: what the consumer needs to acknowledge it (a delivery tag, a message object)
    token: Any = field(default=None, repr=False)
    #: why the message holds no body to decode (a stream entry without its field)
    problem: str | None = None


@dataclass(frozen=True)
class ConsumerKind:
    """A registered bus consumer: ``run(gate, stop)`` consumes ``gate.flow``'s source until
    *stop* is set, then acknowledges what intake answered and returns. It raises only when
    the broker cannot be used; the runner reconnects after a pause."""

    name: str
    run: Callable[[Gate, threading.Event], None]
    description: str


@functools.cache
def consumer_kinds() -> dict[str, ConsumerKind | str]:
    """The registered consumers, or why one cannot be loaded (a missing optional extra)."""
    found: dict[str, ConsumerKind | str] = {}
    for ep in entry_points(group=GROUP):
        try:
            found[ep.name] = ep.load()
        except ImportError as exc:
            missing = getattr(exc, "name", None) or str(exc)
            found[ep.name] = f"needs {missing} — install flowrunner[{ep.name}]"
    return found


def check_trigger(trigger: Any, ctx: BuildContext) -> None:
    """At load: the trigger's connection exists and is of its bus, and the bus's consumer is
    installed."""
    path = ("trigger", "consume")
    kind = consumer_kinds().get(trigger.bus)
    if kind is None:
        ctx.problem((*path, trigger.bus), f"no consumer for '{trigger.bus}' is registered")
    elif isinstance(kind, str):
        ctx.problem((*path, trigger.bus), f"the {trigger.bus} consumer is disabled: {kind}")
    connections = ctx.service("connections")
    if connections is None:
        ctx.problem((*path, "connection"), f"no connection '{trigger.connection}': named "
                    "connections are not loaded here")
    else:
        connections.lookup(trigger.connection, trigger.bus, ctx, (*path, "connection"))


class Gate:
    """Between one flow's consumer and intake: decoding, dead letters and the in-flight
    window. ``take`` is called on the consumer's thread; ``settled`` yields, on that same
    thread, the messages to acknowledge (True) or to give back to the broker (False)."""

    def __init__(self, app: Any, flow: CompiledFlow, connection: Any,
                 folder: Path | None = None):
        self.app, self.flow = app, flow
        self.trigger = flow.trigger
        self.source = getattr(self.trigger, self.trigger.bus)
        #: (name, config) of the bus connection
        self.connection = connection
        #: the connections folder, which a relative certificate file name is read from
        self.folder = folder
        self.secrets = app.secrets
        self._answers: queue.Queue[tuple[BusMessage, bool]] = queue.Queue()
        self._open = 0
        self._lock = threading.Lock()
        self.taken = self.dead_lettered = 0
        #: messages the broker delivered: proof the consumer reached it
        self.received = 0

    @property
    def in_flight(self) -> int:
        """Messages handed to intake and not yet settled."""
        return self._open

    def take(self, message: BusMessage) -> None:
        """Hand *message* on: to intake, or straight to the dead-letter queue."""
        self.received += 1
        trigger = self.trigger
        if message.deliveries > trigger.max_deliveries:
            self._dead_letter(message, "redelivered", f"delivered {message.deliveries} times "
                              f"without being taken in (max_deliveries: "
                              f"{trigger.max_deliveries})")
            return
        try:
            if message.problem:
                raise ValueError(message.problem)
            body = decode(message.body, trigger.format)
        except ValueError as exc:
            self._dead_letter(message, "undecodable", f"the body is not {trigger.format}: {exc}")
            return
        request = {**message.where, "deliveries": message.deliveries}
        with self._lock:
            self._open += 1
        # a message whose headers carry a traceparent continues its publisher's trace
        with tracing.intake(self.flow.id, "consume", message.headers or {}):
            try:
                delivery = self.app.intake.prepare(
                    self.flow, body, message.headers, trigger="consume", correlation_id=None,
                    request=request, answer=lambda result: self._answered(message, result))
            except (RecursionError, RecordError) as exc:
                with self._lock:
                    self._open -= 1
                self._dead_letter(message, "unrecordable",
                                  f"the message cannot be recorded: {exc}")
                return
            self.app.intake.put(delivery)

    def _answered(self, message: BusMessage, result: Accepted | BaseException) -> None:
        # intake's writer thread: only queue the answer; the consumer's thread acknowledges
        if isinstance(result, RecordError | RecursionError):
            try:
                self._dead_letter(message, "unrecordable",
                                  f"the message cannot be recorded: {result}", settle=False)
                ok = True
            except Exception:
                log.exception("flow %s: dead-lettering an unrecordable message failed",
                              self.flow.id)
                ok = False
        elif isinstance(result, BaseException):
            log.warning("flow %s: a message was not taken in (%s); the broker delivers it "
                        "again", self.flow.id, result)
            ok = False
        else:
            ok = True
            self.taken += 1
        self._answers.put((message, ok))

    def _dead_letter(self, message: BusMessage, kind: str, why: str, *,
                     settle: bool = True) -> None:
        """Keep *message* (its exact bytes, headers and the broker's metadata) as a dead-letter
        entry; then it is acknowledged like a taken message."""
        body = {"base64": base64.b64encode(message.body).decode("ascii"),
                "text": message.body[:4096].decode("utf-8", "replace")}
        request = {**message.where, "deliveries": message.deliveries}
        self.app.dead_letter_message(self.flow, body, message.headers, trigger="consume",
                                     request=request, kind=kind, message=why)
        self.dead_lettered += 1
        log.error("flow %s: a message from %s was dead-lettered: %s", self.flow.id,
                  message.where, why)
        if settle:
            with self._lock:
                self._open += 1
            self._answers.put((message, True))

    def settled(self, wait: float = 0.0) -> Iterator[tuple[BusMessage, bool]]:
        """The messages answered since the last call: acknowledge those with True, give the
        others back to the broker. Waits up to *wait* seconds for the first one."""
        try:
            first = self._answers.get(timeout=wait) if wait > 0 else self._answers.get_nowait()
        except queue.Empty:
            return
        answers = [first]
        while True:
            try:
                answers.append(self._answers.get_nowait())
            except queue.Empty:
                break
        with self._lock:
            self._open -= len(answers)
        yield from answers


def decode(raw: bytes, form: str) -> Any:
    """The body of a run from a message's bytes; ValueError when they are not *form*."""
    if form == "bytes":
        return {"base64": base64.b64encode(raw).decode("ascii")}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 at byte {exc.start}") from None
    if form == "text":
        return text
    try:
        return orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError as exc:
        raise ValueError(str(exc)) from None


def header_value(value: Any) -> Any:
    """A broker header as a run records it: bytes as text, anything else not JSON as text."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [header_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): header_value(v) for k, v in value.items()}
    return str(value)


def consume_flows(app: Any, only: str | None = None) -> list[CompiledFlow]:
    """The flows of *app* with a consume trigger (just *only*, when given)."""
    return [flow for flow in app.flows.flows.values()
            if flow.trigger_kind == "consume" and (only is None or flow.id == only)]
