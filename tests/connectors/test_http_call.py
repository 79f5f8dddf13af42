"""The ``call: {http: ...}`` connector, from YAML through the real loader to a loopback server.

Every request goes to a real HTTP server on 127.0.0.1 (pytest-httpserver, or a small server of
the test's own for slow answers); nothing patches requests. The runs are driven by the runner's
in-process loop, so each test sees the final run state, its step records and its error.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from connectors.http import retry_after
from engine.loader import FlowSet, Loader
from engine.local import resources_factory, run_to_completion
from engine.problems import Problems
from engine.records import RunState
from engine.refs import Secrets
from engine.runner import Runner
from engine.schemas import SchemaStore

ROOT = Path(__file__).resolve().parents[2]

NO_RETRY = """
defaults:
  retry: {max_attempts: 1}
"""


def run_flow(text: str, body: Any = None, *, environ: dict[str, str] | None = None,
             headers: dict[str, Any] | None = None) -> RunState:
    """Load *text* as the flow file ``t.yaml`` and run one message through it."""
    secrets = Secrets(environ=environ or {})
    loader = Loader(schemas=SchemaStore(ROOT / "schemas"), secrets=secrets)
    flow, problems = loader.load_file("t.yaml", text.encode("utf-8"))
    assert flow is not None, [str(p) for p in problems]
    runner = Runner(resources_factory(secrets), secrets.redactor)
    states = run_to_completion(FlowSet({flow.id: flow}, Problems()), flow, body, headers,
                               runner=runner, sleep=lambda s: None)
    return states[0]


def one_call(http: str, *, output: str | None = "vars.resp", extra: str = NO_RETRY) -> str:
    """A flow ``t`` with one call step whose ``http:`` block is *http* (YAML flow mapping)."""
    out = f"\n    output: {output}" if output else ""
    return f"flow: t\n{extra}\nsteps:\n  - id: send\n    call:\n      http: {http}{out}\n"


def only_request(server: HTTPServer) -> Request:
    assert len(server.log) == 1, [r.url for r, _ in server.log]
    return server.log[0][0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def slow_server() -> Iterator[str]:
    """A loopback server that answers /slow only after 1.5 s, stalls /stall after the first
    bytes of the body for 1.5 s, and ends /short after 10 of 100 announced bytes."""

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                if self.path == "/slow":
                    time.sleep(1.5)
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                self.wfile.write(b"x" * 10)
                self.wfile.flush()
                if self.path == "/stall":
                    time.sleep(1.5)
                    self.wfile.write(b"x" * 90)
                self.close_connection = True
            except OSError:
                pass  # the client gave up already

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# -- request building --------------------------------------------------------------------------
def test_templates_env_headers_params_and_json(httpserver: HTTPServer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERP_URL", httpserver.url_for("/erp"))
    monkeypatch.setenv("ERP_TENANT", "acme")
    httpserver.expect_request("/erp/orders/A-17", method="PUT").respond_with_json({"ok": True})
    flow = one_call(
        '{method: PUT, url: "${env:ERP_URL}/orders/{{ order_id }}", '
        'headers: {X-Tenant: "${env:ERP_TENANT}", X-Lines: "{{ $count(lines) }} lines"}, '
        'params: {channel: "{{ channel }}", fixed: "yes"}, '
        'json: "{\\"id\\": order_id, \\"n\\": $count(lines)}"}')
    state = run_flow(flow, {"order_id": "A-17", "channel": "shop", "lines": [1, 2, 3]})
    assert state.status == "succeeded", state.error
    request = only_request(httpserver)
    assert request.headers["X-Tenant"] == "acme"
    assert request.headers["X-Lines"] == "3 lines"
    assert request.args.to_dict() == {"channel": "shop", "fixed": "yes"}
    assert request.get_json() == {"id": "A-17", "n": 3}
    assert request.headers["X-Correlation-ID"] == state.correlation_id
    # PUT is idempotent by itself: no key is added
    assert "Idempotency-Key" not in request.headers


def test_message_body_is_sent_as_json_when_nothing_else_is_given(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/in", method="POST").respond_with_data("", status=204)
    state = run_flow(one_call(f'{{url: "{httpserver.url_for("/in")}"}}'), {"a": [1, "two"]})
    assert state.status == "succeeded", state.error
    assert only_request(httpserver).get_json() == {"a": [1, "two"]}


def test_raw_body_template(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/raw", method="POST").respond_with_data("ok")
    flow = one_call(f'{{url: "{httpserver.url_for("/raw")}", '
                    'headers: {Content-Type: text/plain}, body: "order={{ id }};qty={{ qty }}"}')
    state = run_flow(flow, {"id": "X1", "qty": 2.0})
    assert state.status == "succeeded", state.error
    request = only_request(httpserver)
    assert request.get_data(as_text=True) == "order=X1;qty=2"
    assert request.headers["Content-Type"] == "text/plain"


def test_form_body(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/form", method="POST").respond_with_data("ok")
    flow = one_call(f'{{url: "{httpserver.url_for("/form")}", '
                    'form: {sku: "{{ sku }}", note: "a & b"}}')
    state = run_flow(flow, {"sku": "SKU-9"})
    assert state.status == "succeeded", state.error
    request = only_request(httpserver)
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.form.to_dict() == {"sku": "SKU-9", "note": "a & b"}


def test_correlation_id_of_the_run_is_sent(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/c").respond_with_data("ok")
    state = run_flow(one_call(f'{{method: GET, url: "{httpserver.url_for("/c")}"}}'), {})
    assert state.status == "succeeded", state.error
    sent = only_request(httpserver).headers["X-Correlation-ID"]
    assert sent and sent == state.correlation_id == state.run_id


# -- idempotency key ---------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_idempotency_key_is_run_and_step_on_post_and_patch(httpserver: HTTPServer,
                                                           method: str) -> None:
    httpserver.expect_request("/k", method=method).respond_with_data("ok")
    state = run_flow(one_call(f'{{method: {method}, url: "{httpserver.url_for("/k")}"}}'), {})
    assert state.status == "succeeded", state.error
    assert only_request(httpserver).headers["Idempotency-Key"] == f"{state.run_id}-send"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_no_idempotency_key_on_idempotent_methods(httpserver: HTTPServer, method: str) -> None:
    httpserver.expect_request("/k", method=method).respond_with_data("ok")
    state = run_flow(one_call(f'{{method: {method}, url: "{httpserver.url_for("/k")}"}}'), {})
    assert state.status == "succeeded", state.error
    assert "Idempotency-Key" not in only_request(httpserver).headers


def test_idempotency_key_off(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/k", method="POST").respond_with_data("ok")
    state = run_flow(one_call(f'{{url: "{httpserver.url_for("/k")}", idempotency_key: false}}'),
                     {})
    assert state.status == "succeeded", state.error
    assert "Idempotency-Key" not in only_request(httpserver).headers


def test_custom_idempotency_key_and_header(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/k", method="POST").respond_with_data("ok")
    flow = one_call(f'{{url: "{httpserver.url_for("/k")}", idempotency_key: "order-{{{{ id }}}}", '
                    'idempotency_header: X-Request-Key}')
    state = run_flow(flow, {"id": 42})
    assert state.status == "succeeded", state.error
    request = only_request(httpserver)
    assert request.headers["X-Request-Key"] == "order-42"
    assert "Idempotency-Key" not in request.headers


def test_idempotency_key_is_the_same_on_every_retry(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/k").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/k").respond_with_data("ok")
    extra = "defaults:\n  retry: {max_attempts: 2, backoff: {initial: 0.01s, jitter: none}}"
    state = run_flow(one_call(f'{{url: "{httpserver.url_for("/k")}"}}', extra=extra), {})
    assert state.status == "succeeded", state.error
    keys = [r.headers["Idempotency-Key"] for r, _ in httpserver.log]
    assert keys == [f"{state.run_id}-send"] * 2


# -- the response ------------------------------------------------------------------------------
def test_output_gets_status_headers_and_parsed_json(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r").respond_with_json({"erp_id": 7}, status=201,
                                                      headers={"X-Erp": "yes"})
    state = run_flow(one_call(f'{{url: "{httpserver.url_for("/r")}"}}'), {"keep": "me"})
    assert state.status == "succeeded", state.error
    resp = state.envelope["vars"]["resp"]
    assert resp["status"] == 201
    assert resp["body"] == {"erp_id": 7}
    assert resp["headers"]["X-Erp"] == "yes"
    assert state.envelope["body"] == {"keep": "me"}


def test_body_unchanged_without_output(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r").respond_with_json({"replaced": True})
    state = run_flow(one_call(f'{{url: "{httpserver.url_for("/r")}"}}', output=None),
                     {"keep": "me"})
    assert state.status == "succeeded", state.error
    assert state.envelope["body"] == {"keep": "me"}
    assert state.envelope["vars"] == {}


def test_output_body_replaces_the_message(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r").respond_with_json({"replaced": True})
    state = run_flow(one_call(f'{{url: "{httpserver.url_for("/r")}"}}', output="body"), {"a": 1})
    assert state.status == "succeeded", state.error
    assert state.envelope["body"]["body"] == {"replaced": True}
    assert state.envelope["body"]["status"] == 200


@pytest.mark.parametrize(("content_type", "payload", "expected"), [
    ("application/json", b'{"a": 1}', {"a": 1}),
    ("application/vnd.api+json; charset=utf-8", b'[1, 2]', [1, 2]),
    ("text/plain", b'{"a": 1}', '{"a": 1}'),
    ("text/csv", b"sku,qty\nA,1\n", "sku,qty\nA,1\n"),
    ("application/json", b"", None),
])
def test_response_parsed_by_content_type(httpserver: HTTPServer, content_type: str,
                                         payload: bytes, expected: Any) -> None:
    httpserver.expect_request("/r").respond_with_data(payload, content_type=content_type)
    state = run_flow(one_call(f'{{method: GET, url: "{httpserver.url_for("/r")}"}}'), {})
    assert state.status == "succeeded", state.error
    assert state.envelope["vars"]["resp"]["body"] == expected


def test_expect_text_keeps_json_as_text(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r").respond_with_json({"a": 1})
    state = run_flow(one_call(f'{{method: GET, url: "{httpserver.url_for("/r")}", '
                              'expect: text}'), {})
    assert state.status == "succeeded", state.error
    assert json.loads(state.envelope["vars"]["resp"]["body"]) == {"a": 1}


def test_expect_json_with_a_non_json_response_is_a_clear_step_error(
        httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r").respond_with_data("<html>oops</html>",
                                                      content_type="text/html")
    state = run_flow(one_call(f'{{method: GET, url: "{httpserver.url_for("/r")}", '
                              'expect: json}'), {})
    assert state.status == "dead_lettered"
    error = state.error or {}
    assert error["kind"] == "invalid_response"
    assert error["step"] == "send"
    assert "not valid JSON" in error["message"]
    assert "text/html" in error["message"] and "<html>oops" in error["message"]
    assert state.steps[-1]["status"] == "failed"


def test_expect_json_with_an_empty_response(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r").respond_with_data("", content_type="application/json")
    state = run_flow(one_call(f'{{method: GET, url: "{httpserver.url_for("/r")}", '
                              'expect: json}'), {})
    assert state.status == "dead_lettered"
    assert "empty body" in (state.error or {})["message"]


# -- success statuses --------------------------------------------------------------------------
def test_success_statuses_are_configurable(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/missing").respond_with_json({"found": False}, status=404)
    state = run_flow(one_call(f'{{method: GET, url: "{httpserver.url_for("/missing")}", '
                              'success: [2xx, 404]}'), {})
    assert state.status == "succeeded", state.error
    resp = state.envelope["vars"]["resp"]
    assert (resp["status"], resp["body"]) == (404, {"found": False})


def test_a_2xx_outside_the_success_list_fails(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r").respond_with_data("accepted later", status=202)
    state = run_flow(one_call(f'{{method: GET, url: "{httpserver.url_for("/r")}", '
                              'success: [200]}'), {})
    assert state.status == "dead_lettered"
    error = state.error or {}
    assert error["kind"] == "http" and error["status"] == 202
    assert error["detail"]["body"] == "accepted later"
    assert "answered 202" in error["message"]


def test_error_body_in_the_detail_is_truncated(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r").respond_with_data("x" * 5000, status=422)
    state = run_flow(one_call(f'{{url: "{httpserver.url_for("/r")}"}}'), {})
    detail = (state.error or {})["detail"]
    assert detail["status"] == 422
    assert detail["body"] == "x" * 4096 + "…"
    assert (detail["truncated"], detail["size"]) == (True, 5000)


def test_the_partners_answer_keeps_status_selected_headers_and_the_body(
        httpserver: HTTPServer) -> None:
    """What the operator needs to fix the data: the status, the headers that say why and how to
    follow it up, the body — never a cookie; a multi-byte character at the bound is not cut."""
    body = json.dumps({"error": "unknown article", "sku": "DISCONTINUED-HP-59A"})
    httpserver.expect_request("/r").respond_with_data(
        body, status=422, content_type="application/json",
        headers={"X-Request-Id": "req-77", "Retry-After": "120", "Set-Cookie": "sid=abc123",
                 "X-Internal": "not kept"})
    httpserver.expect_request("/long").respond_with_data(
        "é" * 3000, status=500, content_type="text/plain; charset=utf-8")
    state = run_flow(one_call(f'{{url: "{httpserver.url_for("/r")}"}}'), {})
    detail = (state.error or {})["detail"]
    assert detail["status"] == 422 and detail["reason"] == "UNPROCESSABLE ENTITY"
    assert detail["body"] == body and (detail["truncated"], detail["size"]) == (False, len(body))
    assert {k.lower(): v for k, v in detail["headers"].items()} == {
        "content-type": "application/json", "x-request-id": "req-77", "retry-after": "120"}
    long = run_flow(one_call(f'{{url: "{httpserver.url_for("/long")}"}}'), {})
    cut = (long.error or {})["detail"]
    assert cut["body"] == "é" * 2048 + "…" and cut["size"] == 6000 and cut["truncated"]


# -- authentication ----------------------------------------------------------------------------
def test_bearer_token_from_a_secret(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a", headers={"Authorization": "Bearer tok-123456"}
                              ).respond_with_data("ok")
    flow = one_call(f'{{method: GET, url: "{httpserver.url_for("/a")}", '
                    'auth: {bearer: "${secret:ERP_TOKEN}"}}')
    state = run_flow(flow, {}, environ={"FLOWRUN_SECRET_ERP_TOKEN": "tok-123456"})
    assert state.status == "succeeded", state.error
    assert only_request(httpserver).headers["Authorization"] == "Bearer tok-123456"


def test_basic_auth_from_secrets(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a").respond_with_data("ok")
    flow = one_call(f'{{method: GET, url: "{httpserver.url_for("/a")}", '
                    'auth: {basic: {username: erp-user, password: "${secret:ERP_PASSWORD}"}}}')
    state = run_flow(flow, {}, environ={"FLOWRUN_SECRET_ERP_PASSWORD": "pa:ss-word"})
    assert state.status == "succeeded", state.error
    header = only_request(httpserver).headers["Authorization"]
    assert header.startswith("Basic ")
    assert base64.b64decode(header[6:]).decode() == "erp-user:pa:ss-word"


def test_a_missing_secret_is_a_config_error_not_retried(httpserver: HTTPServer) -> None:
    extra = "defaults:\n  retry: {max_attempts: 5, backoff: {initial: 0.01s}}"
    flow = one_call(f'{{method: GET, url: "{httpserver.url_for("/a")}", '
                    'auth: {bearer: "${secret:NOT_SET_ANYWHERE}"}}', extra=extra)
    state = run_flow(flow, {})
    assert state.status == "dead_lettered"
    error = state.error or {}
    assert error["kind"] == "config"
    assert "FLOWRUN_SECRET_NOT_SET_ANYWHERE" in error["message"]
    assert len(error["attempts"]) == 1
    assert httpserver.log == []


# -- failures are classified -------------------------------------------------------------------
def _failure(url: str, timeout: str = "") -> dict[str, Any]:
    state = run_flow(one_call(f'{{method: GET, url: "{url}"{timeout}}}'), {})
    assert state.status == "dead_lettered"
    return state.error or {}


def test_connection_refused() -> None:
    error = _failure(f"http://127.0.0.1:{free_port()}/x")
    assert error["kind"] == "connection"
    assert "connection refused" in error["message"]
    assert error["status"] is None


def test_read_timeout(slow_server: str) -> None:
    started = time.monotonic()
    error = _failure(f"{slow_server}/slow", ", timeout: {connect: 1s, read: 0.3s}")
    assert error["kind"] == "timeout"
    assert "read timeout" in error["message"]
    assert time.monotonic() - started < 1.4  # gave up at the read timeout, not at the answer


def test_a_body_that_stalls_is_a_read_timeout(slow_server: str) -> None:
    error = _failure(f"{slow_server}/stall", ", timeout: {connect: 1s, read: 0.3s}")
    assert error["kind"] == "timeout"
    assert "read timeout" in error["message"]


def test_a_body_cut_short_is_a_connection_error(slow_server: str) -> None:
    error = _failure(f"{slow_server}/short")
    assert error["kind"] == "connection"
    assert "the response ended early (10 of 100 bytes)" in error["message"]


def test_dns_failure() -> None:
    error = _failure("http://orders.flowrunner-test.invalid/x")
    assert error["kind"] == "dns"
    assert "could not be resolved" in error["message"]


def test_tls_error_against_a_plain_http_server(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/x").respond_with_data("plain")
    error = _failure(f"https://127.0.0.1:{httpserver.port}/x")
    assert error["kind"] == "tls"
    assert "TLS" in error["message"]


def test_invalid_url_is_a_request_invalid_error() -> None:
    error = _failure("not-a-url/{{ id }}")
    assert error["kind"] == "request_invalid"
    assert "invalid URL" in error["message"]


RETRY_ALL = ("defaults:\n  retry: {max_attempts: 4, backoff: {initial: 0.01s, jitter: none}, "
             "retry_on: {errors: [timeout, connection, dns, tls, http, invalid_response]}}")


@pytest.mark.parametrize(("http", "body", "reason"), [
    ('headers: {X-Note: "{{ note }}"}', {"note": "a\r\nX-Evil: 1"},
     "a header value has a line break"),
    ('headers: {X-Note: "{{ note }}"}', {"note": "price in €"},
     "the request cannot be encoded as latin-1 ('€'"),
    ('body: "{{ text }}"', {"text": "\ud800"}, "the request cannot be encoded as utf-8"),
    ('url: "http://a..b/x"', {}, "invalid URL"),
], ids=["crlf-header", "header-beyond-latin1", "body-surrogate", "bad-host"])
def test_a_request_that_cannot_be_built_dead_letters_at_once(
        httpserver: HTTPServer, http: str, body: dict[str, Any], reason: str) -> None:
    url = "" if "url:" in http else f'url: "{httpserver.url_for("/x")}", '
    state = run_flow(one_call(f"{{method: PUT, {url}{http}}}", extra=RETRY_ALL), body)
    assert state.status == "dead_lettered"
    error = state.error or {}
    assert [a["kind"] for a in error["attempts"]] == ["request_invalid"]
    assert error["gave_up"] == "not retryable"
    assert reason in error["message"]
    assert httpserver.log == []


def test_failure_kinds_are_retried_per_policy(httpserver: HTTPServer) -> None:
    """connection errors are retried (default retry_on), tls ones are not."""
    extra = "defaults:\n  retry: {max_attempts: 3, backoff: {initial: 0.01s, jitter: none}}"
    refused = run_flow(one_call(f'{{method: GET, url: "http://127.0.0.1:{free_port()}/x"}}',
                                extra=extra), {})
    assert [a["kind"] for a in (refused.error or {})["attempts"]] == ["connection"] * 3
    httpserver.expect_request("/x").respond_with_data("plain")
    tls = run_flow(one_call(f'{{method: GET, url: "https://127.0.0.1:{httpserver.port}/x"}}',
                            extra=extra), {})
    assert [a["kind"] for a in (tls.error or {})["attempts"]] == ["tls"]
    assert (tls.error or {})["gave_up"] == "not retryable"


def test_retry_after_seconds_and_http_date() -> None:
    assert retry_after("7") == 7.0
    assert retry_after(" 120 ") == 120.0
    assert retry_after("Wed, 21 Oct 2026 07:28:00 GMT",
                       now=1792567680.0 - 30) == pytest.approx(30.0)
    assert retry_after("Wed, 21 Oct 2026 07:28:00 GMT", now=1792567680.0 + 5) == 0.0
    assert retry_after("soon") is None and retry_after(None) is None and retry_after("") is None


def test_handler_sees_werkzeug_request_type(httpserver: HTTPServer) -> None:
    """A handler function on the server sees the exact bytes the connector sent."""
    seen: list[bytes] = []

    def handler(request: Request) -> Response:
        seen.append(request.get_data())
        return Response('{"n": 1}', content_type="application/json")

    httpserver.expect_request("/h").respond_with_handler(handler)
    flow = one_call(f'{{url: "{httpserver.url_for("/h")}", json: "{{\\"é\\": \\"ü\\"}}"}}')
    state = run_flow(flow, {})
    assert state.status == "succeeded", state.error
    assert json.loads(seen[0].decode("utf-8")) == {"é": "ü"}
