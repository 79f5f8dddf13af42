"""The operations console in a real browser: headless Chromium on the real server.

The main path is the one an operator walks when an order is stuck: log in, find the run by its
order number, read its timeline, open its dead-letter entry, fix the body, replay it and see the
replayed run succeed in the ERP. Then the bulk path after an ERP outage, and the bad input the
issue names: a wrong token, an unknown run, an edited body that still fails validation, a huge
payload, and a payload that carries a script.
"""

from __future__ import annotations

import json
import re

from playwright.sync_api import Dialog, Page, expect
from pytest_httpserver import HTTPServer

from engine.store.base import DeadLetterFilter
from tests.browser.conftest import Site, order, publish

FIXED = re.compile(r"/console/runs/[0-9a-f]{8,}")


def test_find_a_stuck_order_fix_it_and_replay_it(site: Site, page: Page) -> None:
    assert site.send(order(10044))["status"] == "succeeded"
    stuck = site.send(order(10045, sku="TONER-59"), **{"X-Correlation-ID": "shop-10045"})
    assert stuck["status"] == "dead_lettered"

    site.log_in(page)
    expect(page.locator("#flows")).to_contain_text("orders")
    expect(page.locator("#flows")).to_contain_text("1 open")  # the dead-letter depth
    expect(page.locator("#flows")).to_contain_text("50.0 %")  # one of two runs succeeded
    site.shot(page, "flows")

    # where is order 10045?
    page.click("nav >> text=Runs")
    page.fill("#key", "10045")
    page.click("#search")
    rows = page.locator("#runs tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("dead_lettered")
    expect(rows.first).to_contain_text("book (http 422)")
    site.shot(page, "runs")

    # its timeline: validated, then booked twice (503, then the 422 that stopped it)
    rows.first.locator("a").first.click()
    expect(page.locator("#run-status")).to_have_text("dead_lettered")
    expect(page.locator("#run-key")).to_have_text("10045")
    expect(page.locator("body")).to_contain_text("shop-10045")  # the sender's correlation id
    steps = page.locator("#timeline li")
    expect(steps).to_have_count(2)
    expect(steps.nth(0)).to_contain_text("check")
    expect(steps.nth(0)).to_contain_text("succeeded")
    expect(steps.nth(1)).to_contain_text("book")
    expect(steps.nth(1)).to_contain_text("2 attempts")
    expect(steps.nth(1)).to_contain_text("422")
    timeline = site.shot(page, "run")
    publish(timeline, "console.png")

    # the dead-letter entry: fix the SKU in the body and replay from the failed step
    page.click("#entry-link")
    expect(page.locator("#entry-status")).to_have_text("open")
    body = json.loads(page.input_value("#body"))
    assert body == {"order_number": 10045, "sku": "TONER-59", "qty": 2}
    page.fill("#body", json.dumps({**body, "sku": "TONER-59X"}, indent=2))
    page.keyboard.type(" ")  # typing in the body ticks "replace the body" (console.js)
    expect(page.locator("#edit_body")).to_be_checked()
    site.shot(page, "entry")
    page.click("#replay")

    # the replayed run: the page follows it until it has finished
    page.wait_for_url(FIXED)
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("body")).to_contain_text("Replay of")
    site.shot(page, "replayed")
    assert site.erp.booked_orders() == [10044, 10045]
    assert site.erp.booked[-1]["sku"] == "TONER-59X"

    # the entry remembers who replayed it, how, and what came of it
    page.click("#replay-of")
    expect(page.locator("#entry-status")).to_have_text("replayed")
    audit = page.locator("#audit tbody tr")
    expect(audit).to_have_count(1)
    expect(audit.first).to_contain_text("console:token")
    expect(audit.first).to_contain_text("edited: True")


def test_after_an_outage_replay_every_matching_entry_with_progress(site: Site,
                                                                     page: Page) -> None:
    site.erp.down = True
    for number in (20001, 20002, 20003):
        assert site.send(order(number))["status"] == "dead_lettered"
    site.erp.down = False  # the ERP came back

    site.log_in(page)
    page.click("nav >> text=Dead letters")
    page.fill("input[name=error]", "503")
    page.click("text=Filter")
    expect(page.locator("#entries tbody tr")).to_have_count(3)
    site.shot(page, "dlq")

    asked: list[str] = []

    def confirm(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", confirm)
    site.erp.answering.clear()  # the replayed runs wait at the ERP: the job page shows them pending
    page.click("#replay-all")
    page.wait_for_url(re.compile(r"/console/jobs/"))
    page.evaluate("window.__same_page = true")
    expect(page.locator("#job-runs")).to_contain_text(re.compile("queued|running"))
    site.erp.answering.set()
    # the page follows the job through the API, without reloading
    expect(page.locator("#job-state")).to_have_text("done", timeout=30_000)
    expect(page.locator("#job-runs")).to_have_text("succeeded 3", timeout=30_000)
    assert page.evaluate("window.__same_page") is True
    expect(page.locator("#job-processed")).to_have_text("3")
    site.shot(page, "job")
    assert asked == ["Replay every entry matching these filters?"]
    assert sorted(site.erp.booked_orders()) == [20001, 20002, 20003]

    # nothing open is left; the replayed ones are listed as such
    page.goto(site.url + "/console/dlq")
    expect(page.locator("#entries")).to_contain_text("No entry matches.")
    page.goto(site.url + "/console/dlq?status=replayed")
    expect(page.locator("#entries tbody tr")).to_have_count(3)


def test_discard_asks_first_and_lands_on_the_audit_trail(site: Site, page: Page) -> None:
    assert site.send(order(30001, sku="NOPE"))["status"] == "dead_lettered"
    site.log_in(page)
    page.goto(site.url + "/console/dlq")
    page.locator("#entries tbody tr a").first.click()
    page.fill("#reason", "cancelled by customer")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#discard")
    expect(page.locator("#entry-status")).to_have_text("discarded")
    expect(page.locator("#audit")).to_contain_text("cancelled by customer")
    expect(page.locator("#replay")).to_have_count(0)  # a discarded entry is never replayed


# -- bad input ----------------------------------------------------------------------------------
def test_wrong_token_is_refused_and_shows_no_data(site: Site, page: Page) -> None:
    site.send(order(40001, sku="SECRET-SKU"))
    with page.expect_response(lambda r: r.request.method == "POST") as login:
        site.log_in(page, token="not-the-token")
    assert login.value.status == 401
    expect(page.locator("#login-error")).to_contain_text("Wrong token")
    assert "/console/login" in page.url
    assert "SECRET-SKU" not in page.content() and "40001" not in page.content()
    api = page.request.get(site.url + "/api/runs",
                           headers={"Authorization": "Bearer not-the-token"})
    assert api.status == 401
    assert "40001" not in api.text()
    page.goto(site.url + "/console/runs?key=40001")
    assert "/console/login" in page.url  # still no session: back to the login form


def test_unknown_run_is_a_404_page(site: Site, page: Page) -> None:
    site.log_in(page)
    response = page.goto(site.url + "/console/runs/0123456789abcdef0123456789abcdef")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("404 · No such run")
    expect(page.locator("#problem-message")).to_contain_text("0123456789abcdef")


def test_replay_with_a_body_that_fails_validation_shows_why_and_keeps_the_entry(
        site: Site, page: Page) -> None:
    assert site.send(order(50001, sku="TONER-5"))["status"] == "dead_lettered"
    site.log_in(page)
    page.goto(site.url + "/console/dlq")
    page.locator("#entries tbody tr a").first.click()

    # not JSON at all
    page.fill("#body", '{"order_number": 50001, "sku": ')
    page.check("#edit_body")
    page.click("#replay")
    expect(page.locator("#refused")).to_contain_text("not valid JSON")
    expect(page.locator("#entry-status")).to_have_text("open")

    # JSON, but the flow's validation still refuses it: replayed from the start, it is checked
    page.fill("#body", json.dumps({"order_number": 50001, "sku": "TONER-59X", "qty": "two"}))
    page.check("#edit_body")
    page.select_option("select[name=start_from]", "start")
    page.click("#replay")
    expect(page.locator("#refused")).to_contain_text("Replay refused; the entry is kept.")
    expect(page.locator("#violations")).to_contain_text("qty")
    expect(page.locator("#entry-status")).to_have_text("open")
    expect(page.locator("#body")).to_have_value(re.compile('"two"'))  # the draft is kept
    expect(page.locator("select[name=start_from]")).to_have_value("start")  # and the choice
    site.shot(page, "refused")
    assert site.erp.booked_orders() == []


def test_huge_payload_is_shown_truncated(site: Site, page: Page) -> None:
    note = "x" * 3_000_000
    assert site.send(order(60001, sku="BIG", note=note))["status"] == "dead_lettered"
    site.log_in(page)
    page.goto(site.url + "/console/runs?key=60001")
    page.locator("#runs tbody tr a").first.click()
    expect(page.locator(".truncated").first).to_contain_text("Truncated")
    shown = page.evaluate("Math.max(...[...document.querySelectorAll('pre.json')]"
                          ".map(p => p.textContent.length))")
    assert 0 < shown <= 16_000  # the first kilobytes, not three megabytes
    assert len(page.content()) < 200_000
    page.click("#entry-link")
    expect(page.locator(".truncated").first).to_contain_text("Truncated")
    # too large to edit in a form: the page says how to replay it instead
    expect(page.locator("body")).to_contain_text("too large to edit here")


def test_html_in_payloads_is_shown_as_text_and_never_runs(site: Site, page: Page) -> None:
    attack = ('<script>window.__owned = 1; alert("owned")</script>'
              '<img src=x onerror="window.__owned = 2">')
    # the order number is the business key: the attack shows in the lists too
    run = site.send({"order_number": attack, "sku": attack, "qty": 1})
    assert run["status"] == "dead_lettered"
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    site.log_in(page)
    entry = site.server.app.store.list_dead_letters(DeadLetterFilter(flow="orders"))[0]
    for path in ("/console/runs", f"/console/runs/{run['run_id']}", "/console/dlq",
                 f"/console/dlq/{entry.id}"):
        page.goto(site.url + path)
        expect(page.locator("main")).to_contain_text('<script>window.__owned = 1; alert("owned")'
                                                     '</script><img src=x onerror=')
        assert page.evaluate("window.__owned") is None
        assert page.locator("main script, main img").count() == 0  # no element made of it
    assert dialogs == []


def test_state_changes_need_the_session_csrf_token(site: Site, page: Page,
                                                   httpserver: HTTPServer) -> None:
    assert site.send(order(80001, sku="NOPE"))["status"] == "dead_lettered"
    entry = site.server.app.store.list_dead_letters(DeadLetterFilter(flow="orders"))[0]
    site.log_in(page)
    expect(page.locator("#flows")).to_contain_text("orders")

    # another site's page posts a replay with the operator's browser: the session cookie is
    # SameSite=Strict, so the console sees no session at all
    forged = (f'<form method="post" action="{site.url}/console/dlq/{entry.id}/replay">'
              '<input name="edit_body" value="on"><input name="body" value="{}"></form>'
              "<script>document.forms[0].submit()</script>")
    httpserver.expect_request("/evil").respond_with_data(forged, content_type="text/html")
    page.goto(httpserver.url_for("/evil"))
    page.wait_for_url(re.compile(r"/console/dlq/.*/replay"))
    expect(page.locator("h1")).to_have_text("401 · Not signed in")

    # a script on the console's own origin has the cookie but not the token: refused too
    page.goto(site.url + "/console/")
    statuses = page.evaluate("""async (id) => {
        const form = await fetch(`/console/dlq/${id}/replay`, {method: "POST",
            headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "x=1"});
        const api = await fetch(`/api/dead-letters/${id}/discard`, {method: "POST",
            headers: {"Content-Type": "application/json"}, body: "{}"});
        return [form.status, api.status];
    }""", entry.id)
    assert statuses == [403, 403]
    kept = site.server.app.store.get_dead_letter(entry.id)
    assert kept is not None and kept.status == "open" and kept.audit == []

    # with the token the page carries, the same API call goes through
    discarded = page.evaluate("""async (id) => {
        const token = document.querySelector('meta[name=csrf-token]').content;
        const r = await fetch(`/api/dead-letters/${id}/discard`, {method: "POST",
            headers: {"Content-Type": "application/json", "X-CSRF-Token": token},
            body: JSON.stringify({reason: "duplicate order"})});
        return [r.status, (await r.json()).status];
    }""", entry.id)
    assert discarded == [200, "discarded"]


def test_the_partners_answer_is_on_the_run_and_entry_pages_and_a_failed_replay_stays_one_entry(
        site: Site, page: Page) -> None:
    stuck = site.send(order(10059, sku="DISCONTINUED-HP-59A"))
    assert stuck["status"] == "dead_lettered"

    site.log_in(page)
    page.goto(f"{site.url}/console/runs/{stuck['run_id']}")
    answer = page.locator("#answer")
    expect(answer).to_contain_text("Partner's answer")
    expect(page.locator("#answer-status")).to_have_text("HTTP 422")
    expect(page.locator("#answer-body")).to_contain_text("unknown sku DISCONTINUED-HP-59A")
    expect(page.locator("#answer-headers")).to_contain_text("application/json")
    site.shot(page, "run-answer")

    # replayed unchanged: the ERP refuses it again, and it is still the one entry
    page.click("#entry-link")
    expect(page.locator("#answer-body")).to_contain_text("DISCONTINUED-HP-59A")
    page.click("#replay")
    page.wait_for_url(FIXED)
    expect(page.locator("#run-status")).to_have_text("dead_lettered", timeout=30_000)
    expect(page.locator("#answer-body")).to_contain_text("DISCONTINUED-HP-59A")
    page.click("#entry-link")
    expect(page.locator("#entry-status")).to_have_text("open")
    audit = page.locator("#audit tbody tr")
    expect(audit).to_have_count(1)
    expect(audit.first).to_contain_text("dead_lettered")
    expect(audit.first).to_contain_text("422")
    site.shot(page, "entry-answer")
    page.click("nav >> text=Dead letters")
    expect(page.locator("#entries tbody tr")).to_have_count(1)
    page.goto(site.url + "/console/")
    expect(page.locator("#flows")).to_contain_text("1 open")
    assert len(site.server.app.store.list_dead_letters(DeadLetterFilter(status=None))) == 1
