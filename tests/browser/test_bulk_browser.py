"""Fixing many dead letters at once in a real browser: tick entries on the dead-letter list,
confirm how many, preview a JSONata patch on the first three, and watch the job replay them.

The sandbox ERP of conftest refuses an article it does not know with a 422: the orders below
name a discontinued one, and the patch swaps it for its successor.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from playwright.sync_api import Page, expect
from pytest_httpserver import HTTPServer

from engine import dlq_patch
from engine.records import DeadLetter
from engine.store.base import BulkJob, DeadLetterFilter
from engine.store.sqlite import SqliteStore
from tests.browser.conftest import ARTIFACTS, FLOW, Erp, Site, order
from tests.engine.console.support import FAST_RETRY, TOKEN, console_app
from tests.engine.server_support import serving

OLD, NEW = "DISCONTINUED-HP-59A", "TONER-59X"
PATCH = f'$merge([$, {{"sku": "{NEW}"}}])'


def test_select_preview_confirm_and_replay_many_with_a_patch(site: Site, page: Page) -> None:
    numbers = list(range(20500, 20506))
    for number in numbers:
        assert site.send(order(number, sku=OLD))["status"] == "dead_lettered"

    site.log_in(page)
    page.goto(site.url + "/console/dlq?flow=orders")
    picks = page.locator("input.pick")
    expect(picks).to_have_count(6)
    page.check("#pick-page")  # every entry on the page…
    expect(page.locator("#picked")).to_have_text("6")
    picks.first.uncheck()  # …but the newest one
    expect(page.locator("#picked")).to_have_text("5")
    kept = picks.first.get_attribute("value")
    site.shot(page, "bulk-select")
    page.click("#bulk-replay")

    expect(page.locator("#bulk-count")).to_have_text("5")
    expect(page.locator("#bulk-flows")).to_contain_text("orders")
    page.fill("#patch", PATCH)
    page.click("#bulk-preview")
    previews = page.locator("section.preview")
    expect(previews).to_have_count(3)
    expect(previews.first.locator(".preview-diff")).to_contain_text(f'+  "sku": "{NEW}"')
    expect(previews.first.locator(".preview-diff")).to_contain_text(f'-  "sku": "{OLD}"')
    expect(previews.first.locator(".preview-path")).to_contain_text("stopped before 'book'")
    expect(page.locator("#bulk-count")).to_have_text("5")  # the selection survives the preview
    site.shot(page, "bulk-preview")
    assert site.erp.booked_orders() == []  # previewing calls nobody
    page.click("#bulk-go")

    expect(page.locator("#job-state")).to_have_text("done")
    expect(page.locator("#job-runs")).to_have_text("succeeded 5", timeout=30_000)
    expect(page.locator("#job-patch")).to_have_text(PATCH)
    site.shot(page, "bulk-job")
    assert len(site.erp.booked_orders()) == 5
    assert {o["sku"] for o in site.erp.booked} == {NEW}

    entries = site.server.app.store.list_dead_letters(DeadLetterFilter(flow="orders",
                                                                       status=None))
    status = {e.id: e.status for e in entries}
    assert status.pop(kept or "") == "open"
    assert set(status.values()) == {"replayed"}
    page.goto(site.url + f"/console/dlq/{next(iter(status))}")
    expect(page.locator("#audit")).to_contain_text("patch: $merge")


class HeldStore(SqliteStore):
    """The real SQLite store; reading the chosen entry waits until the test lets it go on, and
    then fails as a bug would."""

    poisoned: str | None = None
    release = threading.Event()

    def get_dead_letter(self, entry_id: str) -> DeadLetter | None:
        if entry_id == self.poisoned:
            self.release.wait(20)
            raise RuntimeError("entry could not be decoded")
        return super().get_dead_letter(entry_id)


def test_a_job_page_shows_why_the_job_stopped_while_following_it(
        tmp_path: Path, httpserver: HTTPServer, page: Page) -> None:
    erp = Erp()
    httpserver.expect_request("/sales-orders", method="POST").respond_with_handler(erp.answer)
    store = HeldStore(tmp_path / "held.db")
    store.release = threading.Event()
    app = console_app(tmp_path, store=store, flows={"orders": FLOW.format(
        erp=httpserver.url_for("/").rstrip("/"), retry=FAST_RETRY)})
    with serving(app) as server:
        site = Site(server, erp, ARTIFACTS)
        for number in (20600, 20601):
            assert site.send(order(number, sku=OLD))["status"] == "dead_lettered"
        ids = sorted(e.id for e in store.list_dead_letters(DeadLetterFilter(flow="orders")))
        store.poisoned = ids[0]
        answer = server.http.post(server.url + "/api/replay-jobs", json={"entries": ids},
                                  headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 202, answer.text
        site.log_in(page)
        page.goto(site.url + f"/console/jobs/{answer.json()['id']}")
        expect(page.locator("#job-state")).to_have_text("running")
        expect(page.locator("#job-error")).to_have_count(0)
        store.release.set()
        expect(page.locator("#job-error")).to_contain_text(
            "The job stopped: RuntimeError: entry could not be decoded")
        expect(page.locator("#job-untouched")).to_have_text("2")
        expect(page.locator("#job-state")).to_have_text("failed")
        store.poisoned = None
        every = store.list_dead_letters(DeadLetterFilter(flow="orders", status=None))
        assert sorted(e.id for e in every if e.status == "open") == ids


def test_a_job_whose_process_stopped_is_shown_interrupted_and_resumed_from_its_page(
        tmp_path: Path, httpserver: HTTPServer, page: Page) -> None:
    erp = Erp()
    httpserver.expect_request("/sales-orders", method="POST").respond_with_handler(erp.answer)
    app = console_app(tmp_path, flows={"orders": FLOW.format(
        erp=httpserver.url_for("/").rstrip("/"), retry=FAST_RETRY)}, console_job_stale=2.0)
    with serving(app) as server:
        site = Site(server, erp, ARTIFACTS)
        for number in range(20700, 20704):
            assert site.send(order(number, sku=OLD))["status"] == "dead_lettered"
        store = server.app.store
        ids = sorted(e.id for e in store.list_dead_letters(DeadLetterFilter(flow="orders")))
        # what another server process leaves when it is killed after one entry of its job
        now = time.time()
        store.put_job(BulkJob("stopped0001", "console:carol", ids, patch=PATCH,
                              owner="elsewhere:4242", created_at=now, updated_at=now))
        run = dlq_patch.replay(server.app, ids[0], dlq_patch.Patch(PATCH), who="console:carol")
        assert store.add_job_outcome("stopped0001", ids[0], "started", run.run_id, now)

        site.log_in(page)
        page.goto(site.url + "/console/jobs/stopped0001")
        expect(page.locator("#job-resume")).to_have_count(0)
        # no progress for console_job_stale: the page, following the job, says it stopped
        expect(page.locator("#job-state")).to_have_text("interrupted", timeout=20_000)
        expect(page.locator("#job-interrupted")).to_contain_text("elsewhere:4242")
        expect(page.locator("#job-untouched")).to_have_text("3")
        expect(page.locator("#job-uncertain")).to_have_text(ids[1])
        site.shot(page, "bulk-job-interrupted")
        page.click("#job-resume")

        expect(page.locator("#job-resumed-from")).to_contain_text("stopped0001")
        expect(page.locator("#job-state")).to_have_text("done")
        expect(page.locator("#job-total")).to_have_text("2")
        expect(page.locator("#job-runs")).to_have_text("succeeded 2", timeout=30_000)
        expect(page.locator("#job-patch")).to_have_text(PATCH)
        page.goto(site.url + "/console/jobs/stopped0001")
        expect(page.locator("#job-resumed-as")).to_be_visible()
        expect(page.locator("#job-resume")).to_have_count(0)
        server.app.wait_for(run.run_id)
        status = {e.id: e.status for e in store.list_dead_letters(
            DeadLetterFilter(flow="orders", status=None))}
        assert status == {ids[0]: "replayed", ids[1]: "open", ids[2]: "replayed",
                          ids[3]: "replayed"}  # the uncertain one is left for the operator
        assert len(erp.booked_orders()) == 3
