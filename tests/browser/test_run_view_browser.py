"""See what each step did, and find runs and dead letters, in a real browser.

An operator filters the dead-letter list down to the ERP's 422 answers, opens the entry's run,
unfolds its steps and reads what each was given and left — the card token masked — and then
finds the customer's other orders by a field of their payload.
"""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import Site, order


def test_filter_dead_letters_open_the_run_read_its_steps_and_search_a_payload(
        site: Site, page: Page) -> None:
    customer = {"email": "ann@example.com"}
    card = {"card_token": "tok_live_4242424242"}
    assert site.send(order(20001, customer=customer, payment=card))["status"] == "succeeded"
    assert site.send(order(20002, sku="NO-SUCH-SKU", customer=customer,
                           payment=card))["status"] == "dead_lettered"
    site.erp.down = True
    assert site.send(order(20003, customer={"email": "bob@example.com"}))["status"] == \
        "dead_lettered"
    site.erp.down = False

    site.log_in(page)
    page.click("nav >> text=Dead letters")
    expect(page.locator("#entries tbody tr")).to_have_count(2)
    page.select_option("#kind", "http")
    page.fill("#http-status", "422")
    page.click("text=Filter")
    rows = page.locator("#entries tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("book (http 422)")
    rows.first.locator("a").first.click()
    page.click("dt:has-text('Run') + dd a")

    expect(page.locator("#run-status")).to_have_text("dead_lettered")
    check, book = page.locator("#io-1"), page.locator("#io-2")
    expect(check).not_to_have_attribute("open", "")  # folded until asked for
    check.locator("summary").click()
    expect(check).to_contain_text('"email": "ann@example.com"')
    expect(check).to_contain_text('"card_token": "***"')
    expect(check).to_contain_text("did not change it")
    book.locator("summary").click()
    expect(book).to_contain_text('"order_number": 20002')
    expect(book).to_contain_text("None: the step failed")
    expect(page.locator("body")).not_to_contain_text("tok_live_4242424242")
    site.shot(page, "run-steps")

    page.click("nav >> text=Runs")
    page.fill("#payload", "customer.email = ann@example.com")
    page.click("#search")
    found = page.locator("#runs tbody tr")
    expect(found).to_have_count(2)
    expect(found.nth(0)).to_contain_text("dead_lettered")
    expect(found.nth(1)).to_contain_text("succeeded")
    expect(page.locator("#searched")).to_contain_text("searched the latest 10,000 runs")
    page.fill("#payload", "customer.email")
    page.click("#search")
    expect(page.locator("body")).to_contain_text("customer.email = a@example.com")
