"""Fixtures for the console's browser tests: Debian's headless Chromium driven by Playwright,
the real console server, and a sandbox ERP on loopback that fails first and succeeds later.

Playwright drives the system browser (``/usr/bin/chromium``, from the Debian package
``chromium``; ``.ci/run`` installs it): its own browser download is never used, so
``playwright install`` is never run. ``FLOWRUN_CHROMIUM`` names another binary.

The server is ``create_app`` of a real App under uvicorn on a free loopback port (the webhook
server harness), with the embedded executor running the flow below. Orders come in through the
webhook; the flow validates them and books them in the ERP with a retried call:

* the ERP answers the first request for each order with 503, the next with 201 — so every
  booked order shows two attempts on its ``book`` step;
* an unknown SKU is a 422, not retried: the run is dead-lettered at ``book``;
* while ``erp.down`` is set every request is a 503, so orders are dead-lettered after their
  attempts — until the ERP "comes back" and the operator replays them.

Screenshots go to ``tests/artifacts/`` (git-ignored); the README's ``docs/console.png`` is
copied from one of them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from tests.engine.console.support import FAST_RETRY, TOKEN, console_app
from tests.engine.server_support import Running, serving

ROOT = Path(__file__).resolve().parents[2]
WAIT_MS = 20_000  # a loaded CI machine: generous waits for pages and expectations alike
expect.set_options(timeout=WAIT_MS)
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("FLOWRUN_CHROMIUM", "/usr/bin/chromium")
CATALOG = {"TONER-59X", "PAPER-A4", "STAPLER-2"}

FLOW = """
flow: orders
description: Shop orders, checked and booked in the ERP.
key: $string(order_number)
trigger:
  webhook:
    path: /hooks/orders
    max_body: 16777216  # the huge-payload test sends a few megabytes
{retry}steps:
  - id: check
    validate: {{schema: console/order.v1}}
  - id: book
    call:
      http:
        method: POST
        url: "{erp}/sales-orders"
        json: '{{"order": order_number, "sku": sku, "qty": qty}}'
    output: vars.erp
"""


@dataclass
class Erp:
    """The sandbox ERP's behaviour and what it was sent."""

    down: bool = False
    booked: list[dict[str, Any]] = field(default_factory=list)
    seen: set[Any] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # cleared, requests wait (up to 20 s) until it is set again: work stays in progress
    answering: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.answering.set()

    def answer(self, request: Request) -> Response:
        self.answering.wait(20)
        order = json.loads(request.get_data() or b"{}")
        with self.lock:
            first = order.get("order") not in self.seen
            self.seen.add(order.get("order"))
            if self.down or first:
                return _json(503, {"error": "ERP busy, try again"})
            if order.get("sku") not in CATALOG:
                return _json(422, {"error": f"unknown sku {order.get('sku')}"})
            self.booked.append(order)
            return _json(201, {"erp_order_id": f"SO-{order.get('order')}"})

    def booked_orders(self) -> list[Any]:
        with self.lock:
            return [o["order"] for o in self.booked]


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


@dataclass
class Site:
    """The console under test: its server, the ERP behind it, and a way in."""

    server: Running
    erp: Erp
    artifacts: Path

    @property
    def url(self) -> str:
        return self.server.url

    def send(self, body: Any, **headers: str) -> dict[str, Any]:
        """POST an order to the webhook and wait for its run to finish; the run as JSON."""
        response = self.server.post("/hooks/orders", json.dumps(body),
                                    {"Content-Type": "application/json", **headers})
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        tree = self.server.app.wait_for(run_id, timeout=30)
        assert tree and tree[0].done, tree
        return {"run_id": run_id, "status": tree[0].status}

    def log_in(self, page: Page, token: str = TOKEN) -> None:
        page.goto(self.url + "/console/")
        assert "/console/login" in page.url  # no session yet: sent to the login form
        page.fill("#token", token)
        page.click("#login")

    def shot(self, page: Page, name: str) -> Path:
        path = self.artifacts / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


def order(number: int, sku: str = "TONER-59X", qty: Any = 2, **extra: Any) -> dict[str, Any]:
    return {"order_number": number, "sku": sku, "qty": qty, **extra}


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install the Debian package `chromium` "
                    "(.ci/run does), or set FLOWRUN_CHROMIUM to a Chromium binary")
    # /dev/shm is small in containers; Chromium falls back to /tmp with this switch
    launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                          args=["--disable-dev-shm-usage"])
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    try:
        yield opened
    finally:
        context.close()


@pytest.fixture
def site(tmp_path: Path, httpserver: HTTPServer) -> Iterator[Site]:
    erp = Erp()
    httpserver.expect_request("/sales-orders", method="POST").respond_with_handler(erp.answer)
    erp_url = httpserver.url_for("/").rstrip("/")
    app = console_app(tmp_path, flows={"orders": FLOW.format(erp=erp_url, retry=FAST_RETRY)})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serving(app) as server:
        try:
            yield Site(server, erp, ARTIFACTS)
        finally:
            # a test that held the ERP's answers back and failed: let waiting requests go
            # before the server stops (else each waits out its 20 s)
            erp.answering.set()


def publish(screenshot: Path, name: str) -> None:
    """Copy a screenshot into docs/ for the README, when FLOWRUN_UPDATE_DOCS=1 asks for it
    (an ordinary test run leaves the committed picture alone)."""
    if os.environ.get("FLOWRUN_UPDATE_DOCS") != "1":
        return
    target = ROOT / "docs" / name
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(screenshot, target)
