"""Poll triggers reading through a named connection: ``trigger.poll.http.connection``.

A supplier portal on loopback (pytest-httpserver) guards its acknowledgments with OAuth2 (or an
API key in the query); the real scheduler polls it inline on a clock the test moves, and the
records taken become queued runs in the App's store.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from engine.app import App
from engine.poll import cursor as cursors
from engine.scheduler import Scheduler
from engine.store.base import RunFilter
from tests.connectors.connections_support import Project, debug_logs, our_logs, project

FLOW = """
flow: po-acks
trigger:
  poll:
    every: 5m
    http:
      connection: supplier
      url: /acks
      params: {updated_since: "{{cursor}}"}
    items: data
    cursor: {field: updated_at, start: "2026-01-01T00:00:00Z"}
    paginate: {next_url: links.next}
    idempotency_key: id
steps:
  - id: keep
    set: {ack: id}
"""

ACKS = [{"id": f"PO-{i}", "updated_at": f"2026-01-0{i}T10:00:00Z"} for i in range(1, 6)]
SECRET = "cs-91ad0c7e42"


class Portal:
    """Acks two to a page, oldest first; answers only with a valid bearer token or API key."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.token_forms: list[dict[str, str]] = []
        self.pages: list[Request] = []
        self.fail = False
        self.next_base = ""  # where next-page links point: this host (relative) or another

    def token(self, request: Request) -> Response:
        self.token_forms.append(dict(request.form.items()))
        self.tokens.append(f"tok{len(self.tokens) + 1}-{secrets.token_hex(12)}")
        return Response(json.dumps({"access_token": self.tokens[-1], "expires_in": 3600}),
                        content_type="application/json")

    def acks(self, request: Request) -> Response:
        self.pages.append(request)
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer not in self.tokens and request.args.get("key") != SECRET:
            return Response('{"error": "unauthorized"}', status=401)
        if self.fail:
            return Response('{"error": "down"}', status=503)
        since, after = request.args.get("updated_since", ""), request.args.get("after", "")
        matching = [a for a in ACKS if a["updated_at"] >= since and a["id"] > after]
        body: dict[str, Any] = {"data": matching[:2]}
        if len(matching) > 2:
            body["links"] = {"next": self.next_base + "/supplier/acks?" + urlencode(
                {"updated_since": since, "after": matching[1]["id"]})}
        return Response(json.dumps(body), content_type="application/json")


@pytest.fixture
def portal(httpserver: HTTPServer) -> Portal:
    made = Portal()
    httpserver.expect_request("/oauth/token", method="POST").respond_with_handler(made.token)
    httpserver.expect_request("/supplier/acks").respond_with_handler(made.acks)
    return made


@pytest.fixture
def supplier(tmp_path: Path, portal: Portal) -> Iterator[Project]:
    with project(tmp_path) as made:
        made.secret(SUPPLIER_SECRET=SECRET)
        made.flow(FLOW, "po-acks")
        yield made


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 10, 12, 0, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def poll(app: App, clock: Clock, times: int) -> None:
    sched = Scheduler(app, clock=clock, inline=True, start_executor=False, lease=30.0)
    try:
        for _ in range(times):
            sched.tick()
            clock.now += 300
    finally:
        sched.close()


def taken(app: App) -> list[dict[str, Any]]:
    return [r.envelope for r in app.store.list_runs(RunFilter(flow="po-acks", limit=100))]


def test_a_poll_authenticates_through_an_oauth2_connection(
        supplier: Project, portal: Portal, httpserver: HTTPServer,
        caplog: pytest.LogCaptureFixture) -> None:
    debug_logs(caplog)
    supplier.connection("supplier", f"""
        connection: supplier
        http:
          base_url: {httpserver.url_for("/supplier")}
          headers: {{X-Partner: acme}}
          auth:
            oauth2:
              token_url: {httpserver.url_for("/oauth/token")}
              client_id: flowrunner
              client_secret: "${{secret:SUPPLIER_SECRET}}"
              client_auth: body
              scope: acks:read
        """)
    app = supplier.app(start=False)
    poll(app, Clock(), times=2)
    assert sorted(e["body"]["id"] for e in taken(app)) == [a["id"] for a in ACKS]
    # three pages on the first poll, one on the second, all with the one token
    assert len(portal.pages) == 4
    assert [p.headers["Authorization"] for p in portal.pages] == [f"Bearer {portal.tokens[0]}"] * 4
    assert all(p.headers["X-Partner"] == "acme" for p in portal.pages)
    assert portal.token_forms == [{"grant_type": "client_credentials", "scope": "acks:read",
                                   "client_id": "flowrunner", "client_secret": SECRET}]
    assert cursors.read_status(app.store, "po-acks")["state"] == "ok"
    logs = our_logs(caplog)
    assert "/supplier/acks" in logs
    assert portal.tokens[0] not in logs and SECRET not in logs


def test_an_api_key_in_the_query_is_masked_in_source_url_and_poll_errors(
        supplier: Project, portal: Portal, httpserver: HTTPServer) -> None:
    supplier.connection("supplier", f"""
        connection: supplier
        http:
          base_url: {httpserver.url_for("/supplier")}
          auth:
            api_key: {{query: key, value: "${{secret:SUPPLIER_SECRET}}"}}
        """)
    app = supplier.app(start=False)
    clock = Clock()
    poll(app, clock, times=1)
    envelopes = taken(app)
    assert len(envelopes) == len(ACKS)
    first_page = next(e for e in envelopes if e["headers"]["page"] == 1)
    assert "key=***" in first_page["headers"]["source_url"]
    assert SECRET not in json.dumps(envelopes)
    portal.fail = True
    poll(app, clock, times=1)
    status = cursors.read_status(app.store, "po-acks")
    assert status["state"] == "failed"
    assert status["last_error"]["status"] == 503
    assert "key=***" in status["last_error"]["message"]
    assert SECRET not in json.dumps(status)


def test_a_next_page_on_another_host_gets_no_credentials(
        supplier: Project, portal: Portal, httpserver: HTTPServer) -> None:
    elsewhere = HTTPServer(host="127.0.0.1", port=0)
    elsewhere.start()
    try:
        elsewhere.expect_request("/supplier/acks").respond_with_json({"data": []})
        portal.next_base = elsewhere.url_for("").rstrip("/")
        supplier.connection("supplier", f"""
            connection: supplier
            http:
              base_url: {httpserver.url_for("/supplier")}
              auth: {{bearer: "${{secret:SUPPLIER_SECRET}}"}}
            """)
        portal.tokens.append(SECRET)  # the portal accepts the static bearer token
        app = supplier.app(start=False)
        poll(app, Clock(), times=1)
        status = cursors.read_status(app.store, "po-acks")
        assert status["state"] == "failed"
        assert status["last_error"]["kind"] == "config"
        assert status["last_error"]["message"] == (
            f"the next page is on another host ({portal.next_base}/supplier/acks?updated_since="
            "2026-01-01T00%3A00%3A00Z&after=PO-2); a named connection's credentials go only to "
            "its base_url's host")
        assert elsewhere.log == []
        assert len(portal.pages) == 1
    finally:
        elsewhere.clear()
        elsewhere.stop()
