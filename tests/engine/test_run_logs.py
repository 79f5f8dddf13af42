"""The story of every run in the log, on the real server: 18 webhooks to `create_app` under
uvicorn, 8 of them dead-lettered after a retry, then a replay and a discard — each event one
INFO line with its ids (JSON parsed), the same lines readable in the text format, and
flowrunner's own access line with the sender's correlation id.

The downstream is a pytest-httpserver ERP on loopback: an order's first request gets 503, the
next 200, except for SKU "BAD", which gets 503 every time (its retry fails too).
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from engine.app import App
from engine.retry import REASON_KINDS
from engine.store.base import DeadLetterFilter
from tests.engine.console.support import FAST_RETRY
from tests.engine.server_support import SECRETS, Running, hook_app, serving
from tests.engine.test_metrics_observability import capture_logs

FLOW = """
flow: story
key: $string(order_number)
trigger:
  webhook: {{path: /hooks/story}}
{retry}steps:
  - id: book
    call:
      http:
        method: POST
        url: "{url}/book"
        headers: {{Authorization: "Bearer ${{secret:GENERIC}}"}}
"""
#: in every body and never in a line: bodies are not logged
MARKER = "do-not-log-this-body-text"
RUN_EVENTS = ("run.accepted", "run.retry_scheduled", "run.dead_lettered", "run.finished")


class Erp:
    """503 for an order's first request and then 200; 503 always for SKU "BAD"."""

    def __init__(self) -> None:
        self.seen: set[Any] = set()
        self.lock = threading.Lock()

    def answer(self, request: Request) -> Response:
        order = json.loads(request.get_data() or b"{}")
        with self.lock:
            first = order.get("order_number") not in self.seen
            self.seen.add(order.get("order_number"))
        status = 503 if first or order.get("sku") == "BAD" else 200
        return Response("{}", status=status, content_type="application/json")


@pytest.fixture
def story(tmp_path: Path, httpserver: HTTPServer) -> Iterator[Running]:
    httpserver.expect_request("/book", method="POST").respond_with_handler(Erp().answer)
    app: App = hook_app(tmp_path, {"story": FLOW.format(
        url=httpserver.url_for("").rstrip("/"), retry=FAST_RETRY)})
    with serving(app) as running:
        yield running


def post(server: Running, order: int, sku: str) -> str:
    """POST one order with its correlation id; the run id it was accepted as."""
    response = server.post("/hooks/story", json.dumps({"order_number": order, "sku": sku,
                                                        "note": MARKER}),
                           {"Content-Type": "application/json",
                            "X-Correlation-ID": f"cid-{order}"})
    assert response.status_code == 202, response.text
    assert response.headers["X-Correlation-ID"] == f"cid-{order}"
    return str(response.json()["run_id"])


def parsed(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def wait_lines(buffer: io.StringIO, enough: Callable[[list[dict[str, Any]]], bool],
               what: str) -> list[dict[str, Any]]:
    """The lines once *enough* holds (the last line of a run is written just after its record,
    which is what `wait_for` sees)."""
    deadline = time.monotonic() + 30
    while True:
        lines = parsed(buffer)
        if enough(lines):
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} in the log:\n{buffer.getvalue()[-3000:]}")
        time.sleep(0.02)


def of(lines: list[dict[str, Any]], event: str, **fields: Any) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("event") == event
            and all(line.get(k) == v for k, v in fields.items())]


def test_eighteen_webhooks_eight_dead_lettered_tell_their_story_in_json_lines(
        story: Running) -> None:
    with capture_logs("json") as buffer:
        orders = {1000 + n: "BAD" if n % 9 in (1, 3, 5, 7) else "A" for n in range(18)}
        assert sum(sku == "BAD" for sku in orders.values()) == 8
        runs = {order: post(story, order, sku) for order, sku in orders.items()}
        for run_id in runs.values():
            assert story.app.wait_for(run_id, timeout=30)[0].done
        lines = wait_lines(buffer, lambda got: len(of(got, "run.finished")) == 18,
                           "18 finished runs")

        for order, run_id in runs.items():
            ids = {"flow": "story", "run_id": run_id, "key": str(order),
                   "correlation_id": f"cid-{order}"}
            story_of = [line for line in lines if line.get("run_id") == run_id
                        and line.get("event") in RUN_EVENTS]
            assert all(line["level"] == "INFO" and line["logger"] == "flowrunner.runs"
                       for line in story_of)
            [accepted] = of(story_of, "run.accepted", **ids)
            assert accepted["trigger"] == "webhook"
            [retry] = of(story_of, "run.retry_scheduled", **ids, step="book")
            assert (retry["attempt"], retry["reason_kind"], retry["http_status"]) == \
                   (1, "http_status", 503)
            assert retry["delay_ms"] == pytest.approx(10, abs=1)
            assert retry["reason"].startswith("POST http://") and "503" in retry["reason"]
            [finished] = of(story_of, "run.finished", **ids)
            assert finished["duration_ms"] > 0
            if orders[order] == "BAD":
                [dead] = of(story_of, "run.dead_lettered", **ids, step="book")
                assert (dead["reason_kind"], dead["http_status"]) == ("http_status", 503)
                assert "answered 503" in dead["reason"]
                assert finished["status"] == "dead_lettered"
                events = ["run.accepted", "run.retry_scheduled", "run.dead_lettered",
                          "run.finished"]
            else:
                assert not of(story_of, "run.dead_lettered")
                assert finished["status"] == "succeeded"
                events = ["run.accepted", "run.retry_scheduled", "run.finished"]
            assert [line["event"] for line in story_of] == events

            [access] = of(lines, "http.access", correlation_id=f"cid-{order}")
            assert (access["method"], access["path"], access["status"],
                    access["client"]) == ("POST", "/hooks/story", 202, "127.0.0.1")
            assert access["logger"] == "flowrunner.access" and access["duration_ms"] > 0
        assert len(of(lines, "run.dead_lettered")) == 8

        # replayed (the downstream still refuses it) and discarded, each by whom
        entries = sorted(story.app.store.list_dead_letters(DeadLetterFilter()),
                         key=lambda e: e.key or "")
        assert len(entries) == 8
        replay = story.app.replay(entries[0].id, who="console:alice")
        story.app.discard(entries[1].id, who="cli:bob", reason="a test order")
        story.app.wait_for(replay.run_id, timeout=30)
        lines = wait_lines(buffer, lambda got: len(of(got, "run.finished")) == 19,
                           "the replay's end")
        [replayed] = of(lines, "dlq.replayed", entry_id=entries[0].id)
        assert (replayed["who"], replayed["run_id"], replayed["failed_run_id"],
                replayed["key"], replayed["flow"]) == ("console:alice", replay.run_id,
                                                       entries[0].run_id, entries[0].key,
                                                       "story")
        assert replayed["correlation_id"] == f"cid-{entries[0].key}"
        [again] = of(lines, "run.dead_lettered", run_id=replay.run_id)
        assert again["replay_of"] == entries[0].id
        [discarded] = of(lines, "dlq.discarded", entry_id=entries[1].id)
        assert (discarded["who"], discarded["run_id"], discarded["key"]) == \
               ("cli:bob", entries[1].run_id, entries[1].key)

        text = buffer.getvalue()
        assert MARKER not in text and SECRETS["GENERIC"] not in text
        assert {line["reason_kind"] for line in lines if "reason_kind" in line} <= \
               set(REASON_KINDS)


def test_the_text_format_tells_the_same_story_on_one_line_each(story: Running) -> None:
    with capture_logs("text") as buffer:
        good, bad = post(story, 7, "A"), post(story, 8, "BAD")
        for run_id in (good, bad):
            story.app.wait_for(run_id, timeout=30)
        deadline = time.monotonic() + 30
        while buffer.getvalue().count("run finished") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        text = buffer.getvalue()
    head = r"\S+Z INFO    flowrunner.runs \[story"
    for run_id, order in ((good, 7), (bad, 8)):
        ids = rf"run={run_id[:12]} key={order} cid=cid-{order}\]"
        assert re.search(rf"{head} {ids} run accepted from webhook$", text, re.M)
        assert re.search(rf"{head}/book {ids} step book failed \(http_status 503\) on attempt 1;"
                         rf" retry in 10 ms: POST http://\S+/book answered 503 ", text, re.M)
    assert re.search(rf"{head} run={good[:12]} key=7 cid=cid-7\] run finished: succeeded in "
                     r"[\d.]+ ms$", text, re.M)
    assert re.search(rf"{head}/book run={bad[:12]} key=8 cid=cid-8\] run dead-lettered at step "
                     r"book \(http_status\): step 'book' \(.*\): POST http://\S+ answered 503 ",
                     text, re.M)
    assert re.search(rf"{head} run={bad[:12]} key=8 cid=cid-8\] run finished: dead_lettered in "
                     r"[\d.]+ ms$", text, re.M)
    assert re.search(r"\S+Z INFO    flowrunner.access \[cid=cid-8\] POST /hooks/story 202 "
                     r"[\d.]+ ms client=127\.0\.0\.1$", text, re.M)
    assert MARKER not in text and SECRETS["GENERIC"] not in text


BASKET = """
flow: basket
key: $string(order_number)
trigger:
  webhook: {path: /hooks/basket}
steps:
  - id: lines
    split: {items: lines}
  - id: onward
    route:
      - otherwise: true
        flow: line
"""
LINE = """
flow: line
key: $string(order_number)
trigger:
  manual: {}
steps:
  - id: note
    set: {sku: sku}
"""


def spawned_stories(lines: list[dict[str, Any]], parent: str) -> None:
    """The basket *parent* split into two lines, each handed off to flow `line`: five runs,
    each with one accepted line naming its trigger and parent, and one finished line."""
    [webhook] = of(lines, "run.accepted", run_id=parent)
    assert (webhook["trigger"], webhook.get("parent_run_id")) == ("webhook", None)
    splits = of(lines, "run.accepted", trigger="split", parent_run_id=parent)
    assert {(s["flow"], s["key"]) for s in splits} == {("basket", "5")}
    assert len(splits) == 2
    handoffs = [h for s in splits
                for h in of(lines, "run.accepted", trigger="handoff", parent_run_id=s["run_id"])]
    assert len(handoffs) == 2 and {h["flow"] for h in handoffs} == {"line"}
    for run in [webhook, *splits, *handoffs]:
        assert run["logger"] == "flowrunner.runs" and run["level"] == "INFO"
        [finished] = of(lines, "run.finished", run_id=run["run_id"])
        assert finished["trigger"] == run["trigger"]
        assert len(of(lines, "run.accepted", run_id=run["run_id"])) == 1


def test_runs_spawned_by_a_split_and_a_hand_off_are_accepted_with_their_parent(
        tmp_path: Path) -> None:
    app = hook_app(tmp_path, {"basket": BASKET, "line": LINE})
    with capture_logs("json") as buffer, serving(app) as server:
        response = server.post("/hooks/basket", json.dumps(
            {"order_number": 5, "lines": [{"order_number": 5, "sku": "A"},
                                          {"order_number": 5, "sku": "B"}]}),
            {"Content-Type": "application/json"})
        assert response.status_code == 202, response.text
        lines = wait_lines(buffer, lambda got: len(of(got, "run.finished")) == 5,
                           "five finished runs")
    spawned_stories(lines, response.json()["run_id"])
