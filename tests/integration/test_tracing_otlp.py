"""Tracing end to end: `flowrun serve` (and a Celery worker) exporting OTLP/HTTP to a receiver.

The receiver is the tests' own HTTP server on loopback: it takes ``POST /v1/traces``, decodes the
protobuf with the protocol's own messages (opentelemetry-proto) and keeps every span. A real
`flowrun serve` subprocess, configured only by ``FLOWRUN_OTEL`` and the standard ``OTEL_*``
variables, takes a webhook carrying a ``traceparent``; its flow calls a partner on loopback
that keeps the ``traceparent`` it got. One trace id runs from the sender through the server,
intake, the run and its steps to the partner — in one process, and across the broker to a
worker process of the prefork pool.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.conftest import ROOT, free_port, wait_until
from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SENDER_SPAN = "b7ad6b7169203331"


@dataclass
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent: str
    attributes: dict[str, Any]


def _value(value: AnyValue) -> Any:
    return getattr(value, value.WhichOneof("value") or "string_value")


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: every span of every export, decoded."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Export)
        self.spans: list[Span] = []
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def keep(self, request: ExportTraceServiceRequest) -> None:
        for resource in request.resource_spans:
            attributes = {a.key: _value(a.value) for a in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    with self.lock:
                        self.spans.append(Span(
                            attributes["service.name"], span.name, span.kind,
                            span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(),
                            {a.key: _value(a.value) for a in span.attributes}))

    def named(self, name: str) -> list[Span]:
        with self.lock:
            return [s for s in self.spans if s.name == name]


class _Export(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/v1/traces":
            self.send_response(404)
            self.end_headers()
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.keep(request)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class Partner:
    """Answers with *statuses* in turn (then the last again); keeps each traceparent."""

    def __init__(self, statuses: tuple[int, ...] = (200,)) -> None:
        self.statuses = statuses
        self.traceparents: list[str | None] = []

    def __call__(self, request: Request) -> Response:
        self.traceparents.append(request.headers.get("traceparent"))
        status = self.statuses[min(len(self.traceparents), len(self.statuses)) - 1]
        return Response('{"accepted": true}', status=status, content_type="application/json")


FLOW = """flow: traced-orders
trigger:
  webhook: {{path: /hooks/orders}}
key: number
steps:
  - id: shape
    transform: '{{"number": number, "lines": $count(lines)}}'
  - id: erp
    call:
      http: {{method: POST, url: "{url}"}}
    retry: {{max_attempts: 2, respect_retry_after: false, backoff: {{initial: 0.2s}}}}
"""


def otel_env(receiver: Receiver, service: str) -> dict[str, str]:
    """Tracing on, configured the standard way only; exported every 100 ms."""
    return {"FLOWRUN_OTEL": "true", "OTEL_SERVICE_NAME": service,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}


@dataclass
class Serve:
    url: str
    process: subprocess.Popen[str]
    http: requests.Session

    def post(self, order: dict[str, Any]) -> requests.Response:
        return self.http.post(self.url + "/hooks/orders", data=json.dumps(order), timeout=30,
                              headers={"content-type": "application/json",
                                       "traceparent": f"00-{TRACE_ID}-{SENDER_SPAN}-01"})


@contextmanager
def serving(env: dict[str, str], cwd: Path) -> Iterator[Serve]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--port", str(port)],
                               cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    http = requests.Session()
    http.trust_env = False
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return http.get(url + "/readyz", timeout=1).status_code == 200
        except requests.ConnectionError:
            assert process.poll() is None, process.communicate()[0]
            return False
    try:
        wait_until(ready, 30, "flowrun serve")
        yield Serve(url, process, http)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
        http.close()


def assert_one_trace(receiver: Receiver, partner: Partner, run_id: str) -> dict[str, Span]:
    """The spans of the run's story, all in the sender's trace, each the child of the one
    before it; the partner was sent the client span."""
    names = ("POST /hooks/orders", "intake traced-orders", "run traced-orders", "step shape",
             "step erp", "POST")
    # the server and the worker export on their own schedules: wait for both
    wait_until(lambda: all(receiver.named(name) for name in names), 30,
               "the spans to be exported")
    with receiver.lock:
        found = list(receiver.spans)
    assert {s.trace_id for s in found} == {TRACE_ID}
    story = {name: next(s for s in found if s.name == name) for name in names}
    request = story["POST /hooks/orders"]
    assert request.parent == SENDER_SPAN
    assert request.attributes["http.response.status_code"] == 202
    assert story["intake traced-orders"].parent == request.span_id
    run = story["run traced-orders"]
    assert run.parent == story["intake traced-orders"].span_id
    assert (run.attributes["flowrun.run_id"], run.attributes["flowrun.status"]) == (
        run_id, "succeeded")
    for step in ("step shape", "step erp"):
        assert story[step].parent == run.span_id
        assert story[step].attributes["flowrun.outcome"] == "ok"
        assert story[step].attributes["flowrun.business_key"] == "SO-77"
    call = story["POST"]
    assert call.parent == story["step erp"].span_id
    assert call.attributes["http.response.status_code"] == 200
    assert partner.traceparents == [f"00-{TRACE_ID}-{call.span_id}-01"]
    return story


def test_flowrun_serve_exports_one_trace_from_the_sender_to_the_partner(
        receiver: Receiver, httpserver: HTTPServer, tmp_path: Path) -> None:
    partner = Partner()
    httpserver.expect_request("/erp/orders", method="POST").respond_with_handler(partner)
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "traced-orders.yaml").write_text(
        FLOW.format(url=httpserver.url_for("/erp/orders")), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWRUN_", "OTEL_"))}
    env.update({"PYTHONPATH": str(ROOT), "FLOWRUN_HOME": str(tmp_path / "home"),
                **otel_env(receiver, "flowrun-serve")})
    with serving(env, tmp_path) as serve:
        answer = serve.post({"number": "SO-77", "lines": [1, 2]})
        assert answer.status_code == 202, answer.text
        story = assert_one_trace(receiver, partner, answer.json()["run_id"])
    assert {s.service for s in story.values()} == {"flowrun-serve"}


def test_a_celery_worker_continues_the_trace_the_server_started(
        cluster: Cluster, receiver: Receiver, httpserver: HTTPServer) -> None:
    partner = Partner()
    httpserver.expect_request("/erp/orders", method="POST").respond_with_handler(partner)
    (cluster.flows / "traced-orders.yaml").write_text(
        FLOW.format(url=httpserver.url_for("/erp/orders")), encoding="utf-8")
    cluster.env.update(otel_env(receiver, "flowrun-worker"))
    worker = cluster.start_worker("traced", pool="prefork", concurrency=1)
    worker.wait_ready()
    with serving({**cluster.env, **otel_env(receiver, "flowrun-serve")}, ROOT) as serve:
        answer = serve.post({"number": "SO-77", "lines": [1]})
        assert answer.status_code == 202, answer.text
        story = assert_one_trace(receiver, partner, answer.json()["run_id"])
    # the request and intake in the server, the run and everything after it in the worker
    assert {n: s.service for n, s in story.items()} == {
        "POST /hooks/orders": "flowrun-serve", "intake traced-orders": "flowrun-serve",
        "run traced-orders": "flowrun-worker", "step shape": "flowrun-worker",
        "step erp": "flowrun-worker", "POST": "flowrun-worker"}


def test_a_retry_in_the_worker_is_a_second_delivery_in_the_same_trace(
        cluster: Cluster, receiver: Receiver, httpserver: HTTPServer) -> None:
    partner = Partner((503, 200))
    httpserver.expect_request("/erp/orders", method="POST").respond_with_handler(partner)
    (cluster.flows / "traced-orders.yaml").write_text(
        FLOW.format(url=httpserver.url_for("/erp/orders")), encoding="utf-8")
    cluster.env.update(otel_env(receiver, "flowrun-worker"))
    cluster.start_worker("traced", pool="prefork", concurrency=1).wait_ready()
    with serving({**cluster.env, **otel_env(receiver, "flowrun-serve")}, ROOT) as serve:
        answer = serve.post({"number": "SO-78", "lines": [1]})
        assert answer.status_code == 202, answer.text
        wait_until(lambda: len(receiver.named("POST")) == 2
                   and len(receiver.named("run traced-orders")) == 2
                   and receiver.named("intake traced-orders"), 60, "both deliveries exported")
    with receiver.lock:
        found = list(receiver.spans)
    assert {s.trace_id for s in found} == {TRACE_ID}
    intake = receiver.named("intake traced-orders")[0]
    runs = receiver.named("run traced-orders")
    assert [r.parent for r in runs] == [intake.span_id] * 2
    assert sorted(r.attributes["flowrun.status"] for r in runs) == ["retrying", "succeeded"]
    attempts = {s.attributes["flowrun.attempt"]: s for s in receiver.named("step erp")}
    assert (attempts[1].attributes["flowrun.outcome"], attempts[2].attributes["flowrun.outcome"]
            ) == ("retry", "ok")
    calls = {c.parent: c for c in receiver.named("POST")}
    assert partner.traceparents == [f"00-{TRACE_ID}-{calls[attempts[n].span_id].span_id}-01"
                                    for n in (1, 2)]
