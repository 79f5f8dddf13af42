"""The spans of the message path and the trace context a run carries (see `engine.tracing`).

Off (the default), every function here returns at once, so the message path pays nothing.
`engine.tracing` switches tracing on for a process and hands this module the tracer in use
(`use`); records, transports and intake call the spans here, and nothing here names the
execution core, the settings or OpenTelemetry.

The trace context travels with the run, in ``meta.trace`` (the W3C ``traceparent`` and
``tracestate``), so whichever thread or process advances the run — the embedded executor, a
Celery worker, a retry hours later, a replay — continues the trace its intake started.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, MutableMapping
from typing import Any, Protocol

#: where a run keeps its trace context: ``{"traceparent": ..., "tracestate": ...}``
META_KEY = "trace"


class TracingUnavailable(RuntimeError):
    """``FLOWRUN_OTEL`` is on but OpenTelemetry is not installed (or cannot start)."""


class Span(Protocol):
    def set(self, key: str, value: Any) -> None: ...

    def failed(self, kind: str, description: str | None = None) -> None:
        """The work the span covers failed with error kind *kind* (and a redacted reason)."""


class Tracer(Protocol):
    """What flowrunner asks of a tracing implementation (`engine.otel.OtelTracer`)."""

    def server(self, headers: Mapping[str, str], method: str, route: str,
               attributes: dict[str, Any]) -> contextlib.AbstractContextManager[Span]: ...

    def intake(self, flow: str, trigger: str,
               carrier: Mapping[str, Any] | None) -> contextlib.AbstractContextManager[Span]: ...

    def client(self, method: str, url: str, headers: MutableMapping[str, str]
               ) -> contextlib.AbstractContextManager[Span]: ...

    def carrier(self) -> dict[str, str]: ...

    def flush(self) -> None: ...


class _NoSpan:
    def set(self, key: str, value: Any) -> None:
        pass

    def failed(self, kind: str, description: str | None = None) -> None:
        pass


NO_SPAN = _NoSpan()
#: what every span function gives while tracing is off: one reusable, do-nothing context
_NOTHING: contextlib.AbstractContextManager[Span] = contextlib.nullcontext(NO_SPAN)
_tracer: Tracer | None = None


def enabled() -> bool:
    return _tracer is not None


def use(tracer: Tracer | None) -> None:
    """Make *tracer* the one the spans go to (None: off); `engine.tracing.install` calls it."""
    global _tracer
    _tracer = tracer


# -- the spans flowrunner makes (each a no-op while tracing is off) ----------------------------
def server(headers: Mapping[str, str], method: str, route: str,
           attributes: dict[str, Any]) -> contextlib.AbstractContextManager[Span]:
    """The webhook request, continuing the sender's ``traceparent`` when it sent one."""
    if _tracer is None:
        return _NOTHING
    return _tracer.server(headers, method, route, attributes)


def intake(flow: str, trigger: str, carrier: Mapping[str, Any] | None = None
           ) -> contextlib.AbstractContextManager[Span]:
    """A message taken in for *flow*; the run it starts continues this span's trace. A bus
    message's headers (*carrier*) with a ``traceparent`` continue the publisher's trace."""
    if _tracer is None:
        return _NOTHING
    return _tracer.intake(flow, trigger, carrier)


def client(method: str, url: str, headers: MutableMapping[str, str]
           ) -> contextlib.AbstractContextManager[Span]:
    """An outbound HTTP request; *headers* get the ``traceparent`` the partner sees."""
    if _tracer is None:
        return _NOTHING
    return _tracer.client(method, url, headers)


def inject(headers: MutableMapping[str, Any]) -> None:
    """Add the current trace context (``traceparent`` …) to a message's *headers*, keeping any
    the flow set itself, so whoever consumes it — a flowrunner ``consume:`` trigger or another
    system — continues the publisher's trace."""
    if _tracer is None:
        return
    for name, value in _tracer.carrier().items():
        headers.setdefault(name, value)


def stamp(meta: MutableMapping[str, Any]) -> None:
    """Keep the current trace context in a new run's *meta*, for whoever advances it."""
    if _tracer is None:
        return
    carrier = _tracer.carrier()
    if carrier:
        meta[META_KEY] = carrier


def flush() -> None:
    """Export the spans still buffered (a worker process about to end)."""
    if _tracer is not None:
        _tracer.flush()
