"""One failed message is one dead-letter entry, however often its replay fails again, and the
partner's answer that explains the failure is shown wherever the operator looks.

A real server (webhook, console, JSON API, /metrics) on loopback, an ERP on loopback that
answers 422 with a JSON body naming the discontinued article, and `flowrun dlq` / `flowrun runs`
run as processes of their own on the same state. The message is replayed four times, through
the console's API, `flowrun dlq replay ID`, `flowrun dlq replay --all-matching` and the
console's bulk action: every replay fails again, and the queue, its count, the metric and the
CLI list still hold exactly one open entry with four attempts on its audit trail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from pytest_httpserver import HTTPServer

from engine.console.models import DeadLetterDetail, RunDetail
from engine.store.base import DeadLetterFilter
from tests.conftest import wait_until
from tests.engine.console.support import TOKEN, bearer, csrf_of, logged_in
from tests.engine.server_support import Running, hook_app, serving

FLOW = """
flow: erp-orders
key: $string(order_number)
trigger:
  webhook: {{path: /hooks/erp-orders}}
steps:
  - id: book
    call:
      http:
        method: POST
        url: "{url}"
        headers: {{Authorization: "Bearer ${{secret:GENERIC}}"}}
    retry: {{max_attempts: 1}}
"""

#: what the ERP says: the operator needs the article number to fix the order. It also echoes
#: the credential it was sent, which must never reach a page.
REFUSAL = {"error": "unknown article", "detail": "unknown article DISCONTINUED-HP-59A in line 1",
           "echo": "Bearer generic-hmac-secret"}


def erp(httpserver: HTTPServer) -> str:
    httpserver.expect_request("/erp", method="POST").respond_with_data(
        json.dumps(REFUSAL), status=422, content_type="application/json",
        headers={"X-Request-Id": "erp-req-4711", "Set-Cookie": "erp_session=abc123def"})
    return httpserver.url_for("/erp")


def flowrun(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`flowrun ARGS` as a process of its own on the server's state."""
    env = {**os.environ, "FLOWRUN_HOME": str(tmp_path / "home"),
           "FLOWRUN_FLOWS": str(tmp_path / "flows"),
           "FLOWRUN_SECRETS_FILE": str(tmp_path / "secrets.env")}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def metric(server: Running, name: str) -> float | None:
    text = server.http.get(server.url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels.get("flow") == "erp-orders":
                return float(s.value)
    return None


def replays_settled(server: Running, entry_id: str, count: int) -> Any:
    entry = server.app.store.get_dead_letter(entry_id)
    assert entry is not None
    done = [a for a in entry.audit if a.get("action") == "replay" and "finished_at" in a]
    return entry if len(done) == count and entry.status == "open" else None


def test_replays_that_fail_again_stay_one_entry_with_the_partners_answer_shown(
        tmp_path: Path, httpserver: HTTPServer) -> None:
    app = hook_app(tmp_path, {"erp-orders": FLOW.format(url=erp(httpserver))})
    app.settings.console_token = SecretStr(TOKEN)
    with serving(app) as server:
        sent = server.post("/hooks/erp-orders", json.dumps({"order_number": 59}),
                           {"Content-Type": "application/json"})
        assert sent.status_code == 202, sent.text
        first, = app.wait_for(sent.json()["run_id"], timeout=30)
        assert first.status == "dead_lettered"
        entry, = app.store.list_dead_letters(DeadLetterFilter(flow="erp-orders"))
        api = server.url + "/api/dead-letters"

        # 1: the console's API
        replay = server.http.post(f"{api}/{entry.id}/replay", json={}, headers=bearer())
        assert replay.status_code == 202, replay.text
        assert app.wait_for(replay.json()["run_id"], timeout=30)[0].status == "dead_lettered"
        assert wait_until(lambda: replays_settled(server, entry.id, 1))
        # 2: `flowrun dlq replay ID` (named twice: replayed once)
        one = flowrun(tmp_path, "dlq", "replay", entry.id, entry.id)
        assert one.returncode == 1 and "1 entry, 1 not replayed successfully" in one.stderr
        # 3: `flowrun dlq replay --all-matching`
        bulk = flowrun(tmp_path, "dlq", "replay", "--all-matching", "--flow", "erp-orders")
        assert bulk.returncode == 1, bulk.stderr
        assert "[1/1]" in bulk.stderr and "[2/" not in bulk.stderr
        # 4: the console's bulk action
        http = logged_in(server)
        page = http.get(server.url + "/console/dlq")
        job = http.post(server.url + "/api/replay-jobs", json={"flow": "erp-orders"},
                        headers={"X-CSRF-Token": csrf_of(page.text)})
        assert job.status_code == 202, job.text
        assert job.json()["total"] == 1
        settled = wait_until(lambda: replays_settled(server, entry.id, 4))
        assert settled, app.store.get_dead_letter(entry.id)

        # still one entry, open, with every attempt on its audit trail
        everything = app.store.list_dead_letters(DeadLetterFilter(status=None))
        assert [e.id for e in everything] == [entry.id]
        replays = [a for a in settled.audit if a["action"] == "replay"]
        assert len(replays) == 4 and len({a["run_id"] for a in replays}) == 4
        assert all(a["result"] == "dead_lettered" and a["error"]["status"] == 422
                   and a["who"] and a["at"] <= a["finished_at"] for a in replays)
        # the API names its caller api:<user>; the CLI, the operating-system user
        assert [a["who"].startswith("api:") for a in replays] == [True, False, False, True]
        listed = flowrun(tmp_path, "dlq", "list", "--json")
        assert [r["id"] for r in json.loads(listed.stdout)] == [entry.id]
        assert app.store.count_dead_letters() == {"erp-orders": 1}
        flows = server.http.get(server.url + "/api/flows", headers=bearer()).json()
        assert [f["dlq_depth"] for f in flows] == [1]
        assert "1 open" in http.get(server.url + "/console/").text
        assert metric(server, "flowrun_dlq_depth") == 1
        # one message went to the queue (an alert on new dead letters fires once); the
        # server's own replay run failed again without counting as another
        assert metric(server, "flowrun_dead_lettered_total") == 1

        # the partner's answer: API, pages and CLI, the credential it echoed masked
        detail = DeadLetterDetail.model_validate(
            server.http.get(f"{api}/{entry.id}", headers=bearer()).json())
        assert detail.answer is not None and detail.answer.status == 422
        assert json.loads(detail.answer.body)["detail"] == REFUSAL["detail"]
        assert json.loads(detail.answer.body)["echo"] == "Bearer ***"
        headers = {k.lower(): v for k, v in detail.answer.headers.items()}
        assert headers["x-request-id"] == "erp-req-4711" and "set-cookie" not in headers
        last_run = replays[-1]["run_id"]
        run = RunDetail.model_validate(
            server.http.get(f"{server.url}/api/runs/{last_run}", headers=bearer()).json())
        assert run.answer is not None and "DISCONTINUED-HP-59A" in run.answer.body
        for page_url in (f"/console/dlq/{entry.id}", f"/console/runs/{last_run}",
                         f"/console/runs/{first.run_id}"):
            shown = http.get(server.url + page_url).text
            assert "Partner's answer" in shown and "DISCONTINUED-HP-59A" in shown
            assert "erp-req-4711" in shown
            assert "generic-hmac-secret" not in shown and "abc123def" not in shown
        run_page = http.get(f"{server.url}/console/runs/{last_run}").text
        assert f'href="/console/dlq/{entry.id}" id="entry-link"' in run_page
        cli_run = flowrun(tmp_path, "runs", "show", last_run)
        assert "answer: 422 UNPROCESSABLE ENTITY" in cli_run.stdout
        assert "DISCONTINUED-HP-59A" in cli_run.stdout and "X-Request-Id: erp-req-4711" in \
            cli_run.stdout
        cli_entry = json.loads(flowrun(tmp_path, "dlq", "show", entry.id).stdout)
        assert "DISCONTINUED-HP-59A" in cli_entry["reason"]["detail"]["body"]
