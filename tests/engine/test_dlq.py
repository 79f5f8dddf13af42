"""The dead-letter queue end to end: fail, find, fix, replay (singly and in bulk), discard, audit.

Messages fail against a real loopback server (400 for quantities above 100, or while the server
is told to refuse everything); entries are found with the store's filters, replayed from the
failed step or from the start, on the version they failed on or the current one, and the
`flowrun dlq` and `flowrun runs` commands are run as subprocesses on the same FLOWRUN_HOME.
Every test runs on the embedded SQLite store and on PostgreSQL alone (FLOWRUN_DATABASE_URL,
the embedded executor): the entries, their audit and the commands must not differ.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from engine import dlq
from engine.app import App
from engine.cli import main
from engine.records import DeadLetter
from engine.settings import Settings
from engine.store.base import DeadLetterFilter, RunFilter, StoreError

SCHEMA = {"type": "object", "required": ["po", "qty"],
          "properties": {"po": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}}


def po_flow(url: str, version: int = 1) -> str:
    json_line = ', json: \'$merge([$, {"v": 2}])\'' if version == 2 else ""
    return f"""flow: po-intake
description: version {version}
key: po
steps:
  - id: check
    validate: {{schema: test/po}}
  - id: send
    call:
      http: {{method: POST, url: "{url}"{json_line}}}
    retry: {{max_attempts: 1}}
"""


class Erp:
    """400 for a quantity above 100 (or for everything while ``refuse`` is set), else 201."""

    def __init__(self) -> None:
        self.refuse = False
        self.received: list[dict[str, Any]] = []

    def __call__(self, request: Request) -> Response:
        body = request.get_json()
        self.received.append(body)
        if self.refuse or body.get("qty", 0) > 100:
            return Response(json.dumps({"error": "qty must be at most 100"}), status=400,
                            content_type="application/json")
        return Response('{"ok": true}', status=201, content_type="application/json")


@pytest.fixture
def erp(httpserver: HTTPServer) -> Erp:
    server = Erp()
    httpserver.expect_request("/erp", method="POST").respond_with_handler(server)
    return server


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path,
        httpserver: HTTPServer) -> Iterator[dict[str, Any]]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" \
        else None
    flows = tmp_path / "flows"
    schemas = tmp_path / "schemas" / "test"
    flows.mkdir()
    schemas.mkdir(parents=True)
    (schemas / "po.json").write_text(json.dumps(SCHEMA), encoding="utf-8")
    (flows / "po-intake.yaml").write_text(po_flow(httpserver.url_for("/erp")), encoding="utf-8")
    apps: list[App] = []

    def app() -> App:
        made = App(Settings(home=tmp_path / "home", flows=flows, schemas=tmp_path / "schemas",
                            database_url=database_url))
        made.executor.start()
        apps.append(made)
        return made

    yield {"app": app, "flows": flows, "home": tmp_path / "home", "tmp": tmp_path,
           "database_url": database_url or ""}
    for made in apps:
        made.executor.stop(timeout=2)
        made.store.close()


def fail(app: App, *bodies: Any) -> list[DeadLetter]:
    """Run each body through po-intake; every run must end dead-lettered."""
    entries = []
    for body in bodies:
        accepted = app.accept(app.flows.flows["po-intake"], body)
        state, = app.wait_for(accepted.run_id, timeout=10)
        assert state.status == "dead_lettered", state
        entry, = [e for e in app.store.list_dead_letters(DeadLetterFilter(status=None))
                  if e.run_id == state.run_id]
        entries.append(entry)
    return entries


def settled(app: App, entry_id: str, timeout: float = 10) -> DeadLetter:
    """The entry once its replay has finished (the audit records the result)."""
    deadline = time.monotonic() + timeout
    while True:
        entry = app.store.get_dead_letter(entry_id)
        assert entry is not None
        if entry.status != "replaying" or time.monotonic() > deadline:
            return entry
        time.sleep(0.02)


def cli_env(env: dict[str, Any]) -> dict[str, str]:
    # the schemas are found as the schemas/ folder next to the flows
    return {"FLOWRUN_HOME": str(env["home"]), "FLOWRUN_FLOWS": str(env["flows"]),
            "FLOWRUN_DATABASE_URL": env["database_url"]}


def flowrun(env: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    """`flowrun ARGS` as a process of its own, configured by environment variables only."""
    return subprocess.run([sys.executable, "-m", "engine.cli", *args],
                          env={**os.environ, **cli_env(env)}, cwd=env["tmp"],
                          capture_output=True, text=True, timeout=60)


def cli(env: dict[str, Any], *args: str) -> Result:
    """`flowrun ARGS` in this process (the same click command, the same environment variables)."""
    result = CliRunner().invoke(main, list(args), env=cli_env(env))
    assert not isinstance(result.exception, Exception) or isinstance(result.exception,
                                                                     SystemExit), result.exc_info
    return result


# -- finding entries ---------------------------------------------------------------------------
def test_list_dead_letters_filters(env: dict[str, Any], erp: Erp) -> None:
    app = env["app"]()
    before = time.time()
    too_many = fail(app, {"po": "P1", "qty": 500}, {"po": "P2", "qty": 600})
    invalid, = fail(app, {"po": "P3", "qty": "many"})
    after = time.time()

    def ids(**query: Any) -> set[str]:
        return {e.id for e in app.store.list_dead_letters(DeadLetterFilter(**query))}

    sent = {e.id for e in too_many}
    assert ids(flow="po-intake") == sent | {invalid.id}
    assert ids(flow="other") == set()
    assert ids(step="send") == sent
    assert ids(step="check") == {invalid.id}
    assert ids(error="answered 400") == sent
    assert ids(error="schema violation") == {invalid.id}
    assert ids(error="100%_") == set()  # LIKE wildcards are taken literally
    assert ids(since=before, until=after + 1) == sent | {invalid.id}
    assert ids(since=after + 1) == set()
    assert ids(until=before) == set()
    assert ids(flow="po-intake", step="send", limit=1) <= sent and len(ids(limit=1)) == 1
    entry = app.store.get_dead_letter(too_many[0].id)
    assert entry is not None
    assert entry.original["body"] == {"po": "P1", "qty": 500}
    assert entry.key == "P1"
    assert entry.reason["detail"]["body"] == '{"error": "qty must be at most 100"}'
    assert invalid.reason["detail"]["violations"][0]["path"] == "$.qty"


# -- replay ------------------------------------------------------------------------------------
def test_edited_replays_from_failed_step_and_start_on_original_and_current_versions(
        env: dict[str, Any], erp: Erp, httpserver: HTTPServer) -> None:
    app = env["app"]()
    a, b, c, d = fail(app, *({"po": f"P{i}", "qty": 500 + i} for i in range(4)))
    original_version = a.flow_version

    # the operator fixes the quantity and replays from the failed step on the original flow
    state = app.replay(a.id, start_from="failed-step", version="original",
                       body={"po": "P0", "qty": 5}, edited=True, who="ops-anna")
    assert state.envelope["meta"]["replay_of"] == a.id
    replayed, = app.wait_for(state.run_id, timeout=10)
    assert replayed.status == "succeeded", replayed.error
    assert replayed.trigger == "replay" and replayed.correlation_id == a.correlation_id
    assert [s["id"] for s in replayed.steps] == ["send"]  # from the failed step only
    assert erp.received[-1] == {"po": "P0", "qty": 5}

    # the flow changes; a new process loads version 2
    (env["flows"] / "po-intake.yaml").write_text(po_flow(httpserver.url_for("/erp"), 2),
                                                 encoding="utf-8")
    app2 = env["app"]()
    assert app2.flows.flows["po-intake"].version != original_version

    cases = [(b, "start", "current", {"po": "P1", "qty": 6}, True),
             (c, "failed-step", "original", {"po": "P2", "qty": 7}, False),
             (d, "start", "original", {"po": "P3", "qty": 8}, False)]
    for entry, start_from, version, body, is_v2 in cases:
        state = app2.replay(entry.id, start_from=start_from, version=version, body=body,
                            edited=True)
        replayed, = app2.wait_for(state.run_id, timeout=10)
        assert replayed.status == "succeeded", (start_from, version, replayed.error)
        expected = {**body, "v": 2} if is_v2 else body
        assert erp.received[-1] == expected, (start_from, version)
        steps = [s["id"] for s in replayed.steps]
        assert steps == (["check", "send"] if start_from == "start" else ["send"])
        assert replayed.flow_version == (app2.flows.flows["po-intake"].version
                                         if version == "current" else original_version)

    # the audit trail of every entry records who, when, how and the result
    for entry, who in ((a, "ops-anna"), (b, dlq.operator()), (c, dlq.operator())):
        done = settled(app2, entry.id)
        assert done.status == "replayed"
        item, = done.audit
        assert item["action"] == "replay" and item["who"] == who
        assert item["edited"] is True and item["result"] == "succeeded"
        assert item["at"] <= item["finished_at"]
        assert item["run_id"] and item["start_from"] in ("start", "failed-step")
    b_audit = settled(app2, b.id).audit[0]
    assert (b_audit["start_from"], b_audit["version"]) == ("start",
                                                           app2.flows.flows["po-intake"].version)
    assert settled(app2, c.id).audit[0]["version"] == original_version
    assert app2.store.list_dead_letters(DeadLetterFilter()) == []  # none open any more


def test_replay_without_edit_uses_the_original_message(env: dict[str, Any], erp: Erp) -> None:
    app = env["app"]()
    erp.refuse = True
    entry, = fail(app, {"po": "P9", "qty": 9})
    erp.refuse = False
    state = app.replay(entry.id, start_from="start")
    replayed, = app.wait_for(state.run_id, timeout=10)
    assert replayed.status == "succeeded"
    assert erp.received == [{"po": "P9", "qty": 9}] * 2


def test_a_second_replay_of_a_replayed_entry_is_refused_unless_forced(env: dict[str, Any],
                                                                      erp: Erp) -> None:
    app = env["app"]()
    erp.refuse = True
    entry, = fail(app, {"po": "P8", "qty": 8})
    erp.refuse = False
    first = app.replay(entry.id, start_from="start")
    app.wait_for(first.run_id, timeout=10)
    assert app.store.get_dead_letter(entry.id).status == "replayed"  # type: ignore[union-attr]
    with pytest.raises(dlq.ReplayRefused, match=rf"already replayed successfully \(run "
                                                rf"{first.run_id}\).*--force"):
        app.replay(entry.id, start_from="start")
    assert erp.received == [{"po": "P8", "qty": 8}] * 2  # the refused replay sent nothing
    again = app.replay(entry.id, start_from="start", force=True)
    assert app.wait_for(again.run_id, timeout=10)[0].status == "succeeded"
    assert erp.received == [{"po": "P8", "qty": 8}] * 3
    assert [a["run_id"] for a in app.store.get_dead_letter(entry.id).audit  # type: ignore[union-attr]
            ] == [first.run_id, again.run_id]


def test_wait_for_a_replay_returns_with_its_result_on_the_audit_trail(env: dict[str, Any],
                                                                     erp: Erp) -> None:
    app = env["app"]()
    entry, = fail(app, {"po": "P1", "qty": 500})
    for _ in range(5):  # the race was narrow: try it a few times
        state = app.replay(entry.id, force=True)
        app.wait_for(state.run_id, timeout=10)
        last = app.store.get_dead_letter(entry.id).audit[-1]  # type: ignore[union-attr]
        assert last["run_id"] == state.run_id and last["result"] == "dead_lettered"


def test_a_replay_that_fails_again_reopens_the_entry(env: dict[str, Any], erp: Erp) -> None:
    app = env["app"]()
    entry, = fail(app, {"po": "P1", "qty": 500})
    state = app.replay(entry.id)
    replayed, = app.wait_for(state.run_id, timeout=10)
    assert replayed.status == "dead_lettered"
    again = settled(app, entry.id)
    assert again.status == "open"
    assert again.audit[-1]["result"] == "dead_lettered"


def test_an_edited_body_that_fails_validation_is_refused_and_audited(env: dict[str, Any],
                                                                     erp: Erp) -> None:
    app = env["app"]()
    entry, = fail(app, {"po": "P1", "qty": 500})
    sent_before = len(erp.received)
    with pytest.raises(dlq.ReplayRefused) as refused:
        app.replay(entry.id, start_from="start", body={"po": "P1", "qty": 0}, edited=True,
                   who="ops-ben")
    assert "schema violation" in str(refused.value)
    assert refused.value.detail["violations"] == [
        {"path": "$.qty", "message": "0 is less than the minimum of 1"}]
    kept = app.store.get_dead_letter(entry.id)
    assert kept is not None and kept.status == "open"
    item, = kept.audit
    assert item["action"] == "replay_refused" and item["who"] == "ops-ben"
    assert "schema violation" in item["reason"]
    assert len(erp.received) == sent_before  # nothing was sent
    assert len(app.store.list_runs(RunFilter())) == 1


def test_replay_of_an_entry_whose_flow_was_deleted_is_refused(env: dict[str, Any],
                                                              erp: Erp) -> None:
    app = env["app"]()
    entry, = fail(app, {"po": "P1", "qty": 500})
    (env["flows"] / "po-intake.yaml").unlink()
    later = env["app"]()
    for version in ("original", "current"):
        with pytest.raises(dlq.ReplayRefused, match="flow 'po-intake' no longer exists"):
            later.replay(entry.id, version=version)
    kept = later.store.get_dead_letter(entry.id)
    assert kept is not None and kept.status == "open"


def test_replay_of_an_unknown_entry_is_refused(env: dict[str, Any], erp: Erp) -> None:
    with pytest.raises(dlq.ReplayRefused, match="no dead-letter entry 'nope'"):
        env["app"]().replay("nope")


def test_a_replay_cut_short_between_its_two_writes_is_not_recorded_twice(
        env: dict[str, Any], erp: Erp) -> None:
    """The replay's run is recorded, then the store fails before the entry is marked (the
    database went away, the process died): the entry is still open. Replaying it again finds
    the run recorded the first time instead of recording a second one, and the order reaches
    the ERP once."""
    app = env["app"]()
    entry, = fail(app, {"po": "P7", "qty": 500})
    app.executor.stop(timeout=5)  # nothing runs the replay before the second attempt
    fixed = {"po": "P7", "qty": 50}
    real_update = app.store.update_dead_letter

    def away(_entry: DeadLetter) -> None:
        raise StoreError("the state database went away")

    app.store.update_dead_letter = away  # type: ignore[method-assign]
    with pytest.raises(StoreError):
        app.replay(entry.id, body=fixed, edited=True)
    app.store.update_dead_letter = real_update  # type: ignore[method-assign]
    assert app.store.get_dead_letter(entry.id).status == "open"  # type: ignore[union-attr]

    def replays() -> list[str]:
        return [r.run_id for r in app.store.list_runs(RunFilter(flow="po-intake", limit=100))
                if r.envelope.get("meta", {}).get("replay_of") == entry.id]

    first, = replays()
    again = app.replay(entry.id, body=fixed, edited=True, who="ops-dana")
    assert again.run_id == first and replays() == [first]
    app.executor.start()
    done = settled(app, entry.id)
    assert done.status == "replayed"
    assert [item["run_id"] for item in done.audit if item["action"] == "replay"] == [first]
    assert [b for b in erp.received if b.get("qty") == 50] == [fixed]


def test_discard(env: dict[str, Any], erp: Erp) -> None:
    app = env["app"]()
    entry, keep = fail(app, {"po": "P1", "qty": 500}, {"po": "P2", "qty": 500})
    app.discard(entry.id, who="ops-carl", reason="duplicate order")
    gone = app.store.get_dead_letter(entry.id)
    assert gone is not None and gone.status == "discarded"
    item, = gone.audit
    assert (item["action"], item["who"], item["reason"]) == ("discard", "ops-carl",
                                                             "duplicate order")
    assert [e.id for e in app.store.list_dead_letters(DeadLetterFilter())] == [keep.id]
    assert [e.id for e in app.store.list_dead_letters(DeadLetterFilter(status="discarded"))
            ] == [entry.id]
    with pytest.raises(dlq.ReplayRefused, match="discarded"):
        app.replay(entry.id)


def test_dry_run_replay_sends_nothing(env: dict[str, Any], erp: Erp) -> None:
    app = env["app"]()
    entry, = fail(app, {"po": "P1", "qty": 500})
    sent = len(erp.received)
    state = app.replay(entry.id, start_from="start", dry_run=True)
    assert state.status == "dry_run"
    assert "send" in (state.error or {})["message"]
    assert len(erp.received) == sent
    kept = app.store.get_dead_letter(entry.id)
    assert kept is not None and kept.status == "open" and kept.audit == []


# -- the command line --------------------------------------------------------------------------
def test_cli_list_show_bulk_replay_and_runs(env: dict[str, Any], erp: Erp) -> None:
    app = env["app"]()
    erp.refuse = True
    entries = fail(app, {"po": "P1", "qty": 1}, {"po": "P2", "qty": 2}, {"po": "P3", "qty": 3})
    app.executor.stop()
    app.store.close()
    erp.refuse = False

    listed = cli(env, "dlq", "list", "--json", "--flow", "po-intake")
    assert listed.exit_code == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {r["id"] for r in rows} == {e.id for e in entries}
    assert all(r["reason"]["status"] == 400 and r["status"] == "open" for r in rows)

    shown = cli(env, "dlq", "show", entries[0].id)
    assert shown.exit_code == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["original"]["body"] == {"po": "P1", "qty": 1}
    assert detail["reason"]["step"] == "send" and detail["audit"] == []

    replay = flowrun(env, "dlq", "replay", "--all-matching", "--flow", "po-intake")
    assert replay.returncode == 0, replay.stderr
    progress = [line for line in replay.stderr.splitlines() if line.startswith("[")]
    assert len(progress) == 3
    assert [line.split("]")[0] for line in progress] == ["[1/3", "[2/3", "[3/3"]
    assert all("replaying as run" in line for line in progress)
    assert sorted(line.split(":")[0] for line in replay.stdout.splitlines()) == sorted(
        e.id for e in entries)
    assert all(line.endswith("succeeded") for line in replay.stdout.splitlines())
    assert "3 entries, 0 not replayed successfully" in replay.stderr
    assert sorted(b["po"] for b in erp.received[-3:]) == ["P1", "P2", "P3"]

    after = cli(env, "dlq", "list", "--json", "--status", "all")
    assert {(r["id"], r["status"]) for r in json.loads(after.stdout)} == {
        (e.id, "replayed") for e in entries}
    assert {r["audit"][0]["result"] for r in json.loads(after.stdout)} == {"succeeded"}

    runs = cli(env, "runs", "--flow", "po-intake")
    assert runs.exit_code == 0, runs.stderr
    lines = runs.stdout.splitlines()
    assert lines[0].split() == ["RUN", "FLOW", "STATUS", "KEY", "CREATED", "(UTC)", "ERROR"]
    statuses = [line.split()[2] for line in lines[1:]]
    assert sorted(statuses) == ["dead_lettered"] * 3 + ["succeeded"] * 3
    assert sum("send (http 400): POST" in line for line in lines) == 3, runs.stdout

    runs_json = json.loads(cli(env, "runs", "--json", "--status", "succeeded").stdout)
    assert len(runs_json) == 3 and {r["trigger"] for r in runs_json} == {"replay"}
    shown_run = cli(env, "runs", "show", runs_json[0]["run_id"][:10])
    assert shown_run.exit_code == 0, shown_run.stderr
    text = shown_run.stdout
    assert f"run {runs_json[0]['run_id']}" in text and "status succeeded" in text
    assert "STEP" in text and "send" in text and "call" in text
    failed_run = cli(env, "runs", "show", entries[0].run_id)
    assert "status dead_lettered" in failed_run.stdout
    assert "error: step 'send'" in failed_run.stdout and "answered 400" in failed_run.stdout


def test_cli_refusals_exit_1_without_traceback(env: dict[str, Any], erp: Erp) -> None:
    app = env["app"]()
    entry, = fail(app, {"po": "P1", "qty": 500})
    app.executor.stop()
    app.store.close()
    body = env["tmp"] / "edited.json"
    body.write_text('{"po": "P1", "qty": -3}', encoding="utf-8")
    refused = cli(env, "dlq", "replay", entry.id, "--body", str(body), "--from", "start")
    assert refused.exit_code == 1
    assert f"{entry.id}: refused: the edited body is refused" in refused.stderr
    assert "$.qty" in refused.stderr and "Traceback" not in refused.stderr
    missing = flowrun(env, "dlq", "show", "no-such-entry")
    assert missing.returncode == 1
    assert "no dead-letter entry 'no-such-entry'" in missing.stderr
    assert "Traceback" not in missing.stderr
