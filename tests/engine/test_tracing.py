"""The spans of one run, from the webhook to the partner, with the SDK's in-memory exporter.

A real server on loopback takes a webhook carrying the sender's W3C ``traceparent``; the embedded
executor runs the flow, whose ``call`` step posts to a loopback partner that keeps the
``traceparent`` it was sent. One trace holds it all: the request (a child of the sender's span),
intake, each delivery of the run, each attempt of each step, each outbound call — and the partner
sees the call's span as its parent. Retries, dead letters, replays, split items, polls and bus
messages keep to the same rules.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from engine import tracing
from engine.consume import BusMessage, Gate
from engine.otel import OtelTracer
from engine.store.base import DeadLetterFilter, RunFilter
from tests.conftest import make_app, wait_until
from tests.engine.server_support import serving

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SENDER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SENDER_SPAN}-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test, every finished span kept in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = tracing.install(OtelTracer(provider))
    try:
        yield exporter
    finally:
        tracing.install(previous)
        provider.shutdown()


class Partner:
    """Answers POST /orders with the statuses given in turn; keeps each traceparent it got."""

    def __init__(self, statuses: list[int]):
        self.statuses = statuses
        self.traceparents: list[str | None] = []
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        with self.lock:
            self.traceparents.append(request.headers.get("traceparent"))
            status = self.statuses[min(len(self.traceparents), len(self.statuses)) - 1]
        return Response(json.dumps({"ok": status < 300}), status=status,
                        content_type="application/json")


def order_flow(url: str, on_failure: str = "dead_letter") -> str:
    return f"""
    flow: traced
    trigger:
      webhook: {{path: /hooks/traced}}
    key: id
    steps:
      - id: shape
        transform: '{{"order_id": id, "total": total}}'
      - id: erp
        call:
          http: {{method: POST, url: "{url}"}}
        retry: {{max_attempts: 2, respect_retry_after: false, backoff: {{initial: 0.05s}}}}
        on_failure: {on_failure}
    """


def named(found: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return sorted((s for s in found if s.name == name), key=lambda s: s.start_time or 0)


def one(found: list[ReadableSpan], name: str) -> ReadableSpan:
    matching = named(found, name)
    assert len(matching) == 1, [s.name for s in found]
    return matching[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def hex_span(span: ReadableSpan) -> str:
    return f"{span.context.span_id:016x}"


def settled(spans: InMemorySpanExporter, app: Any, run_id: str, names: int) -> list[ReadableSpan]:
    """The spans once the run tree finished and *names* run spans ended."""
    app.wait_for(run_id, 30)
    return wait_until(lambda: (lambda found: found if len(
        [s for s in found if s.name.startswith("run ")]) >= names else None)(
            list(spans.get_finished_spans())), 30, f"{names} run spans")


def test_one_trace_from_the_sender_through_a_retry_to_the_partner(
        spans: InMemorySpanExporter, tmp_path: Path, httpserver: HTTPServer) -> None:
    partner = Partner([503, 200])
    httpserver.expect_request("/orders", method="POST").respond_with_handler(partner)
    app = make_app(tmp_path, {"traced": order_flow(httpserver.url_for("/orders"))})
    with serving(app) as server:
        answer = server.post("/hooks/traced", json.dumps({"id": "A-1", "total": 5}),
                             {"content-type": "application/json", "traceparent": TRACEPARENT})
        assert answer.status_code == 202, answer.text
        run_id = answer.json()["run_id"]
        found = settled(spans, app, run_id, 2)
    assert app.store.get_run(run_id).status == "succeeded"

    assert {f"{s.context.trace_id:032x}" for s in found} == {TRACE_ID}
    request = one(found, "POST /hooks/traced")
    assert request.kind is SpanKind.SERVER
    assert f"{parent_of(request):016x}" == SENDER_SPAN and request.parent.is_remote
    assert request.attributes["http.response.status_code"] == 202
    assert request.attributes["http.route"] == "/hooks/traced"
    intake = one(found, "intake traced")
    assert parent_of(intake) == request.context.span_id
    assert intake.attributes["flowrun.run_id"] == run_id

    # two deliveries of the run (the retry is a second one), both children of its intake
    first, second = named(found, "run traced")
    assert parent_of(first) == parent_of(second) == intake.context.span_id
    assert first.attributes["flowrun.status"] == "retrying"
    assert second.attributes["flowrun.status"] == "succeeded"
    assert second.attributes["flowrun.business_key"] == "A-1"

    shape = one(found, "step shape")
    assert parent_of(shape) == first.context.span_id
    assert shape.attributes["flowrun.outcome"] == "ok"
    tried, done = named(found, "step erp")
    assert parent_of(tried) == first.context.span_id
    assert parent_of(done) == second.context.span_id
    assert {k: tried.attributes[k] for k in ("flowrun.flow", "flowrun.step", "flowrun.attempt",
                                             "flowrun.outcome", "flowrun.business_key",
                                             "error.type")} == {
        "flowrun.flow": "traced", "flowrun.step": "erp", "flowrun.attempt": 1,
        "flowrun.outcome": "retry", "flowrun.business_key": "A-1", "error.type": "http"}
    assert tried.status.status_code is StatusCode.ERROR
    assert (done.attributes["flowrun.attempt"], done.attributes["flowrun.outcome"]) == (2, "ok")

    # each attempt's call is a client span of its own, and the partner was sent that span
    calls = named(found, "POST")
    assert [parent_of(c) for c in calls] == [tried.context.span_id, done.context.span_id]
    assert all(c.kind is SpanKind.CLIENT for c in calls)
    assert [c.attributes["http.response.status_code"] for c in calls] == [503, 200]
    assert calls[0].attributes["url.full"] == httpserver.url_for("/orders")
    assert partner.traceparents == [f"00-{TRACE_ID}-{hex_span(c)}-01" for c in calls]


def test_a_dead_letter_and_its_replay_stay_in_the_trace_of_the_first_run(
        spans: InMemorySpanExporter, tmp_path: Path, httpserver: HTTPServer) -> None:
    partner = Partner([500, 500, 200])
    httpserver.expect_request("/orders", method="POST").respond_with_handler(partner)
    app = make_app(tmp_path, {"traced": order_flow(httpserver.url_for("/orders"))})
    with serving(app) as server:
        answer = server.post("/hooks/traced", json.dumps({"id": "B-2", "total": 1}),
                             {"content-type": "application/json", "traceparent": TRACEPARENT})
        run_id = answer.json()["run_id"]
        settled(spans, app, run_id, 2)
        failed = app.store.get_run(run_id)
        assert failed.status == "dead_lettered"
        entry, = app.store.list_dead_letters(DeadLetterFilter())
        replay = app.replay(entry.id, who="ops@example.com")
        found = settled(spans, app, replay.run_id, 3)

    assert {f"{s.context.trace_id:032x}" for s in found} == {TRACE_ID}
    gave_up = named(found, "step erp")[1]
    assert (gave_up.attributes["flowrun.outcome"], gave_up.attributes["error.type"]) == (
        "dead_letter", "http")
    last = named(found, "run traced")[1]
    assert last.attributes["flowrun.status"] == "dead_lettered"
    assert last.status.status_code is StatusCode.ERROR
    intake = one(found, "intake traced")
    marker = one(found, "replay traced")
    assert marker.attributes["flowrun.replay.who"] == "ops@example.com"
    assert marker.attributes["flowrun.dead_letter"] == entry.id
    again = named(found, "run traced")[2]
    assert again.attributes["flowrun.run_id"] == replay.run_id
    assert again.attributes["flowrun.trigger"] == "replay"
    # the replay continues from where the failed run started: its intake
    assert parent_of(again) == parent_of(marker) == intake.context.span_id
    assert again.attributes["flowrun.status"] == "succeeded"


SPLIT_FLOW = """
flow: lines
steps:
  - id: each
    split: {items: lines}
  - id: note
    log: {message: '"line " & sku'}
"""


def test_split_items_are_runs_within_the_span_of_the_run_that_split(
        spans: InMemorySpanExporter, tmp_path: Path) -> None:
    app = make_app(tmp_path, {"lines": SPLIT_FLOW})
    app.executor.start(resume=False)
    try:
        accepted = app.accept(app.flows.flows["lines"], {"lines": [{"sku": "a"}, {"sku": "b"}]},
                              trigger="poll")
        found = settled(spans, app, accepted.run_id, 3)
    finally:
        app.executor.stop()
        app.store.close()
    # a poll has no caller to continue: its intake starts the trace
    intake = one(found, "intake lines")
    assert intake.parent is None and intake.attributes["flowrun.trigger"] == "poll"
    parent, *items = named(found, "run lines")
    assert parent_of(parent) == intake.context.span_id
    assert parent.attributes["flowrun.status"] == "split"
    assert [parent_of(s) for s in items] == [parent.context.span_id] * 2
    assert {s.context.trace_id for s in found} == {intake.context.trace_id}
    assert [s.attributes["flowrun.outcome"] for s in named(found, "step note")] == ["ok"] * 2


PUBLISHER = """
flow: publisher
steps:
  - id: tell
    redis: {connection: events, stream: orders, headers: {kind: order}}
"""
CONSUMED = """
flow: consumed
trigger:
  consume:
    connection: events
    redis: {stream: orders, group: crm, consumer: c-1}
steps:
  - id: note
    log: {message: '"got " & id'}
"""


@pytest.fixture
def bus_app(tmp_path: Path, redis_url: str) -> Iterator[Any]:
    """An App with a flow that publishes to a Redis stream and one that consumes it."""
    port, db = redis_url.rsplit(":", 1)[1].split("/")
    (tmp_path / "connections").mkdir()
    (tmp_path / "connections" / "events.yaml").write_text(
        f"connection: events\nredis: {{host: 127.0.0.1, port: {port}, db: {db}}}\n",
        encoding="utf-8")
    app = make_app(tmp_path, {"publisher": PUBLISHER, "consumed": CONSUMED})
    app.executor.start(resume=False)
    try:
        yield app
    finally:
        app.executor.stop()
        app.store.close()


def consume(app: Any, headers: dict[str, str]) -> str:
    """Hand one stream entry to the consumed flow's gate, as the consumer does; its run id."""
    gate = Gate(app, app.flows.flows["consumed"], None)
    gate.take(BusMessage(body=b'{"id": 7}', headers=headers,
                         where={"bus": "redis", "stream": "orders", "message_id": "1-0"}))
    (_, ok), = wait_until(lambda: list(gate.settled(0.1)), 30, "the message taken in")
    assert ok
    return str(app.store.list_runs(RunFilter(flow="consumed"))[0].run_id)


def test_a_published_message_carries_the_trace_to_the_flow_that_consumes_it(
        spans: InMemorySpanExporter, bus_app: Any, redis_url: str) -> None:
    sent = bus_app.accept(bus_app.flows.flows["publisher"], {"id": 7})
    settled(spans, bus_app, sent.run_id, 1)
    client = redis.Redis.from_url(redis_url)
    (_, fields), = client.xrange("orders")
    client.close()
    headers = {k.decode(): v.decode() for k, v in fields.items() if k != b"body"}
    tell = one(list(spans.get_finished_spans()), "step tell")
    trace_id, flags = f"{tell.context.trace_id:032x}", f"{tell.context.trace_flags:02x}"
    assert headers == {"kind": "order",
                       "traceparent": f"00-{trace_id}-{hex_span(tell)}-{flags}"}

    found = settled(spans, bus_app, consume(bus_app, headers), 2)
    intake = one(found, "intake consumed")
    assert intake.kind is SpanKind.CONSUMER
    assert parent_of(intake) == tell.context.span_id
    run = one(found, "run consumed")
    assert parent_of(run) == intake.context.span_id
    assert {s.context.trace_id for s in found} == {tell.context.trace_id}


def test_a_bus_message_without_a_traceparent_starts_a_trace(
        spans: InMemorySpanExporter, bus_app: Any) -> None:
    found = settled(spans, bus_app, consume(bus_app, {"kind": "order"}), 1)
    intake = one(found, "intake consumed")
    assert intake.parent is None
    assert parent_of(one(found, "run consumed")) == intake.context.span_id


def test_tracing_off_keeps_no_context_and_gives_the_runner_no_hook(tmp_path: Path) -> None:
    assert not tracing.enabled()
    app = make_app(tmp_path, {"lines": SPLIT_FLOW})
    assert app.runner.around_step is None
    accepted = app.accept(app.flows.flows["lines"], {"lines": [{"sku": "a"}]})
    assert "trace" not in app.store.get_run(accepted.run_id).envelope["meta"]
    app.store.close()


def test_a_refused_request_is_a_server_span_with_its_status_and_nothing_after_it(
        spans: InMemorySpanExporter, tmp_path: Path) -> None:
    small = ("flow: small\ntrigger:\n  webhook: {path: /hooks/small, max_body: 64}\n"
             "steps:\n  - id: note\n    log: {message: '\"hi\"'}\n")
    app = make_app(tmp_path, {"small": small})
    with serving(app) as server:
        answer = server.post("/hooks/small", "x" * 65, {"traceparent": TRACEPARENT})
        assert answer.status_code == 413
        # the span ends once the endpoint returns, just after the answer went out
        request, = wait_until(spans.get_finished_spans, 10, "the request's span")
    assert (request.name, request.attributes["http.response.status_code"]) == (
        "POST /hooks/small", 413)  # nothing after it: no intake, no run
    assert f"{request.context.trace_id:032x}" == TRACE_ID


def test_a_client_span_names_no_query_no_credentials_and_no_secret(
        spans: InMemorySpanExporter, tmp_path: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/orders", method="GET").respond_with_json({"ok": True})
    url = httpserver.url_for("/orders").replace("://", "://erp:pw-9d41@")
    flow = f"""
    flow: lookup
    steps:
      - id: fetch
        call:
          http: {{method: GET, url: "{url}", params: {{api_key: "${{secret:ERP_KEY}}"}}}}
    """
    app = make_app(tmp_path, {"lookup": flow}, secrets={"ERP_KEY": "k-7c2e55"})
    app.executor.start(resume=False)
    try:
        accepted = app.accept(app.flows.flows["lookup"], {})
        found = settled(spans, app, accepted.run_id, 1)
    finally:
        app.executor.stop()
        app.store.close()
    call = one(found, "GET")
    assert call.attributes["url.full"] == httpserver.url_for("/orders")
    request, _ = httpserver.log[0]
    assert request.args["api_key"] == "k-7c2e55"  # the call itself had both
    for span in found:
        assert not any(secret in str(value) for value in span.attributes.values()
                       for secret in ("k-7c2e55", "pw-9d41"))


def test_a_failed_spans_status_masks_a_secret_known_to_the_process() -> None:
    from engine.refs import Redactor

    secret = "tok-learned-after-record"
    redactor = Redactor()  # kept: the process knows the secrets of its live redactors
    redactor.add(secret)  # a value this process handed out after the error was recorded
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = OtelTracer(provider)
    with tracer.span("run orders", SpanKind.CONSUMER, {"flowrun.flow": "orders"}) as span:
        span.failed("http", f"answered 401 for {secret}")
    provider.shutdown()
    (finished,) = exporter.get_finished_spans()
    assert finished.status.description == "answered 401 for ***"
    assert finished.attributes["error.type"] == "http"
