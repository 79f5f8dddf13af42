"""The flows page's health over a window, over real HTTP: ``/api/activity`` and the page's
table carry the numbers of the runs that went through the real app (and of runs written with
chosen times through the store), windows are kept in the URL, and bad choices are a 400 that
says what fits. The charts themselves are drawn in tests/browser/test_activity_browser.py.
"""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path

import pytest

from engine.console.models import Activity
from engine.records import RunState
from engine.store.activity import LATENCY_EDGES
from engine.store.redis import RedisStore
from tests.engine.console.support import (
    bearer,
    console,
    console_app,
    dead_letter,
    logged_in,
    order,
    send,
)
from tests.engine.server_support import Running, serving


def earlier(server: Running, run_id: str, status: str, hours_ago: float, took: float) -> None:
    """A run of the order flow written through the store: received *hours_ago*, finished
    *took* seconds later."""
    at = time.time() - hours_ago * 3600
    server.app.store.save_run(RunState(
        run_id=run_id, flow_id="orders", flow_version="v1", envelope={"body": {}},
        original={"body": {}}, status=status, created_at=at, updated_at=at + took))


def activity(server: Running, **params: str) -> Activity:
    answer = server.http.get(server.url + "/api/activity", params=params, headers=bearer())
    assert answer.status_code == 200, answer.text
    return Activity.model_validate(answer.json())


def check_windows(server: Running) -> None:
    for n in (1, 2, 3):
        assert send(server, order(n, qty=2)).status == "succeeded"
    dead_letter(server, 4)
    earlier(server, "three-hours-ago", "failed", 3, 40)
    earlier(server, "two-days-ago", "succeeded", 49, 700)

    hour = activity(server, window="1h")
    assert (hour.window, hour.flow, hour.bucket_seconds, len(hour.buckets)) == ("1h", None, 60,
                                                                                60)
    assert hour.until - hour.since == 3600 and hour.buckets[-1].start <= time.time()
    assert (hour.total.finished, hour.total.failed, hour.total.dead_letters) == (4, 1, 1)
    assert hour.total.error_rate == 25.0
    # the four runs' own durations are the machine's: the figure is the upper edge of a bucket
    assert hour.total.p95_seconds in LATENCY_EDGES
    assert sum(b.finished for b in hour.buckets) == 4

    day = activity(server, window="24h", flow="orders")
    assert (day.bucket_seconds, len(day.buckets), day.flow) == (1800, 48, "orders")
    assert (day.total.finished, day.total.failed, day.total.error_rate) == (5, 2, 40.0)
    assert day.total.p95_seconds == 50.0  # the 40-second run is the 95th percentile

    week = activity(server, window="7d")
    assert (week.bucket_seconds, len(week.buckets)) == (3600, 168)
    assert (week.total.finished, week.total.failed, week.total.dead_letters) == (6, 2, 1)
    assert week.total.p95_seconds == 1000.0
    [old] = [b for b in week.buckets if b.p95_seconds == 1000.0]
    two_days = server.app.store.get_run("two-days-ago")
    assert two_days is not None and old.start <= two_days.updated_at < old.start + 3600


def test_api_activity_counts_runs_by_window(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        check_windows(server)


def test_api_activity_on_the_redis_store(tmp_path: Path, redis_url: str) -> None:
    with serving(console_app(tmp_path, store=RedisStore(redis_url))) as server:
        check_windows(server)


def test_the_flows_page_carries_the_same_numbers_as_a_table(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        send(server, order(1, qty=2))
        dead_letter(server, 2)
        http = logged_in(server)
        page = http.get(server.url + "/console/", params={"window": "1h", "flow": "orders"})
        assert page.status_code == 200
        text = page.text
        assert "Health, last hour · orders" in text
        assert re.search(r'data-window="1h"\s+class="on" aria-current="page"', text)
        start = text.index('id="activity-data">') + len('id="activity-data">')
        carried = Activity.model_validate(json.loads(html.unescape(
            text[start:text.index("</script>", start)])))
        api = activity(server, window="1h", flow="orders")
        assert carried.total == api.total and carried.since == api.since
        assert (carried.total.finished, carried.total.failed) == (2, 1)
        assert text.count("<tr><th scope=\"row\">") == 60  # one table row per minute
        assert "/console/static/vendor/uplot/uPlot.iife.min.js" in text
        # the other windows are links that keep the flow
        assert 'href="/console/?window=7d&amp;flow=orders"' in text
        assert 'href="/console/dlq?flow=orders&amp;since=1h&amp;status=all"' in text
        script = server.http.get(server.url + "/console/static/vendor/uplot/uPlot.iife.min.js")
        assert script.status_code == 200 and "uPlot" in script.text


@pytest.mark.parametrize(("params", "message"), [
    ({"window": "2d"}, "window: '2d' is not a window; choose one of 1h, 24h, 7d"),
    ({"flow": "order"}, "flow: no flow 'order' is loaded; did you mean 'orders'?"),
])
def test_bad_windows_and_flows_are_400_with_the_reason(tmp_path: Path, params: dict[str, str],
                                                       message: str) -> None:
    with console(tmp_path) as server:
        api = server.http.get(server.url + "/api/activity", params=params, headers=bearer())
        assert (api.status_code, api.json()) == (400, {"error": message})
        page = logged_in(server).get(server.url + "/console/", params=params)
        assert page.status_code == 400 and message in html.unescape(page.text)
        assert "Traceback" not in page.text


def test_the_activity_api_needs_credentials(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        send(server, order(1, qty=2))
        answer = server.http.get(server.url + "/api/activity")
        assert answer.status_code == 401 and "buckets" not in answer.text
        spec = server.http.get(server.url + "/api/openapi.json").json()
        assert "/api/activity" in spec["paths"] and "Activity" in spec["components"]["schemas"]
