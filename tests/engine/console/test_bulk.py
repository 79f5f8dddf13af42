"""Acting on many dead letters at once through the real server: tick entries (or all matching a
filter), confirm the count, preview a JSONata patch, and replay or discard them in a background
job — every entry audited with the operator and the patch.

Orders fail for good at the ERP (a loopback server) with a 422 for a discontinued article; the
embedded executor runs the flow.
"""

from __future__ import annotations

import html
import json
import threading
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from engine.console.models import BulkPreview, JobProgress
from engine.records import DeadLetter
from engine.store.base import DeadLetterFilter
from engine.store.sqlite import SqliteStore
from tests.conftest import wait_until
from tests.engine.console.support import (
    FAST_RETRY,
    bearer,
    console_app,
    csrf_of,
    logged_in,
    send,
)
from tests.engine.server_support import SECRETS, Running, serving

FLOW = """
flow: orders
description: Shop orders booked in the ERP.
key: $string(order_number)
trigger:
  webhook: {{path: /hooks/orders}}
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
OLD, NEW = "DISCONTINUED-HP-59A", "TONER-60X"
PATCH = f'$merge([$, {{"sku": sku = "{OLD}" ? "{NEW}" : sku}}])'


class Erp:
    """Books known articles (201); a discontinued one is a 422, which is not retried."""

    def __init__(self) -> None:
        self.booked: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        order = json.loads(request.get_data() or b"{}")
        if order.get("sku") == OLD:
            return Response(json.dumps({"error": f"unknown article {OLD}"}), status=422,
                            content_type="application/json")
        with self.lock:
            self.booked.append(order)
        return Response('{"ok": true}', status=201, content_type="application/json")


def serve(tmp_path: Path, httpserver: HTTPServer) -> tuple[Any, Erp]:
    erp = Erp()
    httpserver.expect_request("/sales-orders", method="POST").respond_with_handler(erp)
    flow = FLOW.format(erp=httpserver.url_for("").rstrip("/"), retry=FAST_RETRY)
    return serving(console_app(tmp_path, flows={"orders": flow})), erp


def failed(server: Running, numbers: range) -> list[DeadLetter]:
    for number in numbers:
        state = send(server, {"order_number": number, "sku": OLD, "qty": 1})
        assert state.status == "dead_lettered", state.error
    return server.app.store.list_dead_letters(DeadLetterFilter(flow="orders", limit=1000))


def finished_job(server: Running, job_id: str, runs: int = 0) -> JobProgress:
    def done() -> JobProgress | None:
        got = JobProgress.model_validate(server.http.get(
            server.url + f"/api/replay-jobs/{job_id}", headers=bearer()).json())
        return got if got.state == "done" and got.runs.get("succeeded", 0) >= runs else None
    job = wait_until(done, timeout=60, what=f"job {job_id}")
    assert isinstance(job, JobProgress)
    return job


def test_twenty_orders_on_a_discontinued_article_are_fixed_with_one_patch(
        tmp_path: Path, httpserver: HTTPServer) -> None:
    running, erp = serve(tmp_path, httpserver)
    with running as server:
        entries = failed(server, range(7000, 7020))
        assert len(entries) == 20
        http = logged_in(server)
        page = http.get(server.url + "/console/dlq", params={"flow": "orders", "limit": "10"})
        assert page.text.count('class="pick" name="entry"') == 10
        assert 'Select all <span id="matching">20</span> matching the filter' in page.text
        # a filter the store keeps no count for: the entries are counted one by one
        by_step = http.get(server.url + "/console/dlq", params={"step": "book", "limit": "5"})
        assert 'Select all <span id="matching">20</span> matching the filter' in by_step.text
        csrf = csrf_of(page.text)

        # every entry matching the filter, not only the ten on the page
        confirm = http.post(server.url + "/console/dlq/bulk", data={
            "csrf_token": csrf, "flow": "orders", "status": "open", "scope": "matching",
            "action": "replay"})
        assert confirm.status_code == 200, confirm.text
        assert 'Replay <span id="bulk-count">20</span> dead-letter entries?' in confirm.text
        assert "<td>orders</td><td>20</td>" in confirm.text
        ids = html.unescape(confirm.text.split('name="ids" value="')[1].split('"')[0]).split()
        assert sorted(ids) == sorted(e.id for e in entries)

        preview = http.post(server.url + "/console/dlq/bulk", data={
            "csrf_token": csrf, "action": "replay", "ids": " ".join(ids), "patch": PATCH,
            "start_from": "failed-step", "version": "original", "step": "preview"})
        assert preview.status_code == 200, preview.text
        shown = html.unescape(preview.text)
        assert shown.count('class="preview"') == 3
        assert f'-  "sku": "{OLD}"' in shown and f'+  "sku": "{NEW}"' in shown
        assert "stopped before 'book' (call), which has side effects" in shown
        assert erp.booked == []  # a preview calls no partner

        started = http.post(server.url + "/console/dlq/bulk/start", data={
            "csrf_token": csrf, "action": "replay", "ids": " ".join(ids), "patch": PATCH,
            "start_from": "failed-step", "version": "original"}, allow_redirects=False)
        assert started.status_code == 303, started.text
        job = finished_job(server, started.headers["location"].rsplit("/", 1)[1], runs=20)
        assert (job.total, job.started, job.patch_failed, job.refused) == (20, 20, [], [])
        assert job.patch == PATCH and job.runs == {"succeeded": 20}
        page = http.get(server.url + started.headers["location"]).text
        assert "Bulk replay" in page and 'id="job-patch"' in page

        assert sorted(o["order"] for o in erp.booked) == list(range(7000, 7020))
        assert {o["sku"] for o in erp.booked} == {NEW}
        for e in entries:
            kept = server.app.store.get_dead_letter(e.id)
            assert kept is not None and kept.status == "replayed"
            item = kept.audit[-1]
            assert item["patch"] == PATCH and item["who"].startswith("console:")
            assert item["result"] == "succeeded"
        shown_entry = http.get(server.url + f"/console/dlq/{entries[0].id}").text
        assert "patch: $merge" in html.unescape(shown_entry)


def test_ticked_entries_are_discarded_after_confirming_the_count(
        tmp_path: Path, httpserver: HTTPServer) -> None:
    running, _ = serve(tmp_path, httpserver)
    with running as server:
        entries = failed(server, range(7100, 7104))
        http = logged_in(server)
        csrf = csrf_of(http.get(server.url + "/console/dlq").text)
        ticked = [entries[0].id, entries[2].id]
        refused = http.post(server.url + "/console/dlq/bulk", data={
            "entry": ticked, "action": "discard"})
        assert refused.status_code == 403  # no CSRF token
        confirm = http.post(server.url + "/console/dlq/bulk", data={
            "csrf_token": csrf, "entry": ticked, "action": "discard"})
        assert 'Discard <span id="bulk-count">2</span> dead-letter entries?' in confirm.text
        nothing = http.post(server.url + "/console/dlq/bulk", data={
            "csrf_token": csrf, "action": "discard"})
        assert nothing.status_code == 400 and "Nothing selected" in nothing.text

        started = http.post(server.url + "/console/dlq/bulk/start", data={
            "csrf_token": csrf, "action": "discard", "ids": " ".join(ticked),
            "reason": "article withdrawn, customer refunded"}, allow_redirects=False)
        job = finished_job(server, started.headers["location"].rsplit("/", 1)[1])
        assert (job.action, job.total, job.discarded, job.started) == ("discard", 2, 2, 0)
        statuses = {e.id: server.app.store.get_dead_letter(e.id) for e in entries}
        assert {k for k, v in statuses.items() if v and v.status == "discarded"} == set(ticked)
        for entry_id in ticked:
            item = statuses[entry_id].audit[-1]  # type: ignore[union-attr]
            assert item["action"] == "discard" and item["who"].startswith("console:")
            assert item["reason"] == "article withdrawn, customer refunded"


def test_api_previews_and_replays_with_a_patch_that_fails_on_some(
        tmp_path: Path, httpserver: HTTPServer) -> None:
    running, erp = serve(tmp_path, httpserver)
    partial = (f'order_number = 7202 ? $error("no replacement for order 7202") : '
               f'$merge([$, {{"sku": "{NEW}"}}])')
    with running as server:
        entries = failed(server, range(7200, 7204))
        ids = [e.id for e in entries]
        bad = server.http.post(server.url + "/api/replay-jobs/preview", headers=bearer(),
                               json={"entries": ids, "patch": '$merge([$, {"sku": }])'})
        assert bad.status_code == 422
        assert bad.json()["error"].startswith("patch expression error at position 20:")
        looked = server.http.post(server.url + "/api/replay-jobs/preview", headers=bearer(),
                                  json={"entries": ids, "patch": partial, "count": 4})
        assert looked.status_code == 200, looked.text
        preview = BulkPreview.model_validate(looked.json())
        assert (preview.total, preview.flows) == (4, {"orders": 4})
        errors = {p.entry: p.error for p in preview.previews}
        failing = next(e.id for e in entries if e.key == "7202")
        assert "no replacement for order 7202" in (errors.pop(failing) or "")
        assert set(errors.values()) == {None}
        assert all(p.dry_run and p.dry_run.status == "dry_run" for p in preview.previews
                   if p.entry != failing)

        answer = server.http.post(server.url + "/api/replay-jobs", headers=bearer(),
                                  json={"flow": "orders", "patch": partial})
        assert answer.status_code == 202, answer.text
        job = finished_job(server, answer.json()["id"], runs=3)
        assert (job.total, job.started, len(job.patch_failed)) == (4, 3, 1)
        assert job.patch_failed[0]["entry"] == failing
        assert sorted(o["order"] for o in erp.booked) == [7200, 7201, 7203]
        kept = server.app.store.get_dead_letter(failing)
        assert kept is not None and kept.status == "open"
        assert kept.audit[-1]["action"] == "replay_refused"
        assert "no replacement for order 7202" in kept.audit[-1]["reason"]
        assert kept.audit[-1]["patch"] == partial


class FlakyStore(SqliteStore):
    """The real SQLite store, except that reading one chosen entry raises what no store should:
    a bug, with the ERP's token (which the flow uses) in its message."""

    poisoned: str | None = None

    def get_dead_letter(self, entry_id: str) -> DeadLetter | None:
        if entry_id == self.poisoned:
            raise RuntimeError(f"cannot decode entry, key {SECRETS['GENERIC']} rejected")
        return super().get_dead_letter(entry_id)


def test_a_job_that_hits_an_unexpected_error_ends_failed_and_leaves_the_rest_open(
        tmp_path: Path, httpserver: HTTPServer, caplog: Any) -> None:
    erp = Erp()
    httpserver.expect_request("/sales-orders", method="POST").respond_with_handler(erp)
    flow = FLOW.format(erp=httpserver.url_for("").rstrip("/"), retry=FAST_RETRY).replace(
        "method: POST\n",
        'method: POST\n        headers: {Authorization: "Bearer ${secret:GENERIC}"}\n')
    store = FlakyStore(tmp_path / "flaky.db")
    with serving(console_app(tmp_path, flows={"orders": flow}, store=store)) as server:
        entries = failed(server, range(7300, 7304))
        ids = sorted(e.id for e in entries)
        store.poisoned = ids[1]
        answer = server.http.post(server.url + "/api/replay-jobs", headers=bearer(),
                                  json={"entries": ids, "patch": PATCH})
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]

        def ended() -> JobProgress | None:
            got = JobProgress.model_validate(server.http.get(
                server.url + f"/api/replay-jobs/{job_id}", headers=bearer()).json())
            return got if got.state != "running" else None
        job = wait_until(ended, timeout=60, what=f"job {job_id}")
        assert isinstance(job, JobProgress)
        assert (job.state, job.processed, job.started, job.untouched) == ("failed", 1, 1, 3)
        assert job.error is not None and job.finished_at is not None
        assert job.error.startswith("RuntimeError: cannot decode entry, key ")
        assert SECRETS["GENERIC"] not in job.error

        page = logged_in(server).get(server.url + f"/console/jobs/{job_id}").text
        assert 'id="job-state">failed<' in page
        assert "The job stopped: RuntimeError: cannot decode entry" in html.unescape(page)
        assert '<span id="job-untouched">3</span>' in page and SECRETS["GENERIC"] not in page

        store.poisoned = None
        kept = {i: server.app.store.get_dead_letter(i) for i in ids}
        assert {i: k.status for i, k in kept.items() if k is not None} == {
            ids[0]: "replayed", ids[1]: "open", ids[2]: "open", ids[3]: "open"}
    stopped = [r for r in caplog.records if r.name == "flowrun.console" and r.exc_info]
    assert len(stopped) == 1 and f"job {job_id} stopped after 1 of 4" in stopped[0].getMessage()
