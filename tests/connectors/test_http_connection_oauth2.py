"""OAuth2 client credentials through a named connection, against a token endpoint and an API
on loopback (pytest-httpserver): one token shared by every call and thread, refreshed shortly
before expiry, refreshed once on a 401, clear errors when the provider refuses, and never a
token or client secret in a log line, run record or dead-letter entry.

The token cache's clock is moved by hand through ``connectors.http_connection.monotonic``, so
expiry is tested without waiting for it.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from connectors import http_connection
from tests.conftest import free_port
from tests.connectors.connections_support import Project, debug_logs, one_call, our_logs, project

CLIENT_SECRET = "cs-5b8e0a4f9d"


class Provider:
    """The token endpoint and the API it guards. Tokens are numbered (tok1-..., tok2-...) and
    random past the number, so none can turn up in a text by chance."""

    def __init__(self, expires_in: Any = 3600, delay: float = 0.0):
        self.expires_in, self.delay = expires_in, delay
        self.issued: list[str] = []
        self.token_requests: list[Request] = []
        self.api_tokens: list[str] = []  # the bearer token of each API request, in order
        self.revoked: set[str] = set()
        self.reject_all = False
        self.token_status = 200
        self._lock = threading.Lock()

    def token(self, request: Request) -> Response:
        time.sleep(self.delay)  # a slow provider: concurrent callers pile up on the cache lock
        with self._lock:
            self.token_requests.append(request)
            if self.token_status != 200:
                return Response('{"error": "invalid_client", "error_description": "client '
                                f'secret {CLIENT_SECRET} is not valid"}}',
                                status=self.token_status, content_type="application/json")
            token = f"tok{len(self.issued) + 1}-{secrets.token_hex(12)}"
            self.issued.append(token)
        body = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return Response(json.dumps(body), content_type="application/json")

    def api(self, request: Request) -> Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        with self._lock:
            self.api_tokens.append(token)
            valid = token in self.issued and token not in self.revoked and not self.reject_all
        if not valid:
            return Response('{"error": "invalid_token"}', status=401,
                            content_type="application/json")
        return Response('{"ok": true}', status=201, content_type="application/json")

    def numbers(self) -> list[int]:
        """Which token (1, 2, ...) each API request carried."""
        return [self.issued.index(t) + 1 for t in self.api_tokens]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    made = Clock()
    monkeypatch.setattr(http_connection, "monotonic", made)
    return made


def oauth2_connection(token_url: str, base_url: str, **options: str) -> str:
    extra = "".join(f"      {k}: {v}\n" for k, v in options.items())
    return (f"connection: erp\nhttp:\n  base_url: {base_url}\n  auth:\n    oauth2:\n"
            f"      token_url: {token_url}\n      client_id: flowrunner\n"
            f"      client_secret: '${{secret:ERP_CLIENT_SECRET}}'\n{extra}")


@pytest.fixture
def provider(httpserver: HTTPServer) -> Provider:
    made = Provider()
    httpserver.expect_request("/oauth/token", method="POST").respond_with_handler(made.token)
    httpserver.expect_request("/api/orders", method="POST").respond_with_handler(made.api)
    return made


@pytest.fixture
def erp(tmp_path: Path, httpserver: HTTPServer, provider: Provider) -> Iterator[Project]:
    with project(tmp_path) as made:
        made.secret(ERP_CLIENT_SECRET=CLIENT_SECRET)
        made.connection("erp", oauth2_connection(httpserver.url_for("/oauth/token"),
                                                 httpserver.url_for("/api")))
        made.flow(one_call("{connection: erp, path: /orders}"))
        yield made


def form(request: Request) -> dict[str, str]:
    return dict(request.form.items())


# -- one token for everyone --------------------------------------------------------------------
def test_one_token_for_20_calls_from_4_threads(erp: Project, provider: Provider,
                                               caplog: pytest.LogCaptureFixture) -> None:
    debug_logs(caplog)
    provider.delay = 0.3
    app = erp.app()
    flow = app.flows.flows["t"]
    run_ids = [app.accept(flow, {"n": i}).run_id for i in range(20)]
    states = [app.wait_for(run_id, timeout=30)[0] for run_id in run_ids]
    assert [s.status for s in states] == ["succeeded"] * 20, [s.error for s in states]
    assert len(provider.token_requests) == 1
    assert provider.numbers() == [1] * 20
    # the token and the client secret never show: not at DEBUG, not in any record
    logs = our_logs(caplog)
    assert "/oauth/token" in logs and "/api/orders" in logs  # urllib3 logged both requests
    for text in (logs, *(erp.everything_kept(app, s) for s in states)):
        assert provider.issued[0] not in text and CLIENT_SECRET not in text


def test_token_request_carries_grant_scope_audience_and_basic_client_auth(
        erp: Project, provider: Provider, httpserver: HTTPServer) -> None:
    erp.connection("erp", oauth2_connection(httpserver.url_for("/oauth/token"),
                                            httpserver.url_for("/api"),
                                            scope="'orders:write stock:read'",
                                            audience="https://erp.example"))
    state = erp.run(erp.app(), {})
    assert state.status == "succeeded", state.error
    request, = provider.token_requests
    assert form(request) == {"grant_type": "client_credentials",
                             "scope": "orders:write stock:read",
                             "audience": "https://erp.example"}
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(
        f"flowrunner:{CLIENT_SECRET}".encode()).decode()
    assert request.headers["Accept"] == "application/json"


def test_client_auth_body_puts_the_credentials_in_the_form(erp: Project, provider: Provider,
                                                           httpserver: HTTPServer) -> None:
    erp.connection("erp", oauth2_connection(httpserver.url_for("/oauth/token"),
                                            httpserver.url_for("/api"), client_auth="body"))
    state = erp.run(erp.app(), {})
    assert state.status == "succeeded", state.error
    request, = provider.token_requests
    assert form(request) == {"grant_type": "client_credentials", "client_id": "flowrunner",
                             "client_secret": CLIENT_SECRET}
    assert "Authorization" not in request.headers


# -- expiry ------------------------------------------------------------------------------------
@pytest.mark.parametrize("expires_in, refresh_before, reused_until, fresh_at", [
    (300, "60s", 239, 241),      # refreshed refresh_before ahead of expiry
    ("300", "60s", 239, 241),    # some providers send the number as a string
    (10, "60s", 4, 6),           # short-lived: at half its lifetime, never after expiry
])
def test_token_is_refreshed_shortly_before_expiry(
        erp: Project, provider: Provider, httpserver: HTTPServer, clock: Clock,
        expires_in: Any, refresh_before: str, reused_until: float, fresh_at: float) -> None:
    provider.expires_in = expires_in
    erp.connection("erp", oauth2_connection(httpserver.url_for("/oauth/token"),
                                            httpserver.url_for("/api"),
                                            refresh_before=refresh_before))
    app = erp.app()
    start = clock.now
    for offset in (0, reused_until, fresh_at, fresh_at + 1):
        clock.now = start + offset
        assert erp.run(app, {}).status == "succeeded"
    assert provider.numbers() == [1, 1, 2, 2]


def test_a_token_without_expires_in_is_kept_until_a_401(erp: Project, provider: Provider,
                                                       clock: Clock) -> None:
    provider.expires_in = None
    app = erp.app()
    assert erp.run(app, {}).status == "succeeded"
    clock.now += 30 * 86400
    assert erp.run(app, {}).status == "succeeded"
    provider.revoked.add(provider.issued[0])
    assert erp.run(app, {}).status == "succeeded"
    assert provider.numbers() == [1, 1, 1, 2]


# -- 401 ---------------------------------------------------------------------------------------
def test_a_401_fetches_one_new_token_and_sends_once_more(erp: Project,
                                                         provider: Provider) -> None:
    app = erp.app()
    assert erp.run(app, {"n": 1}).status == "succeeded"
    provider.revoked.add(provider.issued[0])  # revoked at the provider before its expiry
    state = erp.run(app, {"n": 2})
    assert state.status == "succeeded", state.error
    assert provider.numbers() == [1, 1, 2]
    assert len(provider.token_requests) == 2
    assert erp.run(app, {"n": 3}).status == "succeeded"
    assert provider.numbers() == [1, 1, 2, 2]


def test_a_second_401_fails_the_step_as_auth_without_a_loop(erp: Project, provider: Provider,
                                                            caplog: pytest.LogCaptureFixture,
                                                            ) -> None:
    debug_logs(caplog)
    provider.reject_all = True
    # a policy that would retry 401s many times: an auth failure is not retried at all
    erp.flow(one_call("{connection: erp, path: /orders}",
                      extra="defaults:\n  retry: {max_attempts: 5, backoff: {initial: 10ms}, "
                            "retry_on: {http_status: [401, 5xx]}}\n"))
    app = erp.app()
    state = erp.run(app, {})
    assert state.status == "dead_lettered"
    assert state.error is not None
    assert (state.error["kind"], state.error["status"]) == ("auth", 401)
    assert "connection 'erp': POST" in state.error["message"]
    assert "answered 401 Unauthorized even with a freshly fetched OAuth2 token" in \
        state.error["message"]
    assert provider.numbers() == [1, 2]
    assert len(provider.token_requests) == 2
    for text in (our_logs(caplog), erp.everything_kept(app, state)):
        assert all(token not in text for token in provider.issued)


# -- the provider refuses or is down -----------------------------------------------------------
def test_token_endpoint_400_is_an_auth_error_naming_the_connection_not_the_secret(
        erp: Project, provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    debug_logs(caplog)
    provider.token_status = 400
    app = erp.app()
    state = erp.run(app, {})
    assert state.status == "dead_lettered"
    assert state.error is not None
    assert (state.error["kind"], state.error["status"]) == ("auth", 400)
    assert state.error["message"].endswith(
        "OAuth2 token request of connection 'erp': "
        f"{provider.token_requests[0].url} answered 400 (invalid_client)")
    assert provider.api_tokens == []
    for text in (our_logs(caplog), erp.everything_kept(app, state)):
        assert CLIENT_SECRET not in text


def test_token_endpoint_503_is_retried_by_the_policy(erp: Project, provider: Provider) -> None:
    provider.token_status = 503
    erp.flow(one_call("{connection: erp, path: /orders}",
                      extra="defaults:\n  retry: {max_attempts: 3, backoff: {initial: 10ms}}\n"))
    app = erp.app()
    state = erp.run(app, {})
    assert state.status == "dead_lettered"
    assert state.error is not None
    assert (state.error["kind"], state.error["status"]) == ("http", 503)
    assert len(provider.token_requests) == 3


def test_token_endpoint_down_is_a_connection_error_naming_the_connection(
        erp: Project, provider: Provider, httpserver: HTTPServer) -> None:
    down = f"http://127.0.0.1:{free_port()}/oauth/token"
    erp.connection("erp", oauth2_connection(down, httpserver.url_for("/api")))
    state = erp.run(erp.app(), {})
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["kind"] == "connection"
    assert state.error["message"].endswith(
        "OAuth2 token request of connection 'erp': connection refused")
    assert CLIENT_SECRET not in str(state.error)
    assert provider.api_tokens == []
