"""The console's pages and JSON API over real HTTP: flows, run search and timeline, the
dead-letter queue with edit-and-replay, discard, bulk replay with progress, and the bad input an
operator (or a payload) can bring: unknown ids, invalid edits, huge and hostile payloads.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import time
from pathlib import Path

from engine.console.models import (
    DeadLetterDetail,
    FlowHealth,
    JobProgress,
    RunDetail,
    RunSummary,
)
from engine.console.views import SNAPSHOT_LIMIT
from engine.store.redis import RedisStore
from tests.conftest import wait_until
from tests.engine.console.support import (
    bearer,
    console,
    console_app,
    csrf_of,
    dead_letter,
    logged_in,
    order,
    send,
)
from tests.engine.server_support import serving


def test_flows_page_shows_health(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        send(server, order(1))
        send(server, order(2))
        send(server, order(3))
        dead_letter(server, 4)
        page = logged_in(server).get(server.url + "/console/")
        assert "75.0 %" in page.text  # 3 of 4 finished runs did not fail
        assert "1 open" in page.text  # DLQ depth
        flows = server.http.get(server.url + "/api/flows", headers=bearer()).json()
        health = FlowHealth.model_validate(flows[0])
        assert (health.flow, health.finished, health.failed, health.dlq_depth) == (
            "orders", 4, 1, 1)
        assert health.last_run is not None and health.last_run.key == "4"


def test_runs_are_found_by_order_number_status_and_correlation_id(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        wanted = send(server, order(10045), **{"X-Correlation-ID": "corr-10045"})
        send(server, order(10046))
        http = logged_in(server)
        page = http.get(server.url + "/console/runs", params={"key": "10045"})
        assert wanted.run_id[:12] in page.text
        assert page.text.count('href="/console/runs/') == 1
        by_corr = server.http.get(server.url + "/api/runs", headers=bearer(),
                                  params={"correlation_id": "corr-10045"}).json()
        assert [RunSummary.model_validate(r).run_id for r in by_corr] == [wanted.run_id]
        by_status = server.http.get(server.url + "/api/runs", headers=bearer(),
                                    params={"status": "succeeded", "since": "1h"}).json()
        assert len(by_status) == 2
        future = server.http.get(server.url + "/api/runs", headers=bearer(),
                                 params={"since": "2999-01-01"}).json()
        assert future == []


def test_runs_and_dead_letters_are_searched_by_time_range(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        early = send(server, order(3001, qty="two"))
        middle = _iso(wait_until(lambda: _later_than(early.created_at)))
        late = send(server, order(3002, qty=0))
        api = server.http

        def runs(**params: str) -> list[str]:
            found = api.get(server.url + "/api/runs", headers=bearer(), params=params).json()
            return [r["run_id"] for r in found]

        assert runs(until=middle) == [early.run_id]
        assert runs(since=middle) == [late.run_id]
        assert runs(since=middle, until=middle) == []

        def entries(**params: str) -> list[str]:
            found = api.get(server.url + "/api/dead-letters", headers=bearer(),
                            params=params).json()
            return [e["run_id"] for e in found]

        assert entries(until=middle) == [early.run_id]
        assert entries(since=middle, step="check") == [late.run_id]
        assert entries(step="shape") == []
        assert entries(error="is not of type 'integer'") == [early.run_id]
        assert entries(flow="orders", error="less than the minimum") == [late.run_id]
        page = logged_in(server).get(server.url + "/console/dlq",
                                     params={"since": middle, "flow": "orders"})
        assert page.text.count('href="/console/dlq/') == 1 and "3002" in page.text


def _later_than(moment: float) -> float | None:
    """A time after *moment* (the store's clock has moved on), for a since/until split."""
    now = time.time()
    return now if now > moment + 0.001 else None


def _iso(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat()


def test_bad_search_parameters_are_400_with_the_reason(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        response = server.http.get(server.url + "/api/runs", headers=bearer(),
                                   params={"since": "yesterday-ish"})
        assert response.status_code == 400
        assert "since: 'yesterday-ish' is not a time" in response.json()["error"]
        page = logged_in(server).get(server.url + "/console/runs", params={"status": "nope"})
        assert page.status_code == 400 and "not a run status" in page.text


def test_run_timeline_shows_every_step_with_duration_and_attempts(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        state = send(server, order(2001, note="gift wrap"))
        page = logged_in(server).get(server.url + f"/console/runs/{state.run_id}")
        assert page.status_code == 200
        for step in ("check", "shape", "confirm"):
            assert f'<span class="step-id">{step}</span>' in page.text
        assert "1 attempt" in page.text and "gift wrap" in page.text
        detail = RunDetail.model_validate(server.http.get(
            server.url + f"/api/runs/{state.run_id[:10]}", headers=bearer()).json())
        assert [s.id for s in detail.steps] == ["check", "shape", "confirm"]
        assert all(s.status == "succeeded" and s.attempts == 1 for s in detail.steps)
        assert json.loads(detail.input.json_)["body"]["order_number"] == 2001
        assert json.loads(detail.output.json_)["vars"] == {"confirmed": True}


def test_unknown_run_is_a_404_page(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        http = logged_in(server)
        page = http.get(server.url + "/console/runs/0123456789abcdef0123456789abcdef")
        assert page.status_code == 404
        assert "No such run" in page.text and "text/html" in page.headers["content-type"]
        assert http.get(server.url + "/console/dlq/nope").status_code == 404
        assert http.get(server.url + "/console/no/such/page").status_code == 404
        api = server.http.get(server.url + "/api/runs/nope", headers=bearer())
        assert api.status_code == 404 and api.json() == {"error": "no run 'nope'"}


def test_html_in_payloads_is_escaped(tmp_path: Path) -> None:
    attack = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    with console(tmp_path) as server:
        state = send(server, order(3001, note=attack))
        entry = dead_letter(server, 3002, note=attack)
        http = logged_in(server)
        for path in (f"/console/runs/{state.run_id}", f"/console/dlq/{entry.id}",
                     "/console/runs?key=" + attack):
            page = http.get(server.url + path)
            assert "<script>alert" not in page.text and "<img src=x" not in page.text
            assert "&lt;script&gt;" in page.text or html.escape(attack) in page.text


def test_huge_payloads_are_shown_truncated(tmp_path: Path) -> None:
    huge = "x" * 3_000_000
    with console(tmp_path) as server:
        state = send(server, order(4001, note=huge))
        entry = dead_letter(server, 4002, note=huge)
        http = logged_in(server)
        page = http.get(server.url + f"/console/runs/{state.run_id}")
        assert page.status_code == 200
        assert "Truncated: showing" in page.text
        assert len(page.content) < 8 * SNAPSHOT_LIMIT  # bounded whatever the payload
        entry_page = http.get(server.url + f"/console/dlq/{entry.id}")
        assert "too large to edit here" in entry_page.text
        assert len(entry_page.content) < 8 * SNAPSHOT_LIMIT
        detail = DeadLetterDetail.model_validate(server.http.get(
            server.url + f"/api/dead-letters/{entry.id}", headers=bearer()).json())
        assert detail.original.truncated and detail.original.size > 3_000_000
        assert len(detail.original.json_) == SNAPSHOT_LIMIT


def test_secrets_in_payloads_are_redacted_on_pages(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        server.app.secrets.redactor.add("s3cr3t-api-key")
        state = send(server, order(4501, note="key s3cr3t-api-key"))
        page = logged_in(server).get(server.url + f"/console/runs/{state.run_id}")
        assert "s3cr3t-api-key" not in page.text and "key ***" in page.text


def test_edit_and_replay_from_the_entry_page(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        entry = dead_letter(server, 5001)
        http = logged_in(server)
        page = http.get(server.url + f"/console/dlq/{entry.id}")
        assert "$.qty" in page.text  # the violation is listed
        fixed = json.dumps(order(5001, qty=2))
        response = http.post(server.url + f"/console/dlq/{entry.id}/replay", data={
            "csrf_token": csrf_of(page.text), "body": fixed, "edit_body": "on",
            "start_from": "failed-step", "version": "original"}, allow_redirects=False)
        assert response.status_code == 303
        run_id = response.headers["location"].rsplit("/", 1)[1]
        tree = server.app.wait_for(run_id, timeout=30)
        assert tree[0].status == "succeeded"
        kept = wait_until(lambda: (e := server.app.store.get_dead_letter(entry.id)) and
                          e.status == "replayed" and e)
        assert kept.audit[-1]["who"] == "console:token"
        assert kept.audit[-1]["edited"] is True and kept.audit[-1]["result"] == "succeeded"
        audit = http.get(server.url + f"/console/dlq/{entry.id}").text
        assert "console:token" in audit and run_id[:12] in audit


def test_invalid_edited_body_shows_the_violations_and_keeps_the_entry(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        entry = dead_letter(server, 5101)
        http = logged_in(server)
        token = csrf_of(http.get(server.url + f"/console/dlq/{entry.id}").text)
        still_bad = json.dumps(order(5101, qty=-3))
        response = http.post(server.url + f"/console/dlq/{entry.id}/replay", data={
            "csrf_token": token, "body": still_bad, "edit_body": "on"})
        assert response.status_code == 422
        assert "Replay refused; the entry is kept." in response.text
        assert 'id="violations"' in response.text and "$.qty" in response.text
        assert "-3" in response.text  # the operator's draft is kept in the form
        not_json = http.post(server.url + f"/console/dlq/{entry.id}/replay", data={
            "csrf_token": token, "body": '{"qty": 2,,}', "edit_body": "on"})
        assert not_json.status_code == 422 and "not valid JSON" in not_json.text
        kept = server.app.store.get_dead_letter(entry.id)
        assert kept is not None and kept.status == "open"
        assert [a["action"] for a in kept.audit] == ["replay_refused"]
        api = server.http.post(server.url + f"/api/dead-letters/{entry.id}/replay",
                               headers=bearer(), json={"body": order(5101, qty="x")})
        assert api.status_code == 422
        assert api.json()["violations"][0]["path"] == "$.qty"


def test_api_replay_and_discard(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        entry = dead_letter(server, 5201)
        response = server.http.post(server.url + f"/api/dead-letters/{entry.id}/replay",
                                    headers=bearer(), json={"body": order(5201, qty=1)})
        assert response.status_code == 202
        assert server.app.wait_for(response.json()["run_id"])[0].status == "succeeded"
        other = dead_letter(server, 5202)
        bad = server.http.post(server.url + f"/api/dead-letters/{other.id}/replay",
                               headers=bearer(), json={"start_from": "middle"})
        assert bad.status_code == 422 and "invalid request" in bad.json()["error"]
        gone = server.http.post(server.url + "/api/dead-letters/nope/replay", headers=bearer(),
                                json={})
        assert gone.status_code == 404
        discarded = server.http.post(server.url + f"/api/dead-letters/{other.id}/discard",
                                     headers=bearer(), json={"reason": "cancelled"})
        assert discarded.json()["status"] == "discarded"
        again = server.http.post(server.url + f"/api/dead-letters/{other.id}/replay",
                                 headers=bearer(), json={})
        assert again.status_code == 422 and "discarded" in again.json()["error"]


def test_discard_from_the_page_is_on_the_audit_trail(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        entry = dead_letter(server, 5301)
        http = logged_in(server)
        token = csrf_of(http.get(server.url + f"/console/dlq/{entry.id}").text)
        page = http.post(server.url + f"/console/dlq/{entry.id}/discard",
                         data={"csrf_token": token, "reason": "customer cancelled"})
        assert page.status_code == 200
        assert "customer cancelled" in page.text and 'id="replay-form"' not in page.text
        listed = http.get(server.url + "/console/dlq", params={"status": "discarded"})
        assert entry.id in listed.text


def test_bulk_replay_runs_in_the_background_with_progress(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        entries = [dead_letter(server, 5400 + i) for i in range(3)]
        http = logged_in(server)
        page = http.get(server.url + "/console/dlq", params={"flow": "orders"})
        for entry in entries:
            assert entry.id in page.text
        # replayed unchanged they fail again: the job still completes, and says so
        response = http.post(server.url + "/console/dlq/replay-all", data={
            "csrf_token": csrf_of(page.text), "flow": "orders", "status": "open"},
            allow_redirects=False)
        assert response.status_code == 303
        job_id = response.headers["location"].rsplit("/", 1)[1]

        def finished() -> JobProgress | None:
            got = JobProgress.model_validate(server.http.get(
                server.url + f"/api/replay-jobs/{job_id}", headers=bearer()).json())
            return got if got.state == "done" and got.runs.get("dead_lettered") == 3 else None

        job = wait_until(finished)
        assert job and (job.total, job.processed, job.started, job.percent) == (3, 3, 3, 100.0)
        assert "Bulk replay" in http.get(server.url + f"/console/jobs/{job_id}").text
        api = server.http.post(server.url + "/api/replay-jobs", headers=bearer(),
                               json={"flow": "no-such-flow"})
        assert api.status_code == 202 and api.json()["total"] == 0


def test_openapi_document_describes_the_api(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        spec = server.http.get(server.url + "/api/openapi.json").json()
        assert spec["openapi"].startswith("3.")
        assert {"/api/runs", "/api/runs/{id}", "/api/dead-letters/{id}/replay",
                "/api/replay-jobs/{id}"} <= set(spec["paths"])
        replay = spec["components"]["schemas"]["ReplayRequest"]["properties"]
        assert replay["start_from"]["enum"] == ["failed-step", "start"]
        for path in spec["paths"].values():
            for op in path.values():
                for answer in op["responses"].values():
                    for media in answer.get("content", {}).values():
                        ref = media["schema"].get("$ref") or media["schema"]["items"]["$ref"]
                        assert ref.rsplit("/", 1)[1] in spec["components"]["schemas"]


def test_the_console_works_on_the_redis_store(tmp_path: Path,
                                               redis_url: str) -> None:
    with serving(console_app(tmp_path, store=RedisStore(redis_url))) as server:
        good = send(server, order(10044, qty=2))
        entry = dead_letter(server, 10045)
        http = logged_in(server)
        flows = http.get(server.url + "/console/").text
        assert "1 open" in flows and "50.0 %" in flows
        found = http.get(server.url + "/console/runs", params={"key": "10045"}).text
        assert entry.run_id[:12] in found and good.run_id[:12] not in found
        page = http.get(server.url + f"/console/dlq/{entry.id}")
        assert page.status_code == 200 and "$.qty" in page.text
        replay = server.http.post(server.url + f"/api/dead-letters/{entry.id}/replay",
                                  json={"body": order(10045, qty=2)}, headers=bearer())
        assert replay.status_code == 202, replay.text
        run_id = replay.json()["run_id"]
        assert wait_until(lambda: (s := server.app.store.get_run(run_id)) and s.done
                          and s.status) == "succeeded"


def test_harness_dead_letters_a_bad_order_and_serves_the_console(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        entry = dead_letter(server, 1001)
        assert entry.step == "check"
        assert send(server, order(1002, qty=2)).status == "succeeded"
        http = logged_in(server)
        page = http.get(server.url + "/console/", timeout=10)
        assert page.status_code == 200
        assert "orders" in page.text


def test_an_api_request_body_past_the_limit_is_refused_unread(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        entry = dead_letter(server, 4401)
        huge = json.dumps({"body": {"order_number": 4401, "sku": "S", "qty": 1,
                                    "note": "x" * (5 * 1024 * 1024)}})
        answer = server.http.post(server.url + f"/api/dead-letters/{entry.id}/replay",
                                  data=huge, headers={**bearer(),
                                                      "Content-Type": "application/json"})
        assert answer.status_code == 413, answer.text
        assert "larger than 4,194,304 bytes" in answer.json()["error"]
        kept = server.app.store.get_dead_letter(entry.id)
        assert kept is not None and kept.status == "open"  # nothing was replayed
        fits = server.http.post(server.url + f"/api/dead-letters/{entry.id}/replay",
                                json={"body": order(4401)}, headers=bearer())
        assert fits.status_code == 202, fits.text


def test_a_number_written_in_other_digits_is_a_bad_query_not_a_server_error(
        tmp_path: Path) -> None:
    with console(tmp_path) as server:
        for path in ("/api/dead-letters?http_status=%C2%B2%E2%81%B0%E2%81%B0",  # "²⁰⁰"
                     "/api/runs?limit=%C2%B2", "/api/dead-letters?limit=%C2%B2"):
            answer = server.http.get(server.url + path, headers=bearer())
            assert answer.status_code == 400, (path, answer.text)
            assert "give" in answer.json()["error"]
        page = server.http.get(server.url + "/console/dlq?http_status=%C2%B2%E2%81%B0%E2%81%B0",
                               headers=bearer())
        assert page.status_code == 400 and "is not an HTTP status" in html.unescape(page.text)
