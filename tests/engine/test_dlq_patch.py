"""Fixing many dead letters at once with a JSONata patch (engine/dlq_patch): what the expression
sees and its errors, the preview's diff and dry run, the audit of every patched replay, an
expression that fails on some entries, and `flowrun dlq replay --patch` as a subprocess.

Entries fail against a real loopback ERP (test_dlq's: 400 for a quantity above 100), on the
embedded SQLite store with the embedded executor.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from engine import dlq_patch
from engine.app import App
from engine.dlq_patch import Patch, PatchError
from engine.records import DeadLetter
from engine.settings import Settings
from engine.store.base import DeadLetterFilter
from tests.engine.test_dlq import SCHEMA, Erp, fail, po_flow, settled

FIX_QTY = '$merge([$, {"qty": 100}])'
# fails on PO-2 alone, as an expression that meets data it was not written for
PARTIAL = '$entry.key = "PO-2" ? $error("no rule for " & $entry.key) : $merge([$, {"qty": 90}])'


def entry(body: Any, **extra: Any) -> DeadLetter:
    return DeadLetter(id="e1", run_id="r1", flow_id="po-intake", flow_version="v1",
                      step="send", reason={"message": "answered 400", "status": 400},
                      original={"body": {"po": "P1", "qty": 500, "from": "original"}},
                      envelope={"body": body, "headers": {}, "vars": {}, "meta": {}},
                      created_at=1.0, **{"key": "P1", **extra})


# -- the expression ----------------------------------------------------------------------------
def test_the_expression_sees_the_body_and_the_entry() -> None:
    patch = Patch('$merge([$, {"qty": 100, "note": $entry.flow & "/" & $entry.step & "/" & '
                  '$string($entry.status) & "/" & $entry.key}])')
    assert patch.apply(entry({"po": "P1", "qty": 500}), "failed-step") == {
        "po": "P1", "qty": 100, "note": "po-intake/send/400/P1"}
    # from the start: the original message's body
    assert patch.apply(entry({"po": "P1"}), "start")["from"] == "original"


def test_a_transform_rewrites_only_the_matching_lines() -> None:
    patch = Patch('$ ~> |lines[sku="DISCONTINUED-HP-59A"]|{"sku": "TONER-60X"}|')
    body = {"lines": [{"sku": "DISCONTINUED-HP-59A", "qty": 2}, {"sku": "PAPER-A4", "qty": 1}]}
    assert patch.apply(entry(body), "failed-step") == {
        "lines": [{"sku": "TONER-60X", "qty": 2}, {"sku": "PAPER-A4", "qty": 1}]}


@pytest.mark.parametrize(("source", "says", "position"), [
    ('$merge([$, {"qty": }])', "cannot be used as a unary operator", 20),
    ('{"a": 1', "position", None),
    ("   ", "the expression is empty", None),
])
def test_a_bad_expression_is_refused_with_its_position(source: str, says: str,
                                                       position: int | None) -> None:
    with pytest.raises(PatchError) as caught:
        Patch(source)
    assert says in str(caught.value) and str(caught.value).startswith("patch expression error")
    if position is not None:
        assert caught.value.position == position
        assert f"at position {position}" in str(caught.value)


def test_an_expression_that_fails_or_gives_nothing_says_so() -> None:
    with pytest.raises(PatchError, match=r"at position \d+: .*no rule for P1"):
        Patch('$error("no rule for " & $entry.key)').apply(entry({"po": "P1"}), "failed-step")
    with pytest.raises(PatchError, match="gave no value"):
        Patch("nothing_here").apply(entry({"po": "P1"}), "failed-step")


def test_a_patch_that_builds_a_huge_body_is_refused_for_that_entry() -> None:
    # a million numbers are 6.9 MB of JSON: refused before a preview diffs it or a replay stores it
    with pytest.raises(PatchError, match=r"made a body of 6,888,897 bytes of JSON; a patch may "
                                         r"make at most 4,194,304"):
        Patch("[1..1000000]").apply(entry({"po": "P1"}), "failed-step")
    near = Patch('$merge([$, {"note": $pad("", 4000000, "x")}])').apply(entry({"po": "P1"}),
                                                                        "failed-step")
    assert len(near["note"]) == 4_000_000  # a large body within the bound is fine


def test_the_guides_patches_do_what_it_says() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "dead-letters-and-failover.md")
    one, lines, partial = re.findall(r"```jsonata\n(.*?)```", guide.read_text("utf-8"),
                                     flags=re.S)
    sku = "DISCONTINUED-HP-59A"
    assert Patch(one).apply(entry({"sku": sku, "qty": 1}), "failed-step") == {
        "sku": "TONER-60X", "qty": 1}
    assert Patch(one).apply(entry({"sku": "PAPER-A4"}), "failed-step") == {"sku": "PAPER-A4"}
    body = {"lines": [{"sku": sku}, {"sku": "PAPER-A4"}]}
    assert Patch(lines).apply(entry(body), "failed-step") == {
        "lines": [{"sku": "TONER-60X"}, {"sku": "PAPER-A4"}]}
    with pytest.raises(PatchError, match="refund"):
        Patch(partial).apply(entry({"sku": sku}, key="10077"), "failed-step")


# -- through the App -----------------------------------------------------------------------------
@pytest.fixture
def env(tmp_path: Path, httpserver: HTTPServer) -> Iterator[dict[str, Any]]:
    flows = tmp_path / "flows"
    schemas = tmp_path / "schemas" / "test"
    flows.mkdir()
    schemas.mkdir(parents=True)
    (schemas / "po.json").write_text(json.dumps(SCHEMA), encoding="utf-8")
    (flows / "po-intake.yaml").write_text(po_flow(httpserver.url_for("/erp")), encoding="utf-8")
    erp = Erp()
    httpserver.expect_request("/erp", method="POST").respond_with_handler(erp)
    app = App(Settings(home=tmp_path / "home", flows=flows, schemas=tmp_path / "schemas"))
    app.executor.start()
    yield {"app": app, "erp": erp, "tmp": tmp_path, "home": tmp_path / "home", "flows": flows}
    app.executor.stop(timeout=2)
    app.store.close()


def test_patched_replays_are_audited_with_the_patch(env: dict[str, Any]) -> None:
    app: App = env["app"]
    entries = fail(app, {"po": "PO-1", "qty": 500}, {"po": "PO-3", "qty": 700})
    patch = Patch(FIX_QTY)
    for e in entries:
        dlq_patch.replay(app, e.id, patch, who="console:ops")
    for e in entries:
        done = settled(app, e.id)
        assert done.status == "replayed", done.audit
        item = done.audit[-1]
        assert (item["action"], item["who"], item["patch"], item["edited"], item["result"]) == (
            "replay", "console:ops", FIX_QTY, True, "succeeded")
    assert sorted((b["po"], b["qty"]) for b in env["erp"].received[-2:]) == [
        ("PO-1", 100), ("PO-3", 100)]


def test_an_entry_the_patch_fails_on_is_left_open_with_the_error(env: dict[str, Any]) -> None:
    app: App = env["app"]
    ok, bad = fail(app, {"po": "PO-1", "qty": 500}, {"po": "PO-2", "qty": 500})
    patch = Patch(PARTIAL)
    dlq_patch.replay(app, ok.id, patch, who="ops")
    with pytest.raises(PatchError, match="no rule for PO-2"):
        dlq_patch.replay(app, bad.id, patch, who="ops")
    assert settled(app, ok.id).status == "replayed"
    kept = app.store.get_dead_letter(bad.id)
    assert kept is not None and kept.status == "open"
    refusal = kept.audit[-1]
    assert refusal["action"] == "replay_refused" and refusal["patch"] == PARTIAL
    assert "no rule for PO-2" in refusal["reason"] and refusal["who"] == "ops"


def test_a_patched_body_the_flow_rejects_is_refused_and_audited(env: dict[str, Any]) -> None:
    app: App = env["app"]
    e, = fail(app, {"po": "PO-1", "qty": 500})
    with pytest.raises(dlq_patch.dlq.ReplayRefused, match="the edited body is refused"):
        # from the start, so the flow's validation sees the patched body
        dlq_patch.replay(app, e.id, Patch('$merge([$, {"qty": "many"}])'), who="ops",
                         start_from="start")
    kept = app.store.get_dead_letter(e.id)
    assert kept is not None and kept.status == "open"
    assert kept.audit[-1]["action"] == "replay_refused" and "qty" in kept.audit[-1]["patch"]


def test_the_preview_shows_the_diff_and_stops_before_the_call(env: dict[str, Any]) -> None:
    app: App = env["app"]
    entries = fail(app, *({"po": f"PO-{i}", "qty": 500} for i in range(1, 6)))
    sent = len(env["erp"].received)
    shown = dlq_patch.preview(app, [e.id for e in entries], Patch(PARTIAL), count=3)
    assert [p["entry"] for p in shown] == [e.id for e in entries[:3]]
    first, second, _ = shown
    assert '-  "qty": 500' in first["diff"] and '+  "qty": 90' in first["diff"]
    assert json.loads(first["after"]) == {"po": "PO-1", "qty": 90}
    assert first["resume_at"] == "send" and first["error"] is None
    path = first["dry_run"]
    assert path["status"] == "dry_run" and "before 'send'" in path["message"]
    assert second["error"] and "no rule for PO-2" in second["error"] and second["after"] is None
    assert len(env["erp"].received) == sent  # nothing was called
    assert all(app.store.get_dead_letter(e.id).audit == [] for e in entries)  # type: ignore[union-attr]
    assert dlq_patch.selection(app, [e.id for e in entries] + ["gone"]) == {
        "total": 5, "flows": {"po-intake": 5}, "missing": 1}


ROUTED = """flow: routed
key: po
steps:
  - id: by_size
    route:
      - when: qty > 100
        flow: big-orders
      - otherwise: send
  - id: send
    call:
      http: {{method: POST, url: "{url}"}}
    retry: {{max_attempts: 1}}
"""
BIG = """flow: big-orders
steps:
  - id: note
    set: {big: "yes"}
"""


def test_the_preview_shows_the_route_branch_and_hand_off_target(
        tmp_path: Path, httpserver: HTTPServer) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "routed.yaml").write_text(ROUTED.format(url=httpserver.url_for("/erp")),
                                       encoding="utf-8")
    (flows / "big-orders.yaml").write_text(BIG, encoding="utf-8")
    erp = Erp()
    erp.refuse = True
    httpserver.expect_request("/erp", method="POST").respond_with_handler(erp)
    app = App(Settings(home=tmp_path / "home", flows=flows))
    app.executor.start()
    try:
        accepted = app.accept(app.flows.flows["routed"], {"po": "PO-9", "qty": 5})
        state, = app.wait_for(accepted.run_id, timeout=10)
        assert state.status == "dead_lettered"
        ids = [e.id for e in app.store.list_dead_letters(DeadLetterFilter(flow="routed"))]
        big, = dlq_patch.preview(app, ids, Patch('$merge([$, {"qty": 500}])'),
                                 start_from="start")
        assert big["resume_at"] == "start"
        assert big["dry_run"]["status"] == "handed_off"
        assert big["dry_run"]["hand_off"] == ["big-orders"]
        assert [s["id"] for s in big["dry_run"]["steps"]] == ["by_size"]
        small, = dlq_patch.preview(app, ids, Patch('$merge([$, {"qty": 7}])'),
                                   start_from="start")
        assert small["dry_run"]["status"] == "dry_run" and small["dry_run"]["hand_off"] == []
        assert "stopped before 'send'" in small["dry_run"]["message"]
        assert len(erp.received) == 1  # only the first, failed run called the ERP
    finally:
        app.executor.stop(timeout=2)
        app.store.close()


# -- the command line ----------------------------------------------------------------------------
def flowrun(env: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "engine.cli", *args],
                          env={**os.environ, "FLOWRUN_HOME": str(env["home"]),
                               "FLOWRUN_FLOWS": str(env["flows"])},
                          cwd=env["tmp"], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def test_cli_previews_then_replays_all_matching_with_a_patch(env: dict[str, Any]) -> None:
    app: App = env["app"]
    entries = fail(app, *({"po": f"PO-{i}", "qty": 500} for i in range(1, 5)))
    app.executor.stop()
    app.store.close()
    erp: Erp = env["erp"]
    sent = len(erp.received)

    preview = flowrun(env, "dlq", "replay", "--all-matching", "--flow", "po-intake",
                      "--patch", PARTIAL, "--dry-run", "--preview", "4")
    assert preview.returncode == 1, preview.stderr  # the patch fails on PO-2
    out = preview.stdout
    assert "4 entries would be replayed with the patch (po-intake 4); previewing 4" in out
    assert '+  "qty": 90' in out and "dry run: no step ran; ends dry_run" in out
    assert "stopped before 'send' (call), which has side effects" in out
    assert "error: patch expression error at position" in out and "no rule for PO-2" in out
    assert len(erp.received) == sent

    bad = flowrun(env, "dlq", "replay", "--all-matching", "--flow", "po-intake",
                  "--patch", '$merge([$, {"qty": }])')
    assert bad.returncode == 1 and "patch expression error at position 20" in bad.stderr

    patch_file = env["tmp"] / "fix.jsonata"
    patch_file.write_text(PARTIAL, encoding="utf-8")
    done = flowrun(env, "dlq", "replay", "--all-matching", "--flow", "po-intake",
                   "--patch-file", str(patch_file))
    assert done.returncode == 1, done.stderr
    assert "4 entries, 0 not replayed successfully, 1 left open because the patch failed" \
        in done.stderr
    assert "left open: patch expression error" in done.stderr
    assert sorted(b["po"] for b in erp.received[sent:]) == ["PO-1", "PO-3", "PO-4"]
    assert {b["qty"] for b in erp.received[sent:]} == {90}

    listed = json.loads(flowrun(env, "dlq", "list", "--json", "--status", "all").stdout)
    by_key = {r["key"]: r for r in listed}
    assert {k: r["status"] for k, r in by_key.items()} == {
        "PO-1": "replayed", "PO-2": "open", "PO-3": "replayed", "PO-4": "replayed"}
    assert all(r["audit"][-1]["patch"] == PARTIAL for r in listed)
    assert by_key["PO-2"]["audit"][-1]["action"] == "replay_refused"
    assert {e.id for e in entries} == {r["id"] for r in listed}
