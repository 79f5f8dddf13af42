"""Named operators in a real browser: a viewer logs in, sees the stuck order but no replay or
discard button, and a replay posted anyway is refused with 403; an operator logs in, replays
it, and the audit trail names them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from pytest_httpserver import HTTPServer

from engine.store.base import DeadLetterFilter
from tests.browser.conftest import ARTIFACTS, FLOW, Erp, Site, order
from tests.engine.console.support import FAST_RETRY, console_app, password_of, users_file
from tests.engine.server_support import serving


@pytest.fixture
def staffed(tmp_path: Path, httpserver: HTTPServer) -> Iterator[Site]:
    """The console of the browser tests, with a viewer (vera) and an operator (olga)."""
    erp = Erp()
    httpserver.expect_request("/sales-orders", method="POST").respond_with_handler(erp.answer)
    flow = FLOW.format(erp=httpserver.url_for("/").rstrip("/"), retry=FAST_RETRY)
    app = console_app(tmp_path, flows={"orders": flow},
                      users=users_file(tmp_path, vera="viewer", olga="operator"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serving(app) as server:
        yield Site(server, erp, ARTIFACTS)


def log_in_as(site: Site, page: Page, user: str) -> None:
    page.goto(site.url + "/console/")
    page.fill("#user", user)
    page.fill("#password", password_of(user))
    page.click("#login")
    expect(page.locator("#who")).to_have_text(re.compile(rf"^{user} · "))


def test_a_viewer_sees_no_write_button_and_an_operator_replays(staffed: Site,
                                                              page: Page) -> None:
    stuck = staffed.send(order(30001, sku="TONER-59"))
    assert stuck["status"] == "dead_lettered"
    entry = next(e for e in staffed.server.app.store.list_dead_letters(DeadLetterFilter())
                 if e.run_id == stuck["run_id"])

    log_in_as(staffed, page, "vera")
    expect(page.locator("#who")).to_have_text("vera · viewer")
    page.goto(f"{staffed.url}/console/dlq/{entry.id}")
    expect(page.locator("#entry-status")).to_have_text("open")
    expect(page.locator("#replay")).to_have_count(0)
    expect(page.locator("#discard")).to_have_count(0)
    page.goto(staffed.url + "/console/dlq")
    expect(page.locator("#entries tbody tr")).to_have_count(1)
    expect(page.locator("#replay-all")).to_have_count(0)
    staffed.shot(page, "dlq-viewer")
    # a replay the page does not offer, sent by the browser's own session anyway
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content")
    refused = page.request.post(f"{staffed.url}/api/dead-letters/{entry.id}/replay",
                                data=json.dumps({}), headers={"X-CSRF-Token": csrf or "",
                                                              "Content-Type": "application/json"})
    assert refused.status == 403 and refused.json()["role"] == "viewer"
    page.click("text=Log out")
    page.wait_for_url(re.compile(r"/console/login"))

    log_in_as(staffed, page, "olga")
    page.goto(f"{staffed.url}/console/dlq/{entry.id}")
    body = json.loads(page.input_value("#body"))
    page.fill("#body", json.dumps({**body, "sku": "TONER-59X"}))
    page.keyboard.type(" ")  # typing in the body ticks "replace the body" (console.js)
    page.click("#replay")
    page.wait_for_url(re.compile(r"/console/runs/[0-9a-f]{8,}"))
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=30_000)
    page.click("#replay-of")
    audit = page.locator("#audit tbody tr")
    expect(audit).to_have_count(1)
    expect(audit.first).to_contain_text("console:olga")
    staffed.shot(page, "audit-operator")
    assert staffed.erp.booked_orders() == [30001]
