"""Events inside one process: the publish step and the event trigger from YAML through the real
loader, the embedded executor on a real SQLite store, and a real loopback HTTP server.

Covered here: what `flowrun validate` says about publishers and subscribers (file:line:col),
an event nobody subscribes to (logged, counted), the publish step's id, data and key, a
subscription's `when:` and `key:`, a replay of the publisher that publishes the same event id,
and `flowrun test` asserting published events and feeding a subscriber an event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from engine.app import App
from engine.cli import main
from engine.events import Event
from engine.records import RunState
from engine.settings import Settings
from engine.store.base import DeadLetterFilter, RunFilter
from tests.conftest import ROOT

PUBLISHER = """flow: pub
steps:
  - id: emit
    publish: {type: stock.moved, data: '{"sku": sku, "qty": qty}', id: move_id, key: sku}
"""

SUBSCRIBER = """flow: %s
trigger:
  event: {type: stock.moved%s}
steps:
  - id: note
    set: {seen: sku}
"""


def write(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")


def validate(folder: Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["validate", str(folder), "--schemas",
                                       str(ROOT / "schemas")])
    return result.exit_code, [line for line in result.output.splitlines() if "event" in line]


NOBODY = ("pub.yaml:4:21 warning: steps[0].publish.type: event 'stock.moved' is published but "
          "no flow subscribes to it")


# -- flowrun validate -----------------------------------------------------------------------
@pytest.mark.parametrize(("files", "code", "expected"), [
    ({"pub": PUBLISHER, "sub": SUBSCRIBER % ("sub", "")}, 0, []),
    ({"pub": PUBLISHER}, 0, [NOBODY]),
    ({"sub": SUBSCRIBER % ("sub", "")}, 0,
     ["sub.yaml:3:17 warning: trigger.event.type: no flow publishes event 'stock.moved'"]),
    # a subscriber that does not load subscribes to nothing: the publisher is told so too
    ({"pub": PUBLISHER, "sub": SUBSCRIBER % ("sub", ", when: 'qty >'")}, 1,
     ["sub.yaml:3:42 trigger.event.when: JSONata syntax error", NOBODY]),
    ({"pub": PUBLISHER, "sub": SUBSCRIBER % ("sub", ", wehn: 'qty > 1'")}, 1,
     ["sub.yaml:3:30 trigger.event.wehn: unknown key 'wehn'; did you mean 'when'?", NOBODY]),
], ids=["matched", "nobody-subscribes", "nobody-publishes", "when-broken", "typo"])
def test_validate_reports_unmatched_events_and_broken_subscriptions(
        tmp_path: Path, files: dict[str, str], code: int, expected: list[str]) -> None:
    write(tmp_path / "flows", files)
    exit_code, lines = validate(tmp_path / "flows")
    assert exit_code == code, lines
    assert len(lines) == len(expected), lines
    for line, wanted in zip(sorted(lines), sorted(expected), strict=True):
        assert line.startswith(str(tmp_path / "flows" / wanted.split(" ", 1)[0])), line
        assert wanted.split(" ", 1)[1] in line, line


# -- on the embedded executor -----------------------------------------------------------------
@pytest.fixture
def app_for(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], App]]:
    apps: list[App] = []

    def make(files: dict[str, str]) -> App:
        write(tmp_path / "flows", files)
        app = App(Settings(flows=tmp_path / "flows", home=tmp_path / "home",
                           schemas=ROOT / "schemas"))
        assert app.flows.ok, [str(p) for p in app.flows.problems.errors]
        app.executor.start(resume=False)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.executor.stop()
        app.store.close()


def settle(app: App, flows: list[str], count: int) -> list[RunState]:
    deadline = time.monotonic() + 30
    while True:
        runs = [r for f in flows for r in app.store.list_runs(RunFilter(flow=f))]
        if len(runs) >= count and all(r.done for r in runs):
            return runs
        assert time.monotonic() < deadline, [(r.flow_id, r.status) for r in runs]
        time.sleep(0.02)


def events_counted(app: App, outcome: str) -> float:
    value = app.metrics.registry.get_sample_value(
        "flowrun_events_total", {"type": "stock.moved", "outcome": outcome})
    return value or 0.0


def test_an_event_nobody_subscribes_to_is_logged_and_counted_not_an_error(
        app_for: Callable[[dict[str, str]], App], caplog: pytest.LogCaptureFixture) -> None:
    app = app_for({"pub": PUBLISHER})
    caplog.set_level(logging.INFO, logger="flowrunner.events")
    accepted = app.accept(app.flows.flows["pub"], {"sku": "A", "qty": 2, "move_id": "m1"})
    (run,) = app.wait_for(accepted.run_id)
    assert run.status == "succeeded"
    assert run.envelope["meta"]["events"] == [
        {"type": "stock.moved", "id": "m1", "key": "A", "data": {"sku": "A", "qty": 2},
         "subscribers": []}]
    assert "event m1 (stock.moved) from flow pub has no subscriber" in caplog.text
    assert events_counted(app, "no_subscriber") == 1


def test_when_and_key_of_a_subscription_and_an_empty_event_id(
        app_for: Callable[[dict[str, str]], App]) -> None:
    app = app_for({"pub": PUBLISHER,
                   "big": SUBSCRIBER % ("big", ", when: 'qty > 10', key: '\"bin-\" & sku'"),
                   "all": SUBSCRIBER % ("all", "")})
    for body in ({"sku": "A", "qty": 2, "move_id": "m1"}, {"sku": "B", "qty": 20, "move_id": "m2"}):
        app.wait_for(app.accept(app.flows.flows["pub"], body).run_id)
    runs = settle(app, ["big", "all"], 3)
    assert sorted((r.flow_id, r.envelope["vars"]["seen"]) for r in runs) == [
        ("all", "A"), ("all", "B"), ("big", "B")]
    (big,) = [r for r in runs if r.flow_id == "big"]
    assert big.envelope["meta"]["order"]["key"] == "bin-B"  # the subscription's key wins
    assert big.envelope["headers"]["event-key"] == "B"  # the publisher's stays visible
    assert events_counted(app, "delivered") == 3

    accepted = app.accept(app.flows.flows["pub"], {"sku": "C", "qty": 1, "move_id": ""})
    (run,) = app.wait_for(accepted.run_id)
    assert run.status == "dead_lettered"
    assert run.error is not None and run.error["kind"] == "expression"
    assert "event id of 'stock.moved' is empty" in run.error["message"]


def test_a_subscription_that_cannot_be_evaluated_dead_letters_that_subscribers_run(
        app_for: Callable[[dict[str, str]], App]) -> None:
    app = app_for({"pub": PUBLISHER, "big": SUBSCRIBER % ("big", ", when: 'qty > 10'"),
                   "all": SUBSCRIBER % ("all", "")})
    body = {"sku": "A", "qty": "many", "move_id": "m1"}  # a string compared with a number
    app.wait_for(app.accept(app.flows.flows["pub"], body).run_id)
    runs = settle(app, ["big", "all"], 2)
    assert sorted((r.flow_id, r.status) for r in runs) == [("all", "succeeded"),
                                                           ("big", "dead_lettered")]
    (entry,) = app.store.list_dead_letters(DeadLetterFilter(flow="big"))
    assert entry.reason["kind"] == "subscription"
    assert "subscription of flow 'big' cannot be evaluated on event m1" in entry.message
    assert entry.original["body"] == {"sku": "A", "qty": "many"}
    assert events_counted(app, "subscription_error") == 1

    app.publish(Event("stock.moved", "m1", body))  # the same event again: no second entry
    assert len(app.store.list_dead_letters(DeadLetterFilter(flow="big"))) == 1


def test_a_replay_of_the_publisher_publishes_the_same_event_id_and_starts_nothing_twice(
        app_for: Callable[[dict[str, str]], App], httpserver: HTTPServer) -> None:
    refuse = [True]

    def erp(request: Request) -> Response:
        return Response("{}", status=400 if refuse[0] else 201, content_type="application/json")

    httpserver.expect_request("/erp", method="POST").respond_with_handler(erp)
    publisher = f"""flow: pub
steps:
  - id: emit
    publish: {{type: stock.moved}}
  - id: book
    call:
      http: {{method: POST, url: "{httpserver.url_for('/erp')}"}}
    retry: {{max_attempts: 1}}
"""
    app = app_for({"pub": publisher, "sub": SUBSCRIBER % ("sub", "")})
    accepted = app.accept(app.flows.flows["pub"], {"sku": "A", "qty": 2})
    (run,) = app.wait_for(accepted.run_id)
    assert run.status == "dead_lettered"
    (entry,) = app.store.list_dead_letters(DeadLetterFilter(flow="pub"))

    refuse[0] = False
    replay = app.replay(entry.id, start_from="start")
    (replayed,) = app.wait_for(replay.run_id)
    assert replayed.status == "succeeded"
    ids = [s.envelope["meta"]["events"][0]["id"] for s in (run, replayed)]
    assert ids == [f"{run.run_id}:emit"] * 2
    assert replayed.envelope["meta"]["events"][0]["subscribers"] == []
    (sub,) = settle(app, ["sub"], 1)
    assert sub.correlation_id == run.correlation_id
    assert events_counted(app, "duplicate") == 1


def test_publish_event_from_outside_a_flow(app_for: Callable[[dict[str, str]], App]) -> None:
    app = app_for({"pub": PUBLISHER, "sub": SUBSCRIBER % ("sub", "")})
    event = Event("stock.moved", "bus-1", {"sku": "Z", "qty": 1}, correlation_id="corr-9",
                  source_flow="amqp:stock")
    (first,) = app.publish(event)
    # redelivered by the bus: no second run (the first comes back while it is still queued,
    # to be queued again should its publisher have died before queuing it)
    again = app.publish(event)
    assert [r.run_id for r in again] in ([], [first.run_id])
    (run,) = settle(app, ["sub"], 1)
    assert run.run_id == first.run_id and run.correlation_id == "corr-9"
    assert run.envelope["headers"]["event-source-flow"] == "amqp:stock"


# -- flowrun test ---------------------------------------------------------------------------
def run_tests(folder: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["test", str(folder)])
    return result.exit_code, result.output


def test_flowrun_test_asserts_published_events_and_feeds_a_subscriber(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    write(flows, {"pub": PUBLISHER, "sub": SUBSCRIBER % ("sub", ", when: 'qty > 10'")})
    (flows / "pub.test.yaml").write_text("""flow: pub
cases:
  - name: publishes
    input: {body: {sku: A, qty: 2, move_id: m1}}
    expect:
      events: [{type: stock.moved, key: A, data: {sku: A, qty: 3}}]
  - name: publishes one
    input: {body: {sku: A, qty: 2, move_id: m1}}
    expect:
      events: []
""", encoding="utf-8")
    (flows / "sub.test.yaml").write_text("""flow: sub
cases:
  - name: a big move
    input: {body: {sku: A, qty: 20}}
    expect: {status: succeeded, vars: {seen: A}, assert: '$headers."event-type" = "stock.moved"'}
  - name: a small move is not taken
    input: {body: {sku: A, qty: 2}}
    expect: {subscribed: false}
  - name: a small move expected to run
    input: {body: {sku: A, qty: 3}}
    expect: {status: succeeded}
""", encoding="utf-8")
    code, output = run_tests(flows)
    assert code == 1, output
    failed = [line.split("::")[1].split("  (")[0] for line in output.splitlines()
              if line.startswith("FAIL")]
    assert sorted(failed) == ["a small move expected to run", "publishes", "publishes one"]
    assert "expect.events: event 1 of 1 differs" in output
    assert ("expect.events: the run and the runs it started published 1 event(s), expected 0"
            in output)
    assert "the subscription does not take this event (its when: is false)" in output
