"""Bulk replay jobs across server processes: two real `flowrun serve` processes on one Redis, as
behind a load balancer. A job started through one is followed through the other over HTTP;
the process running a job is frozen mid-way (SIGSTOP: to the others it is as good as dead),
the other sees the job interrupted and resumes it, and no entry is replayed twice.

Then two servers in one process on each kind of store (SQLite file, Redis, PostgreSQL): either
answers for a job the other runs, and resumes one a killed process left behind. The job page
itself (the resume button) is tested in a browser in tests/browser/test_bulk_browser.py."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests

from engine.records import DeadLetter, RunState
from engine.store.base import BulkJob, DeadLetterFilter, Store
from engine.store.redis import RedisStore
from tests.conftest import ROOT, flow_text
from tests.engine.console.support import TOKEN, Stores, console_app, order
from tests.engine.server_support import serve_process, serving

FLOW = """
flow: orders
trigger:
  webhook: {path: /hooks/orders}
steps:
  - id: confirm
    set: {confirmed: "true"}
"""
ENTRIES = 1500  # enough that the job is still under way when its process is frozen
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def dead_letters(store: Store, count: int,
                 body: Callable[[int], Any] = lambda n: {"order_number": n}) -> list[str]:
    """*count* open entries of flow orders, filed as a failed run files them."""
    for n in range(count):
        run = RunState(run_id=f"run-{n}", flow_id="orders", flow_version="v0",
                       envelope={"body": body(n), "headers": {}, "vars": {}, "meta": {}},
                       original={"body": body(n), "headers": {}}, status="dead_lettered",
                       created_at=time.time())
        store.save_run(run, dead_letter=DeadLetter(
            id=f"dl-{n:05}", run_id=run.run_id, flow_id="orders", flow_version="v0",
            step="confirm", reason={"message": "ERP answered 503", "step": "confirm"},
            original=run.original, envelope=run.envelope, created_at=time.time()))
    return [f"dl-{n:05}" for n in range(count)]


def progress(url: str, job: str) -> dict[str, Any]:
    answer = requests.get(f"{url}/api/replay-jobs/{job}", headers=AUTH, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def until(url: str, job: str, done: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        seen = progress(url, job)
        if done(seen):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"job {job} never got there: {seen}")


def test_a_job_is_followed_on_another_process_and_resumed_there_when_its_own_stops(
        tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "orders.yaml").write_text(flow_text(FLOW), encoding="utf-8")
    store = RedisStore(redis_url)
    ids = dead_letters(store, ENTRIES)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FLOWRUN_HOME": str(tmp_path / "home"),
           "FLOWRUN_REDIS_URL": redis_url, "FLOWRUN_CONSOLE_TOKEN": TOKEN,
           "FLOWRUN_CONSOLE_JOB_STALE": "2"}
    with serve_process(tmp_path / "flows", env, kill=True) as (one, first), \
            serve_process(tmp_path / "flows", env, kill=True) as (other, _):
        # a small job first: started through one, finished as the other sees it
        small = requests.post(one + "/api/replay-jobs", headers=AUTH, timeout=30, json={
            "entries": ids[:3], "start_from": "start", "version": "current"})
        assert small.status_code == 202, small.text
        seen = until(other, small.json()["id"], lambda j: j["state"] != "running")
        assert (seen["state"], seen["processed"], seen["started"], seen["who"]) == (
            "done", 3, 3, "api:token")
        assert seen["owner"].endswith(f":{first.pid}")

        answer = requests.post(one + "/api/replay-jobs", headers=AUTH, timeout=30, json={
            "entries": ids[3:], "start_from": "start", "version": "current"})
        assert answer.status_code == 202, answer.text
        job = answer.json()["id"]
        until(other, job, lambda j: j["processed"] >= 20)
        first.send_signal(signal.SIGSTOP)  # mid-job: no more progress, no more answers
        frozen = until(other, job, lambda j: j["state"] == "interrupted")
        assert 20 <= frozen["processed"] < ENTRIES - 3 - 1, "the job ended before it was frozen"
        assert frozen["resumable"] and frozen["untouched"] == ENTRIES - 3 - frozen["processed"]
        uncertain = frozen["uncertain"]
        assert uncertain == ids[3 + frozen["processed"]]

        resumed = requests.post(f"{other}/api/replay-jobs/{job}/resume", headers=AUTH,
                                timeout=30)
        assert resumed.status_code == 202, resumed.text
        again = requests.post(f"{other}/api/replay-jobs/{job}/resume", headers=AUTH, timeout=30)
        assert again.status_code == 409 and "resumed as" in again.json()["error"]
        new = resumed.json()["id"]
        assert resumed.json()["resumed_from"] == job
        done = until(other, new, lambda j: j["state"] != "running")
        assert (done["state"], done["total"], done["started"], done["refused"]) == (
            "done", frozen["untouched"] - 1, frozen["untouched"] - 1, [])
        old = progress(other, job)
        assert (old["state"], old["resumed_as"], old["resumable"]) == ("interrupted", new, False)

    entries = {e.id: e for e in store.list_dead_letters(DeadLetterFilter(
        flow="orders", status=None, limit=ENTRIES))}
    replays = {i: [a for a in e.audit if a.get("action") == "replay"] for i, e in entries.items()}
    assert all(len(r) == 1 for i, r in replays.items() if i != uncertain), "replayed twice"
    assert len(replays[uncertain]) <= 1
    runs = {a["run_id"] for r in replays.values() for a in r}
    assert all(store.get_run(r) is not None for r in runs)
    store.close()



def test_every_server_answers_for_a_job_and_resumes_one_a_dead_process_left(
        tmp_path: Path, stores: Stores) -> None:
    with ExitStack() as stack:
        one, other = (stack.enter_context(serving(console_app(tmp_path, store=stores())))
                      for _ in range(2))
        store = one.app.store
        ids = dead_letters(store, 8, body=lambda n: order(21000 + n))
        started = one.http.post(one.url + "/api/replay-jobs", headers=AUTH, json={
            "entries": ids[:3], "start_from": "start", "version": "current"})
        assert started.status_code == 202, started.text
        job = started.json()["id"]
        seen = until(other.url, job, lambda j: j["state"] != "running"
                     and j["runs"].get("succeeded") == 3)
        assert (seen["state"], seen["processed"], seen["started"]) == ("done", 3, 3)

        # what a process killed after two of five entries leaves behind, an hour ago
        gone = time.time() - 3600
        store.put_job(BulkJob("killed", "console:alice", ids[3:], start_from="start",
                              version="current", owner="elsewhere:1", created_at=gone,
                              updated_at=gone))
        ran = []
        for entry_id in ids[3:5]:
            run = one.app.replay(entry_id, start_from="start", version="current",
                                 who="console:alice")
            assert store.add_job_outcome("killed", entry_id, "started", run.run_id, gone)
            ran.append(run.run_id)
        stopped = progress(other.url, "killed")
        assert (stopped["state"], stopped["processed"], stopped["untouched"],
                stopped["uncertain"], stopped["resumable"]) == (
            "interrupted", 2, 3, ids[5], True)
        resumed = other.http.post(other.url + "/api/replay-jobs/killed/resume", headers=AUTH)
        assert resumed.status_code == 202, resumed.text
        done = until(one.url, resumed.json()["id"], lambda j: j["state"] != "running")
        assert (done["state"], done["total"], done["started"]) == ("done", 2, 2)
        assert progress(one.url, "killed")["resumed_as"] == resumed.json()["id"]
        finished = one.http.post(f"{one.url}/api/replay-jobs/{job}/resume", headers=AUTH)
        assert finished.status_code == 409 and "is done" in finished.json()["error"]
        for run_id in ran:
            one.app.wait_for(run_id)
        until(one.url, resumed.json()["id"], lambda j: j["runs"] == {"succeeded": 2})
        status = {e.id: e.status for e in store.list_dead_letters(
            DeadLetterFilter(flow="orders", status=None))}
        assert status == {**{i: "replayed" for i in ids}, ids[5]: "open"}
