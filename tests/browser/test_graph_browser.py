"""A flow's diagram and a run's path in a real browser: headless Chromium on the real server.

The flow routes large orders through a step of their own before booking them in the sandbox
ERP, which refuses unknown SKUs with a 422. The analyst opens the flow's diagram from the flows
list, then follows a dead-lettered order from its run page to its path: the branch it took,
the steps it passed, the booking step marked red and the dead-letter end it reached.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from pytest_httpserver import HTTPServer

from tests.browser.conftest import ARTIFACTS, Erp, Site, order, publish
from tests.engine.console.support import FAST_RETRY, console_app
from tests.engine.server_support import serving

ROUTED = """
flow: orders
description: Shop orders; large ones are noted before they are booked.
key: $string(order_number)
trigger:
  webhook:
    path: /hooks/orders
{retry}steps:
  - id: check
    validate: {{schema: console/order.v1}}
  - id: by_size
    route:
      - when: qty > 100
        goto: large
      - otherwise: book
  - id: large
    log: {{message: '"large order " & $string(order_number)'}}
  - id: book
    call:
      http:
        method: POST
        url: "{erp}/sales-orders"
        json: '{{"order": order_number, "sku": sku, "qty": qty}}'
    output: vars.erp
"""
STEPS = ["step:check", "step:by_size", "step:large", "step:book"]


@pytest.fixture
def routed(tmp_path: Path, httpserver: HTTPServer) -> Iterator[Site]:
    erp = Erp()
    httpserver.expect_request("/sales-orders", method="POST").respond_with_handler(erp.answer)
    erp_url = httpserver.url_for("/").rstrip("/")
    app = console_app(tmp_path, flows={"orders": ROUTED.format(erp=erp_url, retry=FAST_RETRY)})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serving(app) as server:
        try:
            yield Site(server, erp, ARTIFACTS)
        finally:
            erp.answering.set()


def test_the_diagram_shows_every_step_and_a_dead_letter_s_failing_step(
        routed: Site, page: Page) -> None:
    assert routed.send(order(501, qty=200))["status"] == "succeeded"
    stuck = routed.send(order(502, sku="TONER-59", qty=300))
    assert stuck["status"] == "dead_lettered"

    routed.log_in(page)
    page.click("#flows .diagram-link")
    expect(page.locator("#flow-id")).to_have_text("orders")
    diagram = page.locator("#graph svg.flow-graph")
    expect(diagram).to_be_visible()
    steps = diagram.locator("g.node.step")
    expect(steps).to_have_count(4)
    assert [steps.nth(i).get_attribute("data-node") for i in range(4)] == STEPS
    expect(diagram.locator('g.node[data-node="trigger"]')).to_contain_text("/hooks/orders")
    expect(diagram.locator('g.node[data-node="dead_letter"]')).to_contain_text("dead letter")
    expect(diagram.locator("g.labels")).to_contain_text("qty > 100")
    # drawn, not just present: every step's box has a size on the page
    for i in range(4):
        box = steps.nth(i).bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 20
    routed.shot(page, "flow-diagram")

    # the stuck order: its run page links to its path over the diagram
    page.goto(routed.url + f"/console/runs/{stuck['run_id']}")
    expect(page.locator("#run-status")).to_have_text("dead_lettered")
    page.click("#path-link")
    expect(page.locator("#run-status")).to_have_text("dead_lettered")
    diagram = page.locator("#graph svg.flow-graph")
    failed = diagram.locator('g.node[data-state="failed"]')
    expect(failed).to_have_count(2)  # the booking step, and the dead-letter end it reached
    expect(diagram.locator('g.node[data-node="step:book"]')).to_have_attribute(
        "data-state", "failed")
    expect(diagram.locator('g.node[data-node="dead_letter"]')).to_have_attribute(
        "data-state", "failed")
    for passed in ("trigger", "step:check", "step:by_size", "step:large"):
        expect(diagram.locator(f'g.node[data-node="{passed}"]')).to_have_attribute(
            "data-state", "passed")
    expect(diagram.locator('g.node[data-node="end"]')).not_to_have_attribute("data-state",
                                                                           "passed")
    # the failing step is red on the page, as drawn by the browser
    colour = diagram.locator('g.node[data-node="step:book"] rect').evaluate(
        "el => getComputedStyle(el).stroke")
    assert colour == "rgb(209, 36, 47)"
    taken = diagram.locator('path.edge[data-taken="true"]')
    expect(taken).to_have_count(5)  # in, check, the branch, large → book, book → dead letter
    expect(diagram.locator(
        'path.edge[data-source="step:by_size"][data-target="step:large"]')).to_have_attribute(
        "data-taken", "true")
    expect(page.locator("#branches")).to_contain_text("qty > 100")
    expect(page.locator("#path-steps li")).to_have_count(4)
    publish(routed.shot(page, "run-path"), "run-path.png")

    # the flow's name leads back to its diagram
    page.click("#flow-link")
    expect(page.locator("#flow-id")).to_have_text("orders")
