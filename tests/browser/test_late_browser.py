"""The Late list in a real browser: orders an ERP on loopback keeps refusing breach their flow's
``within: 2s`` SLA; the operator finds them on the Late page, with how late they are and their
status now, and sees the late badge on the run. The sweep's clock is set ahead, not slept to.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from pytest_httpserver import HTTPServer

from engine.sla import SlaWatch
from tests.browser.conftest import ARTIFACTS
from tests.conftest import wait_until
from tests.engine.console.support import TOKEN, console_app
from tests.engine.server_support import Running, serving

FLOWS = {
    "orders": """
        flow: orders
        key: $string(order_number)
        sla:
          within: 2s
          rules:
            - key: "B2B-*"
              within: 4h
          alert: {{flow: late-order-handling}}
        trigger:
          webhook: {{path: /hooks/orders}}
        defaults:
          retry: {{max_attempts: 20, backoff: {{initial: 60s, jitter: none}}}}
        steps:
          - id: book
            call:
              http: {{method: POST, url: "{erp}"}}
        """,
    "late-order-handling": """
        flow: late-order-handling
        steps:
          - id: note
            set: {{noted: "true"}}
        """,
}


@pytest.fixture
def server(tmp_path: Path, httpserver: HTTPServer) -> Iterator[Running]:
    httpserver.expect_request("/sales-orders").respond_with_json({"error": "busy"}, status=503)
    erp = httpserver.url_for("/sales-orders")
    app = console_app(tmp_path, flows={k: v.format(erp=erp) for k, v in FLOWS.items()})
    with serving(app) as running:
        yield running


def send(server: Running, number: str) -> str:
    response = server.post("/hooks/orders", json.dumps({"order_number": number}),
                           {"Content-Type": "application/json"})
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    wait_until(lambda: (s := server.app.store.get_run(run_id)) and s.status == "retrying",
               what=f"order {number} to wait for a retry")
    return run_id


def test_the_late_list_shows_late_runs_and_the_run_page_a_late_badge(
        server: Running, page: Page) -> None:
    late = send(server, "10071")
    send(server, "B2B-3")  # 4 hours: not late
    app = server.app
    ahead = SlaWatch(app.store, app.versions, app.executor, app.metrics,
                     clock=lambda: time.time() + 30)
    assert ahead.sweep() == 1

    page.goto(server.url + "/console/")
    page.fill("#token", TOKEN)
    page.click("#login")
    page.click("nav >> text=Late")
    rows = page.locator("#late tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("10071")
    expect(rows.first).to_contain_text("orders")
    expect(rows.first).to_contain_text("retrying")
    expect(rows.first).to_contain_text("and counting")
    expect(rows.first.locator(".late-by")).to_contain_text("s")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "late.png"), full_page=True)

    rows.first.locator("a").first.click()
    expect(page.locator("#run-key")).to_have_text("10071")
    expect(page.locator("#late-badge")).to_contain_text("late")
    expect(page.locator("#run-deadline")).to_contain_text("alert run")

    # the same list over the API, and a flow with no late runs shows none
    api = server.http.get(server.url + "/api/late", headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=10)
    assert api.status_code == 200
    (row,) = api.json()
    assert (row["run_id"], row["key"], row["status"], row["open"]) == (late, "10071",
                                                                       "retrying", True)
    page.goto(server.url + "/console/late?flow=late-order-handling")
    expect(page.locator("#late tbody tr")).to_contain_text("No run has been late")
