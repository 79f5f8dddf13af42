"""Tracing: one trace per run, from the webhook to every outbound call — when it is switched on.

Off (the default), every function here returns at once and OpenTelemetry is never imported, so
the message path pays nothing and flowrunner runs without the packages. `configure` switches it
on for a process when ``FLOWRUN_OTEL`` is true: `engine.otel` then builds the SDK from the
standard ``OTEL_*`` variables and makes the spans (docs/tracing.md lists them).

The span calls themselves and the trace context a run carries in ``meta.trace`` are in
`engine.spans`, below the run records that stamp it; this module hands them on, and adds what
stands above: switching tracing on, and the execution core's observer that makes the run and
step spans.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from engine import spans
from engine.spans import (
    META_KEY,
    NO_SPAN,
    Span,
    TracingUnavailable,
    client,
    enabled,
    flush,
    inject,
    intake,
    server,
    stamp,
)

if TYPE_CHECKING:
    from engine.observe import Observer
    from engine.settings import Settings

__all__ = ["INSTALL", "META_KEY", "NO_SPAN", "Span", "Tracer", "TracingUnavailable", "client",
           "configure", "enabled", "flush", "inject", "install", "intake", "observer", "server",
           "stamp"]

INSTALL = "pip install 'flowrunner-ipaas[otel]'"


class Tracer(spans.Tracer, Protocol):
    """What flowrunner asks of a tracing implementation (`engine.otel.OtelTracer`): the spans,
    and the observer of the execution core that makes the run and step spans."""

    def observer(self) -> Observer: ...


_tracer: Tracer | None = None


def install(tracer: Tracer | None) -> Tracer | None:
    """Make *tracer* this process's (None: off); returns the one it replaces. Tests install
    one on an in-memory exporter; processes call `configure`."""
    global _tracer
    previous, _tracer = _tracer, tracer
    spans.use(tracer)
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


def observer() -> Observer | None:
    """The observer that gives each delivery of a run and each attempt of a step its span
    (engine/processing's seam); None while tracing is off."""
    return None if _tracer is None else _tracer.observer()
