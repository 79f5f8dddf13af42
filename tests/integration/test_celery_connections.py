"""Named connections on a real Celery worker: the worker finds ``connections/`` beside the flows
folder, takes the client secret from its own environment, fetches ONE OAuth2 token for all the
runs it executes, and never writes the token or the secret to its log, even at DEBUG.

The token endpoint and the API are a pytest-httpserver on loopback in this process; the worker
is a ``celery -A worker worker`` subprocess on the test's redis-server.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

CLIENT_SECRET = "cs-2c6f81be07"


class Provider:
    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.api: list[str] = []
        self.lock = threading.Lock()

    def token(self, request: Request) -> Response:
        with self.lock:
            self.tokens.append(f"tok{len(self.tokens) + 1}-{secrets.token_hex(12)}")
            body = {"access_token": self.tokens[-1], "expires_in": 3600}
        return Response(json.dumps(body), content_type="application/json")

    def orders(self, request: Request) -> Response:
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        with self.lock:
            self.api.append(bearer)
            ok = bearer in self.tokens
        return Response('{"ok": true}' if ok else '{"error": "invalid_token"}',
                        status=201 if ok else 401, content_type="application/json")


def test_a_worker_shares_one_oauth2_token_across_runs_and_logs_neither_secret(
        cluster: Cluster, httpserver: HTTPServer) -> None:
    provider = Provider()
    httpserver.expect_request("/oauth/token", method="POST").respond_with_handler(
        provider.token)
    httpserver.expect_request("/api/orders", method="POST").respond_with_handler(
        provider.orders)
    connections = cluster.flows.parent / "connections"
    connections.mkdir()
    (connections / "erp.yaml").write_text(
        f"connection: erp\nhttp:\n  base_url: {httpserver.url_for('/api')}\n  auth:\n"
        f"    oauth2:\n      token_url: {httpserver.url_for('/oauth/token')}\n"
        "      client_id: flowrunner\n      client_secret: '${secret:ERP_CLIENT_SECRET}'\n",
        encoding="utf-8")
    (cluster.flows / "orders.yaml").write_text(
        "flow: orders\nsteps:\n  - id: send\n    call:\n"
        "      http: {connection: erp, path: /orders}\n", encoding="utf-8")
    cluster.env["FLOWRUN_SECRET_ERP_CLIENT_SECRET"] = CLIENT_SECRET
    worker = cluster.start_worker("conn", command=[
        sys.executable, "-m", "celery", "-A", "worker", "worker", "-n", "conn@%h",
        "--pool", "solo", "--loglevel", "DEBUG", "--without-gossip", "--without-mingle",
        "--without-heartbeat"])
    worker.wait_ready()
    app = cluster.app()
    accepted = [app.accept(app.flows.flows["orders"], {"n": i}) for i in range(10)]
    states = [app.wait_for(a.run_id, timeout=60)[0] for a in accepted]
    assert [s.status for s in states] == ["succeeded"] * 10, [s.error for s in states]
    assert len(provider.tokens) == 1
    assert provider.api == provider.tokens * 10
    log = worker.text()
    assert "/api/orders" in log  # urllib3's DEBUG request lines are in the worker's log
    assert provider.tokens[0] not in log and CLIENT_SECRET not in log
