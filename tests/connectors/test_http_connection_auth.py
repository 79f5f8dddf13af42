"""Named HTTP connections at run time: each auth kind, default headers, timeouts and URL joining
against a real loopback server (pytest-httpserver), through the real loader, App and executor.

Secrets come from a secrets file; every test that handles one also searches the DEBUG logs
(urllib3's request lines included), the run record and the dead-letter entry for it.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from engine.store.base import DeadLetterFilter
from tests.connectors.connections_support import Project, debug_logs, one_call, our_logs, project

KEY = "ak-7f3e9c1d2b"  # the secret under test: long enough to be redacted, unique in any text


def http_connection(base_url: str, auth: str = "", extra: str = "") -> str:
    return f"connection: erp\nhttp:\n  base_url: {base_url}\n{extra}" + \
        (f"  auth:\n    {auth}\n" if auth else "")


def only_request(server: HTTPServer) -> Request:
    assert len(server.log) == 1, [r.url for r, _ in server.log]
    return server.log[0][0]


@pytest.fixture
def erp(tmp_path: Path, httpserver: HTTPServer) -> Iterator[Project]:
    with project(tmp_path) as made:
        made.secret(ERP_KEY=KEY, ERP_PASSWORD="pw-" + KEY, ERP_TOKEN="tok-" + KEY)
        yield made


# -- each auth kind ----------------------------------------------------------------------------
@pytest.mark.parametrize("auth, header, value", [
    ("basic: {username: flow, password: '${secret:ERP_PASSWORD}'}", "Authorization",
     "Basic " + base64.b64encode(f"flow:pw-{KEY}".encode()).decode()),
    ("bearer: '${secret:ERP_TOKEN}'", "Authorization", f"Bearer tok-{KEY}"),
    ("api_key: {header: X-Api-Key, value: '${secret:ERP_KEY}'}", "X-Api-Key", KEY),
], ids=["basic", "bearer", "api_key-header"])
def test_auth_kind_sends_its_credential(erp: Project, httpserver: HTTPServer,
                                        caplog: pytest.LogCaptureFixture, auth: str,
                                        header: str, value: str) -> None:
    debug_logs(caplog)
    httpserver.expect_request("/api/orders", method="POST", headers={header: value}) \
        .respond_with_json({"ok": True}, status=201)
    erp.connection("erp", http_connection(httpserver.url_for("/api"), auth))
    erp.flow(one_call("{connection: erp, path: /orders}"))
    app = erp.app()
    state = erp.run(app, {"order": 1})
    assert state.status == "succeeded", state.error
    assert only_request(httpserver).get_json() == {"order": 1}
    assert "/api/orders" in our_logs(caplog)  # urllib3 logged the request line
    assert KEY not in our_logs(caplog)
    assert KEY not in erp.everything_kept(app, state)


def test_api_key_in_query_is_sent_and_never_shown(erp: Project, httpserver: HTTPServer,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    debug_logs(caplog)
    # the partner refuses the order and echoes the request URL, key included, in its error
    httpserver.expect_request("/api/orders", method="POST",
                              query_string={"api_key": KEY, "channel": "web"}) \
        .respond_with_handler(lambda request: Response(
            f'{{"error": "rejected", "request": "{request.url}"}}', status=422,
            content_type="application/json"))
    erp.connection("erp", http_connection(
        httpserver.url_for("/api"), "api_key: {query: api_key, value: '${secret:ERP_KEY}'}"))
    erp.flow(one_call("{connection: erp, path: /orders, params: {channel: web}}"))
    app = erp.app()
    state = erp.run(app, {"order": 2})
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["status"] == 422
    kept = erp.everything_kept(app, state)
    assert "api_key=***" in kept  # the echoed URL is in the DLQ entry, its key masked
    assert KEY not in kept
    assert "api_key=***" in our_logs(caplog)  # urllib3's DEBUG request line, masked
    assert KEY not in our_logs(caplog)


def test_an_unset_secret_fails_the_step_naming_connection_and_secret(
        erp: Project, httpserver: HTTPServer) -> None:
    erp.connection("erp", http_connection(httpserver.url_for("/api"),
                                          "bearer: '${secret:NOT_THERE}'"))
    erp.flow(one_call("{connection: erp, path: /orders}"))
    state = erp.run(erp.app(), {})
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["kind"] == "config"
    assert state.error["message"].endswith(
        "/flows/t.yaml:5): connection 'erp': ${secret:NOT_THERE} is not set; set "
        "FLOWRUN_SECRET_NOT_THERE or add NOT_THERE to the secrets file")
    assert httpserver.log == []


# -- default headers and timeouts --------------------------------------------------------------
def test_default_headers_apply_and_the_steps_own_win_whatever_the_case(
        erp: Project, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/stock").respond_with_json([])
    erp.connection("erp", http_connection(
        httpserver.url_for("/api"), "bearer: '${secret:ERP_TOKEN}'",
        extra="  headers: {X-Tenant: eu, X-Channel: erp, Accept: application/json}\n"))
    erp.flow(one_call("{connection: erp, method: GET, path: /stock, "
                      "headers: {x-channel: shop, Authorization: Bearer mine}}"))
    state = erp.run(erp.app())
    assert state.status == "succeeded", state.error
    headers = only_request(httpserver).headers
    assert headers["X-Tenant"] == "eu"
    assert headers["Accept"] == "application/json"
    assert headers.getlist("X-Channel") == ["shop"]
    assert headers.getlist("Authorization") == ["Bearer mine"]


@pytest.mark.parametrize("auth", ["basic: {username: flow, password: '${secret:ERP_PASSWORD}'}",
                                  "api_key: {header: Authorization, value: '${secret:ERP_KEY}'}"],
                         ids=["basic", "api_key"])
def test_a_steps_own_authorization_header_wins_over_the_connections_auth(
        erp: Project, httpserver: HTTPServer, auth: str) -> None:
    httpserver.expect_request("/api/ping").respond_with_json({})
    erp.connection("erp", http_connection(httpserver.url_for("/api"), auth))
    erp.flow(one_call("{connection: erp, method: GET, path: /ping, "
                      "headers: {authorization: Bearer mine}}"))
    state = erp.run(erp.app())
    assert state.status == "succeeded", state.error
    assert only_request(httpserver).headers.getlist("Authorization") == ["Bearer mine"]


@pytest.fixture
def slow() -> Iterator[str]:
    """A loopback server that answers after 1.5 s."""

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(1.5)
            try:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # the client gave up already

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("step_timeout, status", [
    ("", "dead_lettered"),                      # the connection's read timeout (0.3s) applies
    (", timeout: {connect: 2s}", "dead_lettered"),  # a connect timeout keeps the read one
    (", timeout: {read: 5s}", "succeeded"),     # the step's own read timeout wins
], ids=["connection", "step-connect-only", "step-read"])
def test_connection_timeouts_and_a_steps_own(erp: Project, slow: str, step_timeout: str,
                                             status: str) -> None:
    erp.connection("erp", http_connection(slow, extra="  timeout: {connect: 2s, read: 300ms}\n"))
    erp.flow(one_call(f"{{connection: erp, method: GET, path: /x{step_timeout}}}"))
    state = erp.run(erp.app())
    assert state.status == status, state.error
    if status == "dead_lettered":
        assert state.error is not None
        assert state.error["kind"] == "timeout"
        assert state.error["message"].endswith(f"t.yaml:5): GET {slow}/x: read timeout")


# -- base_url + path ---------------------------------------------------------------------------
@pytest.mark.parametrize("base, path, expected_path, expected_query", [
    ("/api", "/orders", "/api/orders", ""),
    ("/api/", "orders", "/api/orders", ""),
    ("/api/", "/orders/", "/api/orders/", ""),
    ("/api//", "//orders", "/api/orders", ""),
    ("", "/orders", "/orders", ""),
    ("/api", "", "/api", ""),
    ("/api", "/orders?status=open", "/api/orders", "status=open"),
    ("/api?tenant=eu", "/orders", "/api/orders", "tenant=eu"),
    ("/api?tenant=eu", "/orders?status=open&page=2", "/api/orders",
     "tenant=eu&status=open&page=2"),
    ("/api", "/orders/{{ id }}/lines", "/api/orders/A-17/lines", ""),
])
def test_base_url_and_path_join(erp: Project, httpserver: HTTPServer, base: str, path: str,
                                expected_path: str, expected_query: str) -> None:
    httpserver.expect_request(expected_path).respond_with_json({})
    erp.connection("erp", http_connection(httpserver.url_for("/").rstrip("/") + base))
    erp.flow(one_call(f'{{connection: erp, method: GET, path: "{path}"}}'))
    state = erp.run(erp.app(), {"id": "A-17"})
    assert state.status == "succeeded", state.error
    request = only_request(httpserver)
    assert (request.path, request.query_string.decode()) == (expected_path, expected_query)


def test_a_path_that_renders_to_a_full_url_is_refused(erp: Project,
                                                      httpserver: HTTPServer) -> None:
    other = HTTPServer(host="127.0.0.1", port=0)
    other.start()
    try:
        other.expect_request("/steal").respond_with_data("ok")
        erp.connection("erp", http_connection(httpserver.url_for("/api"),
                                              "bearer: '${secret:ERP_TOKEN}'"))
        erp.flow(one_call('{connection: erp, method: GET, path: "{{ next }}"}'))
        state = erp.run(erp.app(), {"next": other.url_for("/steal")})
        assert state.status == "dead_lettered"
        assert state.error is not None and state.error["kind"] == "config"
        assert "is a full URL; give a path relative to the connection's base_url" in \
            state.error["message"]
        assert other.log == [] and httpserver.log == []
    finally:
        other.clear()
        other.stop()


# -- flow versions rebuilt from the store ------------------------------------------------------
def test_an_old_flow_version_rebuilt_in_another_process_finds_its_connection(
        erp: Project, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/orders", method="POST").respond_with_data("down", status=503)
    erp.connection("erp", http_connection(httpserver.url_for("/api"),
                                          "bearer: '${secret:ERP_TOKEN}'"))
    erp.flow(one_call("{connection: erp, path: /orders}"))
    first = erp.app()
    assert erp.run(first, {"n": 1}).status == "dead_lettered"
    entry, = first.store.list_dead_letters(DeadLetterFilter())
    first.executor.stop(timeout=2)
    # the flow has changed since; a new process (the CLI, another worker) loads only the new
    # version and rebuilds the old one from the text kept in the store
    erp.flow(one_call("{connection: erp, path: /orders, headers: {X-Version: '2'}}"))
    httpserver.clear()
    httpserver.expect_request("/api/orders", method="POST").respond_with_json({}, status=201)
    fresh = erp.app()
    replay = fresh.replay(entry.id)
    state, = fresh.wait_for(replay.run_id, timeout=30)
    assert state.status == "succeeded", state.error
    request = only_request(httpserver)
    assert request.headers["Authorization"] == f"Bearer tok-{KEY}"
    assert "X-Version" not in request.headers  # the version it failed on ran
