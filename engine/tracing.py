"""Tracing: one trace per run, from the webhook to every outbound call — when it is switched on.

Off (the default), every function here returns at once and OpenTelemetry is never imported, so
the message path pays nothing and flowrunner runs without the packages. `configure` switches it
on for a process when ``FLOWRUN_OTEL`` is true: `engine.otel` then builds the SDK from the
standard ``OTEL_*`` variables and makes the spans (docs/tracing.md lists them).

The trace context travels with the run, in ``meta.trace`` (the W3C ``traceparent`` and
``tracestate``), so whichever thread or process advances the run — the embedded executor, a
Celery worker, a retry hours later, a replay — continues the trace its intake started.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from engine.observe import Observer
    from engine.settings import Settings

#: where a run keeps its trace context: ``{"traceparent": ..., "tracestate": ...}``
META_KEY = "trace"
INSTALL = "pip install 'flowrunner-ipaas[otel]'"


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

    def observer(self) -> Observer:
        """The observer of the execution core that makes the run and step spans."""

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


def install(tracer: Tracer | None) -> Tracer | None:
    """Make *tracer* this process's (None: off); returns the one it replaces. Tests install
    one on an in-memory exporter; processes call `configure`."""
    global _tracer
    previous, _tracer = _tracer, tracer
    return previous


def configure(settings: Settings) -> None:
    """Switch tracing on for this process when ``FLOWRUN_OTEL`` is true (once; idempotent).
    Raises `TracingUnavailable`, naming what to install, when the packages are missing."""
    if not settings.otel or _tracer is not None:
        return
    try:
        from engine import otel
    except ImportError as exc:
        raise TracingUnavailable(f"FLOWRUN_OTEL is on but OpenTelemetry is not installed "
                                 f"({exc.name} is missing): {INSTALL}") from None
    install(otel.from_environment())


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


def observer() -> Observer | None:
    """The observer that gives each delivery of a run and each attempt of a step its span
    (engine/processing's seam); None while tracing is off."""
    return None if _tracer is None else _tracer.observer()


def flush() -> None:
    """Export the spans still buffered (a worker process about to end)."""
    if _tracer is not None:
        _tracer.flush()
