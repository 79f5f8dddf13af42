"""OpenTelemetry behind `engine.tracing`: the SDK set up from ``OTEL_*``, and flowrunner's spans.

Imported only when ``FLOWRUN_OTEL`` is on (flowrunner-ipaas[otel]). The SDK reads its own
variables — ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_EXPORTER``,
``OTEL_EXPORTER_OTLP_*``, ``OTEL_TRACES_SAMPLER(_ARG)``, ``OTEL_BSP_*``, ``OTEL_PROPAGATORS`` —
through its own configurator; flowrunner only sets the defaults the official distro sets
(OTLP over HTTP) and names the service ``flowrunner``. A process already traced by someone else
(``opentelemetry-instrument flowrun serve``) keeps the provider it was given.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import ProxyTracerProvider, SpanKind, Status, StatusCode

from engine import __version__
from engine.observe import Observer
from engine.refs import redact_known
from engine.spans import META_KEY, TracingUnavailable

if TYPE_CHECKING:
    from engine.compiled import CompiledFlow, CompiledStep
    from engine.records import DeadLetter, RunState

#: what the process gets unless the environment says otherwise (the official distro's choices;
#: the extra installs the HTTP exporter, not the gRPC one the bare SDK would pick for "otlp")
DEFAULTS = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
SERVICE = "flowrunner"


class OtelSpan:
    """A span as flowrunner's code sees it: attributes and failure, nothing else."""

    def __init__(self, span: trace.Span):
        self.span = span

    def set(self, key: str, value: Any) -> None:
        if value is not None:
            self.span.set_attribute(key, value)

    def failed(self, kind: str, description: str | None = None) -> None:
        self.span.set_attribute("error.type", kind)
        # the recorded error is masked already; a secret handed out since is masked here
        self.span.set_status(Status(StatusCode.ERROR, redact_known(description)
                                    if description else description))


class OtelTracer:
    """The spans of engine/tracing, made with an OpenTelemetry tracer."""

    def __init__(self, provider: trace.TracerProvider | None = None):
        self.provider = provider or trace.get_tracer_provider()
        self.tracer = self.provider.get_tracer("flowrunner", __version__)

    @contextlib.contextmanager
    def span(self, name: str, kind: SpanKind, attributes: dict[str, Any],
              parent: Context | None = None) -> Iterator[OtelSpan]:
        # exceptions are not recorded: their text may hold a URL's query or a partner's answer;
        # what failed is said by error.type and the status, set by the caller
        kept = {k: v for k, v in attributes.items() if v is not None}
        with self.tracer.start_as_current_span(
                name, context=parent, kind=kind, attributes=kept, record_exception=False,
                set_status_on_exception=False) as span:
            yield OtelSpan(span)

    def server(self, headers: Mapping[str, str], method: str, route: str,
               attributes: dict[str, Any]) -> contextlib.AbstractContextManager[OtelSpan]:
        return self.span(f"{method} {route}", SpanKind.SERVER,
                         {"http.request.method": method, "http.route": route, **attributes},
                         propagate.extract(headers))

    def intake(self, flow: str, trigger: str, carrier: Mapping[str, Any] | None
               ) -> contextlib.AbstractContextManager[OtelSpan]:
        attributes = {"flowrun.flow": flow, "flowrun.trigger": trigger}
        if carrier is None:  # the current span (the webhook request's) or a new trace
            return self.span(f"intake {flow}", SpanKind.INTERNAL, attributes)
        # a bus message: its publisher's trace when its headers carry one, else a new trace
        return self.span(f"intake {flow}", SpanKind.CONSUMER, attributes,
                         propagate.extract(_text_headers(carrier)))

    @contextlib.contextmanager
    def client(self, method: str, url: str, headers: MutableMapping[str, str]
               ) -> Iterator[OtelSpan]:
        parts = urlsplit(url)
        # no query and no user info: either may carry a credential
        where = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"
        attributes = {"http.request.method": method, "url.full": redact_known(where),
                      "server.address": parts.hostname, "server.port": parts.port or (
                          443 if parts.scheme == "https" else 80)}
        with self.span(method, SpanKind.CLIENT, attributes) as span:
            propagate.inject(headers)
            yield span

    def carrier(self) -> dict[str, str]:
        out: dict[str, str] = {}
        propagate.inject(out)
        return out

    def observer(self) -> SpanObserver:
        return SpanObserver(self)

    def parent(self, meta: Mapping[str, Any]) -> Context:
        """The context a run's ``meta.trace`` holds (an empty one: a new trace)."""
        return propagate.extract(_text_headers(meta.get(META_KEY) or {}))

    def flush(self) -> None:
        force_flush = getattr(self.provider, "force_flush", None)
        if force_flush is not None:
            force_flush()


class SpanObserver(Observer):
    """The run and step spans, on the execution core's seam (engine/processing)."""

    def __init__(self, tracer: OtelTracer):
        self.tracer = tracer

    @contextlib.contextmanager
    def delivering(self, flow: CompiledFlow, state: RunState) -> Iterator[OtelSpan]:
        # a child of the context the run was started in (its intake's, its parent run's): the
        # same trace in whichever process and however long after
        meta = state.envelope.get("meta", {})
        with self.tracer.span(f"run {flow.id}", SpanKind.CONSUMER, _run(state),
                              self.tracer.parent(meta)) as span:
            try:
                yield span
            finally:
                span.set("flowrun.status", state.status)
                if state.status in ("dead_lettered", "failed"):
                    error = state.error or {}
                    span.failed(str(error.get("kind") or state.status),
                                str(error.get("message") or "") or None)

    @contextlib.contextmanager
    def attempting(self, flow: CompiledFlow, step: CompiledStep, state: RunState
                   ) -> Iterator[OtelSpan]:
        attributes = {**_run(state), "flowrun.step": step.id, "flowrun.step.kind": step.kind,
                      "flowrun.attempt": state.attempt}
        tried, records = len(state.attempts), len(state.steps)
        with self.tracer.span(f"step {step.id}", SpanKind.INTERNAL, attributes) as span:
            try:
                yield span
            finally:
                _step_outcome(span, state, tried, records)

    def replayed(self, entry: DeadLetter, state: RunState, who: str | None) -> None:
        # a moment in the failed run's trace; the replay run itself is a child of the same
        # context (engine/dlq carries meta.trace over)
        with self.tracer.span(f"replay {entry.flow_id}", SpanKind.INTERNAL, {
                "flowrun.flow": entry.flow_id, "flowrun.dead_letter": entry.id,
                "flowrun.run_id": state.run_id, "flowrun.replay.who": who},
                self.tracer.parent(entry.envelope.get("meta", {}))):
            pass


def _run(state: RunState) -> dict[str, Any]:
    return {"flowrun.flow": state.flow_id, "flowrun.flow.version": state.flow_version,
            "flowrun.run_id": state.run_id, "flowrun.correlation_id": state.correlation_id,
            "flowrun.trigger": state.trigger, "flowrun.business_key": state.key,
            "flowrun.parent_run_id": state.parent_run_id}


def _step_outcome(span: OtelSpan, state: RunState, tried: int, records: int) -> None:
    """What became of one attempt, read from the run after it: ok (or the run's stop status),
    retry, waiting (for a rate-limit token), or what its failure led to — dead_letter,
    dropped, handed_off, on_failure (a goto)."""
    failed = len(state.attempts) > tried
    if state.status == "retrying":
        if not failed:
            span.set("flowrun.outcome", "waiting")
            return
        last = state.attempts[-1]
        span.set("flowrun.outcome", "retry")
        span.set("flowrun.error.status", last.get("status"))
        span.failed(str(last.get("kind") or "error"), str(last.get("error") or "") or None)
        return
    record = state.steps[-1] if len(state.steps) > records else {}
    if record.get("status") != "failed":
        status = record.get("status", "succeeded")
        span.set("flowrun.outcome", "ok" if status == "succeeded" else status)
        return
    error = state.error or {}
    outcome = {"dead_lettered": "dead_letter", "dropped": "dropped",
               "handed_off": "handed_off"}.get(state.status, "on_failure")
    span.set("flowrun.outcome", outcome)
    span.failed(str(error.get("kind") or "error"), str(record.get("error") or "") or None)


def _text_headers(carrier: Mapping[str, Any]) -> dict[str, str]:
    """*carrier*'s text values under lower-case names (bus headers may be bytes or numbers)."""
    out: dict[str, str] = {}
    for name, value in carrier.items():
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if isinstance(name, str) and isinstance(value, str):
            out[name.lower()] = value
    return out


def from_environment() -> OtelTracer:
    """The process's tracer: the SDK configured from ``OTEL_*`` (once), or the provider
    something else already installed."""
    if not isinstance(trace.get_tracer_provider(), ProxyTracerProvider):
        return OtelTracer()
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    named = "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if not named:
        os.environ.setdefault("OTEL_SERVICE_NAME", SERVICE)
    try:
        # the SDK's own reading of the OTEL_* variables (what opentelemetry-instrument runs)
        from opentelemetry.sdk._configuration import _OTelSDKConfigurator

        _OTelSDKConfigurator().configure()
    except Exception as exc:  # an unknown exporter or protocol, a missing exporter package
        raise TracingUnavailable(
            f"OpenTelemetry could not be set up from the environment "
            f"(OTEL_TRACES_EXPORTER={os.environ.get('OTEL_TRACES_EXPORTER')!r}, "
            f"OTEL_EXPORTER_OTLP_PROTOCOL={os.environ.get('OTEL_EXPORTER_OTLP_PROTOCOL')!r}): "
            f"{exc}") from None
    return OtelTracer()
