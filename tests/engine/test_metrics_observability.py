"""Observability on the real server: correlation ids end to end, structured log lines, and the
Prometheus metrics the console issue lists — runs, step durations, retries, dead letters, DLQ
depth by flow, queue depth by lane, webhook intake latency and responses, poll lag.

Every test talks to `create_app` under uvicorn on loopback, with a pytest-httpserver ERP that
answers the first request for each order with 503 and the next with 200 (unknown SKUs: 422).
"""

from __future__ import annotations

import io
import json
import logging
import platform
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from engine import __version__
from engine.app import App
from engine.logs import setup_logging
from engine.retry import REASON_KINDS
from engine.store.base import DeadLetterFilter
from tests.engine.console.support import FAST_RETRY, TOKEN, bearer, logged_in
from tests.engine.poll.support import T0, Clock, Partner, iso, scheduler
from tests.engine.server_support import SECRETS, Running, hook_app, serving

FLOW = """
flow: obs
key: $string(order_number)
queue: {lane}
trigger:
  webhook: {{path: /hooks/obs}}
{retry}steps:
  - id: note
    log: {{message: '"order " & $string(order_number) & ": " & note'}}
  - id: book
    call:
      http:
        method: POST
        url: "{url}/book"
        headers: {{Authorization: "Bearer ${{secret:GENERIC}}"}}
"""
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class Erp:
    """503 for an order's first request, then 200; 422 for an unknown SKU. Keeps headers."""

    def __init__(self) -> None:
        self.seen: set[Any] = set()
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def answer(self, request: Request) -> Response:
        order = json.loads(request.get_data() or b"{}")
        with self.lock:
            self.headers.append(dict(request.headers))
            first = order.get("order_number") not in self.seen
            self.seen.add(order.get("order_number"))
        if first:
            return Response("{}", status=503, content_type="application/json")
        status = 422 if order.get("sku") == "BAD" else 200
        return Response("{}", status=status, content_type="application/json")


@pytest.fixture
def erp(httpserver: HTTPServer) -> Erp:
    made = Erp()
    httpserver.expect_request("/book", method="POST").respond_with_handler(made.answer)
    return made


def obs_app(tmp_path: Path, httpserver: HTTPServer, lane: str = "default") -> App:
    app = hook_app(tmp_path, {"obs": FLOW.format(url=httpserver.url_for("").rstrip("/"),
                                                lane=lane, retry=FAST_RETRY)})
    app.settings.console_token = SecretStr(TOKEN)
    return app


@pytest.fixture
def server(tmp_path: Path, httpserver: HTTPServer, erp: Erp) -> Iterator[Running]:
    with serving(obs_app(tmp_path, httpserver)) as running:
        yield running


@contextmanager
def capture_logs(fmt: str) -> Iterator[io.StringIO]:
    """flowrunner's log handler on the root logger, writing into a buffer; put back after."""
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    buffer = io.StringIO()
    setup_logging(level="INFO", fmt=fmt, stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers[:], root.level = before


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    with capture_logs("json") as buffer:
        yield buffer


def send(server: Running, body: Any, **headers: str) -> tuple[dict[str, Any], str]:
    """POST to the webhook and wait for the run; (the run as stored, the response's cid)."""
    response = server.post("/hooks/obs", json.dumps(body),
                           {"Content-Type": "application/json", **headers})
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    tree = server.app.wait_for(run_id, timeout=30)
    assert tree and tree[0].done
    return tree[0].to_dict(), response.headers["X-Correlation-ID"]


def scrape(server: Running) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics as {(name, labels): value}."""
    text = server.http.get(server.url + "/metrics", timeout=10).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


# -- correlation -------------------------------------------------------------------------------
def test_traceparent_correlates_the_run_its_calls_its_log_lines_and_its_dead_letter(
        server: Running, erp: Erp, log_lines: io.StringIO) -> None:
    run, cid = send(server, {"order_number": 10045, "sku": "BAD", "note": "rush"},
                    traceparent=TRACEPARENT)
    assert cid == TRACE_ID  # answered to the sender
    assert run["correlation_id"] == TRACE_ID and run["status"] == "dead_lettered"
    # every outbound attempt carried it
    assert [h.get("X-Correlation-Id") for h in erp.headers] == [TRACE_ID, TRACE_ID]
    entry = server.app.store.list_dead_letters(DeadLetterFilter(flow="obs"))[0]
    assert entry.correlation_id == TRACE_ID
    # found by it in the console's API
    found = server.http.get(server.url + f"/api/runs?correlation_id={TRACE_ID}",
                            headers=bearer(), timeout=10).json()
    assert [r["run_id"] for r in found] == [run["run_id"]]
    # the log step's line names flow, run, step and correlation id
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    note = [line for line in lines if line["message"] == "order 10045: rush"]
    assert note == [{"time": note[0]["time"], "level": "INFO", "logger": "flowrunner.flow",
                     "message": "order 10045: rush", "flow": "obs", "run_id": run["run_id"],
                     "step": "note", "correlation_id": TRACE_ID}]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", note[0]["time"])


def test_x_correlation_id_wins_and_a_bad_one_is_not_taken(server: Running) -> None:
    _, given = send(server, {"order_number": 1, "sku": "A", "note": ""},
                    **{"X-Correlation-ID": "shop-1", "traceparent": TRACEPARENT})
    assert given == "shop-1"
    # not an id (spaces, markup): the trace id is used instead
    _, traced = send(server, {"order_number": 2, "sku": "A", "note": ""},
                     **{"X-Correlation-ID": "<b>x</b> y", "traceparent": TRACEPARENT})
    assert traced == TRACE_ID
    # neither, or an all-zero trace id (invalid by W3C): a new id per message
    _, made = send(server, {"order_number": 3, "sku": "A", "note": ""},
                   traceparent=f"00-{'0' * 32}-00f067aa0ba902b7-01")
    _, other = send(server, {"order_number": 4, "sku": "A", "note": ""})
    assert re.fullmatch(r"[0-9a-f]{32}", made) and re.fullmatch(r"[0-9a-f]{32}", other)
    assert len({made, other, TRACE_ID}) == 3


# -- logs --------------------------------------------------------------------------------------
def test_secrets_are_masked_in_log_lines(server: Running, log_lines: io.StringIO) -> None:
    secret = SECRETS["GENERIC"]
    send(server, {"order_number": 5, "sku": "A", "note": f"key is {secret}"})
    text = log_lines.getvalue()
    assert "order 5: key is ***" in text
    assert secret not in text


def test_text_format_puts_flow_step_run_and_correlation_in_brackets(
        server: Running) -> None:
    with capture_logs("text") as buffer:
        run, _ = send(server, {"order_number": 6, "sku": "A", "note": "hello"},
                      **{"X-Correlation-ID": "shop-6"})
    line = next(li for li in buffer.getvalue().splitlines() if li.endswith("order 6: hello"))
    assert re.fullmatch(r"\S+Z INFO    flowrunner\.flow \[obs/note run=(\w{12}) cid=shop-6\] "
                        r"order 6: hello", line)
    assert f"run={run['run_id'][:12]}" in line


def test_unknown_log_format_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="FLOWRUN_LOG_FORMAT='xml': use json or text"):
        setup_logging(fmt="xml", stream=io.StringIO())


# -- metrics -----------------------------------------------------------------------------------
def test_metrics_count_runs_steps_retries_dead_letters_and_intake(server: Running) -> None:
    send(server, {"order_number": 7, "sku": "A", "note": ""})
    send(server, {"order_number": 8, "sku": "BAD", "note": ""})
    bad = server.post("/hooks/obs", b"{not json", {"Content-Type": "application/json"})
    assert bad.status_code == 400
    samples = scrape(server)

    assert sample(samples, "flowrun_runs_total", flow="obs", status="succeeded") == 1
    assert sample(samples, "flowrun_runs_total", flow="obs", status="dead_lettered") == 1
    assert sample(samples, "flowrun_step_duration_seconds_count", flow="obs", step="note",
                  status="succeeded") == 2
    assert sample(samples, "flowrun_step_duration_seconds_count", flow="obs", step="book",
                  status="succeeded") == 1
    assert sample(samples, "flowrun_step_retries_total", flow="obs", step="book",
                  reason="http_status") == 2
    assert sample(samples, "flowrun_dead_lettered_total", flow="obs", step="book",
                  reason="http_status") == 1
    assert sample(samples, "flowrun_dlq_depth", flow="obs") == 1
    assert sample(samples, "flowrun_queue_depth", lane="default", flow="obs",
                  status="queued") == 0
    assert sample(samples, "flowrun_webhook_responses_total", flow="obs", status="202") == 2
    assert sample(samples, "flowrun_webhook_responses_total", flow="obs", status="400") == 1
    assert sample(samples, "flowrun_webhook_request_duration_seconds_count", flow="obs") == 3
    assert sample(samples, "flowrun_store_up") == 1

    # replaying the entry empties the queue: the depth is read from the store at each scrape
    entry = server.app.store.list_dead_letters(DeadLetterFilter(flow="obs"))[0]
    server.app.replay(entry.id, start_from="start", body={"order_number": 8, "sku": "A",
                                                          "note": ""}, edited=True)
    assert sample(scrape(server), "flowrun_dlq_depth", flow="obs") == 0


def test_queue_depth_is_reported_by_lane(tmp_path: Path, httpserver: HTTPServer,
                                         erp: Erp) -> None:
    # no executor: the runs stay queued in the flow's lane
    with serving(obs_app(tmp_path, httpserver, lane="bulk"), executor=False) as server:
        for number in (1, 2, 3):
            response = server.post("/hooks/obs", json.dumps({"order_number": number}),
                                   {"Content-Type": "application/json"})
            assert response.status_code == 202
        samples = scrape(server)
        assert sample(samples, "flowrun_queue_depth", lane="bulk", flow="obs",
                      status="queued") == 3
        flows = server.http.get(server.url + "/api/flows", headers=bearer(), timeout=10).json()
        assert [(f["flow"], f["lane"], f["active"]) for f in flows] == [("obs", "bulk", 3)]


POLL_FLOW = """
flow: po-acks
trigger:
  poll:
    every: 5m
    http: {{url: "{url}/acks", params: {{updated_since: "{{{{cursor}}}}"}}}}
    items: data
    cursor: {{field: updated_at, start: "{start}"}}
    paginate: {{next_url: links.next}}
    idempotency_key: id & "@" & updated_at
steps:
  - id: keep
    set: {{ack: id}}
"""


def test_poll_lag_is_now_minus_the_cursor_on_metrics_and_the_flows_page(
        tmp_path: Path) -> None:
    with Partner(size=10) as partner:
        partner.put("a1", 5)
        partner.put("a2", 7)  # the cursor ends at T0 + 7 minutes
        app = hook_app(tmp_path, {"po-acks": POLL_FLOW.format(url=partner.url, start=iso(-60))})
        app.settings.console_token = SecretStr(TOKEN)
        with scheduler(app, Clock(T0.timestamp() + 3600)) as sched:
            assert [f.reason for f in sched.tick()] == ["slot"]
        with serving(app) as server:
            before = time.time()
            lag = sample(scrape(server), "flowrun_poll_lag_seconds", flow="po-acks")
            after = time.time()
            cursor = T0.timestamp() + 7 * 60
            assert lag is not None and before - cursor <= lag <= after - cursor
            flows = server.http.get(server.url + "/api/flows", headers=bearer(),
                                    timeout=10).json()
            assert flows[0]["poll_lag"] >= before - cursor
            assert flows[0]["last_poll_at"] == T0.timestamp() + 3600
            page = logged_in(server).get(server.url + "/console/", timeout=10).text
            assert "last poll 2026-03-02 10:00:00" in page
            days = int((before - cursor) // 86400)
            assert f"{days}d " in page  # the lag, for people


def test_a_webhook_flow_has_no_poll_lag(server: Running) -> None:
    samples = scrape(server)
    assert not [k for k in samples if k[0] == "flowrun_poll_lag_seconds"]
    flows = server.http.get(server.url + "/api/flows", headers=bearer(), timeout=10).json()
    assert flows[0]["poll_lag"] is None and flows[0]["last_poll_at"] is None


def test_metrics_families_process_build_and_durations_with_bounded_labels(
        server: Running) -> None:
    runs = [send(server, {"order_number": n, "sku": sku, "note": ""})[0]
            for n, sku in ((21, "A"), (22, "BAD"), (23, "A"))]
    text = server.http.get(server.url + "/metrics", timeout=10).text
    families = {f.name: f for f in text_string_to_metric_families(text)}

    # prometheus-client's standard collectors, on flowrunner's own registry
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "python_info",
                 "python_gc_collections"):
        assert families[name].samples, name
    [build] = families["flowrun_build_info"].samples
    assert build.value == 1 and build.labels["version"] == __version__
    assert build.labels["python"] == platform.python_version()

    samples = {(s.name, frozenset(s.labels.items())): s.value
               for f in families.values() for s in f.samples}
    assert families["flowrun_run_duration_seconds"].type == "histogram"
    assert sample(samples, "flowrun_run_duration_seconds_count", flow="obs",
                  status="succeeded") == 2
    assert sample(samples, "flowrun_run_duration_seconds_count", flow="obs",
                  status="dead_lettered") == 1
    # the bad order waited out a retry: received to finished spans both attempts
    assert sample(samples, "flowrun_run_duration_seconds_sum", flow="obs",
                  status="dead_lettered") >= sample(
        samples, "flowrun_step_duration_seconds_sum", flow="obs", step="book", status="failed")
    assert sample(samples, "flowrun_step_retries_total", flow="obs", step="book",
                  reason="http_status") == 3
    assert sample(samples, "flowrun_dead_lettered_total", flow="obs", step="book",
                  reason="http_status") == 1

    # no label holds a run id, a key or a correlation id: cardinality stays with the flows
    ids = {str(v) for run in runs for v in (run["run_id"], run["key"], run["correlation_id"])}
    values = {v for (_, labels) in samples for _, v in labels}
    assert not ids & values
    reasons = {v for (name, labels) in samples for k, v in labels if k == "reason"}
    assert reasons and reasons <= set(REASON_KINDS)
