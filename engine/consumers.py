"""The consumers of one process: a thread per consume flow, kept in step with the flows.

`flowrun consume` and `flowrun serve --consume` both run a `Consumers`. It starts one consumer
(engine/consume) per flow with a consume trigger, and follows hot reload: a flow whose consume
trigger appears gets a consumer, one whose trigger or bus connection changed gets a new one
(the old one drains and acknowledges first, so two never share a session), one whose trigger
disappears is stopped; a flow whose steps alone changed keeps its connection and hands its next
messages to the new version.

`stop` stops every consumer at once and waits for each to acknowledge what intake answered, so
the process stops its executor only after the last acknowledgement: a message is never
acknowledged without its run recorded. `health` says which consumer cannot reach its broker.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine import consume as bus

if TYPE_CHECKING:
    from engine.compiled import CompiledFlow
    from engine.reload import Reload

log = logging.getLogger("flowrunner.consume")

#: a consumer that failed counts as connected again once a new attempt lasted this long
#: (or took a message): a broker refusing at once must not look healthy between attempts
SETTLE = 5.0


@dataclass
class Consumer:
    """One flow's consumer thread and what it last met."""

    flow: CompiledFlow
    #: the trigger and its connection as configured: a change restarts the consumer
    key: str
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    gate: bus.Gate | None = None
    #: why the broker could not be used, until an attempt proves it can again
    error: str | None = None
    #: monotonic start of the attempt in progress (None while waiting to connect again)
    attempt: float | None = None


class Consumers:
    """Consumers for *app*'s consume flows (just *only*, when given)."""

    def __init__(self, app: Any, only: str | None = None, *, pause: float = 2.0):
        self.app, self.only, self.pause = app, only, pause
        #: replaced, never changed in place: readers (/readyz, on the event loop) take no lock
        self._running: dict[str, Consumer] = {}
        #: one sync or stop at a time (a restart waits for the old consumer's acknowledgements)
        self._lock = threading.Lock()
        self._closed = False
        watcher = getattr(app, "watcher", None)
        if watcher is not None:
            watcher.listeners.append(self.reloaded)

    @property
    def flows(self) -> list[str]:
        """The flows being consumed for."""
        return sorted(self._running)

    def start(self) -> None:
        self.sync()

    def reloaded(self, result: Reload) -> None:
        """Called by the flow watcher after a reload was applied."""
        self.sync()

    def sync(self) -> None:
        """Start, restart or stop consumers so they match today's consume flows."""
        with self._lock:
            if self._closed:
                return
            wanted = {flow.id: flow for flow in bus.consume_flows(self.app, self.only)}
            running = dict(self._running)
            gone: list[Consumer] = []
            for flow_id, consumer in list(running.items()):
                flow = wanted.get(flow_id)
                if flow is not None and self._key(flow) == consumer.key:
                    consumer.flow = flow  # same source: the next messages run the new version
                    if consumer.gate is not None:
                        consumer.gate.flow = flow
                    continue
                consumer.stop.set()
                gone.append(consumer)
                del running[flow_id]
                log.info("flow %s: its consumer stops (%s)", flow_id,
                         "consume trigger changed" if flow is not None else
                         "no consume trigger any more")
            self._running = running
            for consumer in gone:  # drained and acknowledged before a successor connects
                self._join(consumer)
            self._running = {**running, **{flow_id: self._start(flow)
                                           for flow_id, flow in wanted.items()
                                           if flow_id not in running}}

    def stop(self) -> None:
        """Stop reading everywhere, then wait while each consumer acknowledges what intake
        answered (up to `engine.consume.DRAIN` seconds)."""
        with self._lock:
            self._closed = True
            consumers = list(self._running.values())
            self._running = {}
        for consumer in consumers:
            consumer.stop.set()
        for consumer in consumers:
            self._join(consumer)

    def health(self) -> dict[str, str | None]:
        """For each consumed flow: why its consumer cannot reach its broker, or None."""
        now = time.monotonic()
        consumers = list(self._running.values())
        found: dict[str, str | None] = {}
        for consumer in consumers:
            if consumer.error is not None and consumer.attempt is not None and (
                    now - consumer.attempt >= SETTLE
                    or (consumer.gate is not None and consumer.gate.received)):
                consumer.error = None
            found[consumer.flow.id] = consumer.error
        return found

    # -- one consumer --------------------------------------------------------------------------
    def _key(self, flow: CompiledFlow) -> str:
        trigger = flow.trigger
        connection = self.app.loader.connections(flow.file).found.get(trigger.connection)
        config = getattr(connection, trigger.bus, None)
        return repr((trigger.model_dump(mode="json"),
                     config.model_dump(mode="json") if config is not None else None))

    def _start(self, flow: CompiledFlow) -> Consumer:
        consumer = Consumer(flow=flow, key=self._key(flow))
        consumer.thread = threading.Thread(target=self._serve, args=(consumer,), daemon=True,
                                           name=f"flowrun-consume-{flow.id}")
        consumer.thread.start()
        trigger = flow.trigger
        log.info("flow %s: consuming %s through connection %s", flow.id, trigger.bus,
                 trigger.connection)
        return consumer

    @staticmethod
    def _join(consumer: Consumer) -> None:
        if consumer.thread is not None:
            consumer.thread.join(bus.DRAIN + 5)
            if consumer.thread.is_alive():
                log.error("flow %s: its consumer did not stop in time; what it did not "
                          "acknowledge is delivered again", consumer.flow.id)

    def _serve(self, consumer: Consumer) -> None:
        """Consume until stopped; connect again after a pause (doubling up to a minute)."""
        app, stop = self.app, consumer.stop
        flow = consumer.flow
        kind = bus.consumer_kinds()[flow.trigger.bus]
        assert isinstance(kind, bus.ConsumerKind)  # checked when the flow was loaded
        name = flow.trigger.connection
        connections = app.loader.connections(flow.file)
        connection = (name, getattr(connections.found[name], flow.trigger.bus))
        wait = self.pause
        while not stop.is_set():
            consumer.gate = bus.Gate(app, consumer.flow, connection, connections.folder)
            consumer.attempt = time.monotonic()
            try:
                kind.run(consumer.gate, stop)
                wait = self.pause
            except Exception as exc:
                consumer.attempt = None
                consumer.error = app.secrets.redactor.text(str(exc) or type(exc).__name__)
                log.error("flow %s: the %s consumer stopped (%s); connecting again in %.0fs",
                          flow.id, kind.name, consumer.error, wait)
                log.debug("flow %s: the consumer's error", flow.id, exc_info=True)
                stop.wait(wait)
                wait = min(wait * 2, 60.0)
