"""The flows page's health charts in a real browser: what the charts hold and draw is what the
store counted.

Orders go through the real webhook and ERP sandbox (two booked, one dead-lettered); an
"overnight" order that failed five hours ago is written through the store with its times. The
page is opened in headless Chromium, windows and flows are switched by the links and the select,
and each time the series the uPlot charts hold are read back, compared with ``/api/activity``
and with the expected counts, and the bars drawn on the canvas are counted. Without script, the
same numbers are a table.
"""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Browser, Page, expect

from engine.records import DeadLetter, RunState
from engine.store.base import RunFilter
from tests.browser.conftest import WAIT_MS, Site, order

FIELDS = ("finished", "error_rate", "p95_seconds", "dead_letters")

# the bars of a chart cut by a horizontal line just above zero: runs of coloured (the series')
# pixels
COUNT_BARS = """
([field, value]) => {
  const chart = window.flowrunCharts[field];
  const canvas = chart.ctx.canvas;
  const y = Math.round(chart.valToPos(value, "y", true));
  const row = chart.ctx.getImageData(0, y, canvas.width, 1).data;
  let bars = 0, inside = false;
  for (let i = 0; i < row.length; i += 4) {
    const [r, g, b] = [row[i], row[i + 1], row[i + 2]];  // grid and axes are grey: r = g = b
    const coloured = row[i + 3] > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 60;
    if (coloured && !inside) { bars += 1; }
    inside = coloured;
  }
  return bars;
}
"""


def overnight(site: Site, hours_ago: float = 5) -> None:
    """An order received *hours_ago* that was dead-lettered 40 seconds later, with its entry."""
    at = time.time() - hours_ago * 3600
    state = RunState(run_id="overnight-1", flow_id="orders", flow_version="v1",
                     envelope={"body": order(9001)}, original={"body": order(9001)},
                     status="dead_lettered", key="9001", created_at=at, updated_at=at + 40)
    entry = DeadLetter(id="overnight-entry", run_id=state.run_id, flow_id="orders",
                       flow_version="v1", step="book", reason={"message": "ERP answered 503"},
                       original=state.original, envelope=state.envelope, created_at=at + 40)
    site.server.app.store.save_run(state, dead_letter=entry)


def charted(page: Page) -> dict[str, Any]:
    """The series each chart holds: {field: [xs, ys]}."""
    page.wait_for_function("window.flowrunCharts && Object.keys(window.flowrunCharts).length"
                           " === 4", timeout=WAIT_MS)
    held: dict[str, Any] = page.evaluate(
        "Object.fromEntries(Object.entries(window.flowrunCharts).map(([k, c]) => [k, c.data]))")
    return held


def api(page: Page, query: str) -> dict[str, Any]:
    """/api/activity as the page's own session reads it (the session cookie, a GET)."""
    answer: dict[str, Any] = page.evaluate(
        "q => fetch('/api/activity?' + q, {credentials: 'same-origin'}).then(r => r.json())",
        query)
    return answer


def expected(site: Site, since: float, width: int, count: int) -> list[int]:
    """Runs finished per bucket, from the runs' own times as the store keeps them."""
    per = [0] * count
    for state in site.server.app.store.list_runs(RunFilter(limit=200)):
        index = int((state.updated_at - since) // width)
        if state.done and 0 <= index < count:
            per[index] += 1
    return per


def same_as_api(held: dict[str, Any], answer: dict[str, Any]) -> None:
    for field in FIELDS:
        xs, ys = held[field]
        assert xs == [b["start"] for b in answer["buckets"]]
        assert ys == [b[field] for b in answer["buckets"]], field


def test_the_charts_draw_the_windows_the_store_counted(site: Site, page: Page) -> None:
    assert site.send(order(1))["status"] == "succeeded"  # booked at the second attempt
    assert site.send(order(2))["status"] == "succeeded"
    assert site.send(order(3, sku="NOPE"))["status"] == "dead_lettered"  # the ERP's 422
    overnight(site)

    site.log_in(page)
    expect(page.locator("#activity-title")).to_have_text("Health, last 24 hours · all flows")
    held = charted(page)
    answer = api(page, "window=24h")
    same_as_api(held, answer)
    xs, finished = held["finished"]
    assert (len(xs), xs[1] - xs[0]) == (48, 1800)  # half hours
    assert finished == expected(site, xs[0], 1800, 48)
    assert sum(finished) == 4 and sum(held["dead_letters"][1]) == 2
    assert max(p for p in held["p95_seconds"][1] if p is not None) == 50.0  # 40 s overnight
    assert 100.0 in held["error_rate"][1]  # the overnight order's half hour
    # drawn: one bar per half hour with runs, nothing where there were none
    assert page.evaluate(COUNT_BARS, ["finished", 0.5]) == sum(1 for n in finished if n)
    assert page.evaluate(COUNT_BARS, ["dead_letters", 0.5]) == sum(
        1 for n in held["dead_letters"][1] if n)
    assert page.evaluate("window.flowrunCharts.finished.axes.map(a => a.label)") == [
        "Time (UTC)", "runs"]
    expect(page.locator("#activity-table")).not_to_have_attribute("open", "")
    site.shot(page, "activity-24h")

    # the legend follows the pointer: over the tallest bar it says how many runs it stands for
    box = page.locator('.chart[data-chart="finished"] .u-over').bounding_box()
    assert box is not None
    x, y = page.evaluate("""() => { const c = window.flowrunCharts.finished;
        const i = c.data[1].indexOf(Math.max(...c.data[1]));
        return [c.valToPos(c.data[0][i] + 900, "x"), c.valToPos(0.5, "y")]; }""")
    page.mouse.move(box["x"] + x, box["y"] + y)
    legend = page.locator('.chart[data-chart="finished"] .u-legend .u-series').nth(1)
    expect(legend).to_contain_text("Runs finished")
    expect(legend.locator(".u-value")).to_have_text(str(max(finished)))

    # the last hour, in minutes: only the three runs of just now
    page.click('nav.windows a[data-window="1h"]')
    page.wait_for_url("**/console/?window=1h")
    expect(page.locator("#activity-title")).to_have_text("Health, last hour · all flows")
    held = charted(page)
    same_as_api(held, api(page, "window=1h"))
    assert len(held["finished"][0]) == 60 and sum(held["finished"][1]) == 3
    assert sum(held["dead_letters"][1]) == 1

    # one flow, kept with the window: the select shows it at once
    page.select_option("#activity-flow", "orders")
    page.wait_for_url("**/console/?window=1h&flow=orders")
    held = charted(page)
    same_as_api(held, api(page, "window=1h&flow=orders"))

    # the week, in hours: everything, the overnight order in its own hour
    page.click('nav.windows a[data-window="7d"]')
    page.wait_for_url("**/console/?window=7d&flow=orders")
    held = charted(page)
    same_as_api(held, api(page, "window=7d&flow=orders"))
    xs, finished = held["finished"]
    assert (len(xs), xs[1] - xs[0], sum(finished)) == (168, 3600, 4)
    assert finished == expected(site, xs[0], 3600, 168)
    assert page.evaluate(COUNT_BARS, ["finished", 0.5]) == sum(1 for n in finished if n)
    site.shot(page, "activity-7d")


def test_without_script_the_numbers_are_a_table(site: Site, browser: Browser) -> None:
    assert site.send(order(1))["status"] == "succeeded"
    overnight(site, hours_ago=2)
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        site.log_in(page)
        page.goto(site.url + "/console/?window=24h")
        table = page.locator("#activity-table")
        expect(table).to_have_attribute("open", "")
        rows = table.locator("tbody tr")
        expect(rows).to_have_count(48)
        cells = [rows.nth(i).inner_text().split("\t") for i in range(48)]
        busy = [row[1:] for row in cells if row[1] != "0"]
        assert len(busy) == 2, busy
        assert busy[0] == ["1", "1", "100.0 %", "≤ 50 s", "1"]  # two hours ago, 40 s
        assert busy[1][:3] == ["1", "0", "0.0 %"] and busy[1][3].startswith("≤ ")
        expect(page.locator("#activity-total")).to_contain_text("2 runs finished")
    finally:
        context.close()
