"""The picture of a flow: the graph model of every construct, its SVG and Mermaid drawings,
every shipped flow drawn, `flowrun graph`, and real runs laid over their flow's graph."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer

from engine import graph_mermaid, graph_svg
from engine.app import App
from engine.cli import main
from engine.graph import Graph, build
from engine.graph_path import RunPath, run_path
from engine.loader import CompiledFlow, Loader
from engine.records import RunState
from engine.schemas import SchemaStore
from tests.conftest import ROOT, wait_until
from tests.engine import mermaid_check

SVG = "{http://www.w3.org/2000/svg}"
MakeApp = Callable[..., App]

EVERYTHING = """
flow: everything
description: Every construct a drawing shows.
trigger:
  webhook: {path: /hooks/everything}
defaults:
  retry: {max_attempts: 4, backoff: {initial: 2s, max: 5m}}
steps:
  - id: only_orders
    filter: type = "order"
  - id: by_country
    route:
      - when: country = "DE"
        goto: per_line
      - when: country = "XX"
        flow: other
      - when: country = "--"
        drop: true
      - when: country = "EU"
        goto: end
      - otherwise: true
        dead_letter: no such country
  - id: per_line
    split: {items: lines}
  - id: book
    call:
      http: {method: POST, url: "http://127.0.0.1:9/book"}
    rate_limit: {name: erp, per_second: 5}
    on_failure: {goto: complain}
    output: vars.booked
  - id: done
    log: {message: '"booked"'}
    next: end
  - id: complain
    fail: {reason: '"booking failed"'}
"""
OTHER = """
flow: other
steps:
  - id: note
    log: {message: '"handed over"'}
"""


def load(tmp_path: Path, flows: dict[str, str]) -> dict[str, CompiledFlow]:
    for name, text in flows.items():
        (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
    loaded = Loader(schemas=SchemaStore(ROOT / "schemas")).load_paths([tmp_path])
    assert loaded.ok, [str(p) for p in loaded.problems]
    return loaded.flows


def edges(drawn: Graph) -> set[tuple[str, str, str, str]]:
    return {(e.source, e.target, e.kind, e.label) for e in drawn.edges if not e.quiet}


def test_every_construct_is_a_node_or_an_edge(tmp_path: Path) -> None:
    flows = load(tmp_path, {"everything": EVERYTHING, "other": OTHER})
    drawn = build(flows["everything"], flows)
    assert [(n.id, n.role) for n in drawn.nodes] == [
        ("trigger", "trigger"), ("step:only_orders", "step"), ("step:by_country", "step"),
        ("step:per_line", "step"), ("step:book", "step"), ("step:done", "step"),
        ("step:complain", "step"), ("end", "end"), ("dead_letter", "dead_letter"),
        ("dropped", "dropped"), ("filtered", "filtered"), ("flow:other", "flow")]
    assert drawn.node("trigger").detail == "POST /hooks/everything"
    assert drawn.node("flow:other").flow == "other"
    book = drawn.node("step:book")
    assert (book.kind, book.tone) == ("call", "effect")
    assert book.detail == "http POST · http://127.0.0.1:9/book"
    assert book.notes == ("retry 4× · 2s ×2 ≤ 5m", "→ $vars.booked", "rate erp 5/s")
    assert edges(drawn) == {
        ("trigger", "step:only_orders", "next", ""),
        ("step:only_orders", "step:by_country", "next", "match"),
        ("step:only_orders", "filtered", "filtered", "no match"),
        ("step:by_country", "step:per_line", "branch", 'country = "DE"'),
        ("step:by_country", "flow:other", "branch", 'country = "XX"'),
        ("step:by_country", "dropped", "branch", 'country = "--"'),
        ("step:by_country", "end", "branch", 'country = "EU"'),  # goto: end
        ("step:by_country", "dead_letter", "branch", "otherwise"),
        ("step:per_line", "step:book", "split", "each item"),
        ("step:book", "step:done", "next", ""),
        ("step:book", "step:complain", "failure", "on failure"),  # on_failure: goto
        ("step:done", "end", "next", ""),  # next: end, though a step follows
        ("step:complain", "dead_letter", "failure", ""),  # a fail step fails by design
    }
    reason = next(e for e in drawn.edges if e.label == "otherwise")
    assert reason.hint == "otherwise · no such country"
    # a transform, log or filter that fails for good dead-letters: drawn only when taken
    quiet = {(e.source, e.target) for e in drawn.edges if e.quiet}
    assert ("step:done", "dead_letter") in quiet and ("step:only_orders", "dead_letter") in quiet


def test_the_trigger_notes_the_flow_s_service_level(tmp_path: Path) -> None:
    flows = load(tmp_path, {"everything": EVERYTHING.replace(
        "defaults:", "sla:\n  within: 4h\n  rules: [{key: 'B2B-*', within: 1d}]\n"
                     "  alert: {flow: other}\ndefaults:"), "other": OTHER})
    assert build(flows["everything"]).node("trigger").notes == ("SLA 4h (1 rule) · late → other",)
    assert build(flows["other"]).node("trigger").notes == ()


def test_publish_points_at_the_flows_subscribed_to_its_event(tmp_path: Path) -> None:
    flows = load(tmp_path, {
        "shipped": "flow: shipped\nsteps:\n  - id: tell\n    publish: {type: shipment.shipped}\n",
        "crm": "flow: crm\ntrigger: {event: {type: shipment.shipped}}\nsteps:\n"
               "  - id: note\n    log: {message: '\"noted\"'}\n",
        "other": "flow: other\ntrigger: {event: {type: order.placed}}\nsteps:\n"
                 "  - id: note\n    log: {message: '\"noted\"'}\n"})
    drawn = build(flows["shipped"], flows)
    assert ("step:tell", "flow:crm", "event", "event") in edges(drawn)
    assert "flow:other" not in {n.id for n in drawn.nodes}
    assert build(flows["crm"], flows).node("trigger").detail == "shipment.shipped"


def shipped_flows() -> dict[str, CompiledFlow]:
    loaded = Loader(schemas=SchemaStore(ROOT / "schemas")).load_paths([ROOT / "flows"])
    assert not loaded.problems.errors
    return loaded.flows


SHIPPED = shipped_flows()


@pytest.mark.parametrize("flow_id", sorted(SHIPPED))
def test_every_shipped_flow_draws(flow_id: str) -> None:
    flow = SHIPPED[flow_id]
    drawn = build(flow, SHIPPED)
    svg = ET.fromstring(graph_svg.render(drawn))  # well-formed XML, or this raises
    assert svg.tag == f"{SVG}svg" and svg.get("data-flow") == flow_id
    groups = [g for g in svg.iter(f"{SVG}g") if "step" in (g.get("class") or "").split()]
    assert [g.get("data-node") for g in groups] == [f"step:{s.id}" for s in flow.steps]
    assert float(svg.get("width", 0)) > 0 and float(svg.get("height", 0)) > 0
    text = graph_mermaid.render(drawn)
    assert mermaid_check.problems(text) == []
    labels = mermaid_check.node_labels(text)
    for step in flow.steps:
        assert any(label.startswith(f"{step.id} · {step.kind}") for label in labels.values())
    drawn_edges = [e for e in drawn.edges if not e.quiet]
    assert len(mermaid_check.edge_lines(text)) == len(drawn_edges)


def test_text_from_the_flow_stays_text(tmp_path: Path) -> None:
    hostile = 'qty > 0 and sku != "<script>x</script>" and note = "a|b # c & `d`"'
    flow = f"""
flow: hostile
steps:
  - id: pick
    route:
      - when: '{hostile.replace("'", "''")}'
        goto: fine
      - otherwise: fine
  - id: fine
    log: {{message: '"ok"'}}
"""
    drawn = build(load(tmp_path, {"hostile": flow})["hostile"])
    svg = graph_svg.render(drawn)
    root = ET.fromstring(svg)
    assert "<script" not in svg
    titles = ["".join(t.itertext()) for t in root.iter(f"{SVG}title")]
    assert hostile in titles
    text = graph_mermaid.render(drawn)
    assert mermaid_check.problems(text) == []
    assert "<script" not in text and "#lt;script#gt;" in text


def test_mermaid_check_finds_what_would_break_a_chart() -> None:
    broken = 'flowchart TD\n  n0("a "quoted" word")\n  n0 --> n1\n  classDef end fill:#fff\n'
    found = mermaid_check.problems(broken)
    assert any("raw quote" in p for p in found)
    assert any("undefined node n1" in p for p in found)
    assert any("keyword" in p for p in found)


# -- flowrun graph -----------------------------------------------------------------------------
def flowrun(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_flowrun_graph_writes_svg_mermaid_and_json(tmp_path: Path) -> None:
    flows = str(ROOT / "flows")
    code, out = flowrun("graph", "canonical-order-to-erp", "--flows", flows)
    assert code == 0, out
    steps = [g for g in ET.fromstring(out).iter(f"{SVG}g") if "step" in g.get("class", "")]
    assert len(steps) == len(SHIPPED["canonical-order-to-erp"].steps)
    target = tmp_path / "order.mmd"  # the suffix chooses Mermaid
    code, out = flowrun("graph", "canonical-order-to-erp", "--flows", flows, "-o", str(target))
    assert code == 0, out
    assert target.read_text(encoding="utf-8").startswith("flowchart TD\n")
    code, out = flowrun("graph", str(ROOT / "flows" / "shopify-order-intake.yaml"), "--flows",
                        flows, "--format", "svg", "--links", "{flow}.svg")
    assert code == 0, out
    assert 'href="canonical-order-to-erp.svg"' in out
    code, out = flowrun("graph", "wms-shipment-event", "--flows", flows, "--json")
    assert code == 0, out
    data = json.loads(out)
    assert {"step:shipped", "flow:crm-shipment-note"} <= {n["id"] for n in data["nodes"]}


def test_flowrun_graph_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    flows = str(ROOT / "flows")
    code, out = flowrun("graph", "canonical-order-to-erb", "--flows", flows)
    assert code == 1 and "no flow 'canonical-order-to-erb'" in out
    assert "did you mean 'canonical-order-to-erp'" in out.lower()
    code, out = flowrun("graph", "canonical-order-to-erp", "--flows", flows, "--links", "x.svg")
    assert code == 2 and "{flow}" in out
    code, out = flowrun("graph", "canonical-order-to-erp", "--flows", flows,
                        "-o", str(tmp_path / "missing" / "x.svg"))
    assert code == 1 and "cannot write" in out
    assert "Traceback" not in out


# -- runs laid over the graph ------------------------------------------------------------------
RUNS = """
flow: runs
trigger:
  webhook: {path: /hooks/runs}
steps:
  - id: only_orders
    filter: type = "order"
  - id: by_size
    route:
      - when: qty > 100
        goto: bulk
      - when: qty < 0
        dead_letter: negative quantity
      - otherwise: check
  - id: bulk
    log: {message: '"bulk"'}
  - id: check
    fail: {reason: '"qty " & $string(qty) & " refused"'}
    on_failure: {goto: refused}
  - id: refused
    transform: '$number("not a number")'
"""


def run_of(app: App, body: dict[str, object]) -> tuple[Graph, RunState]:
    flow = app.flows.flows["runs"]
    accepted = app.accept(flow, body, {})
    state = app.wait_for(accepted.run_id, timeout=30)[0]
    assert state.done, state
    return build(flow), state


def taken(drawn: Graph, path: RunPath) -> set[tuple[str, str]]:
    return {(drawn.edges[i].source, drawn.edges[i].target) for i in path.edges}


def test_a_run_s_path_marks_the_branch_the_failing_step_and_the_end(
        running_app: MakeApp) -> None:
    app = running_app({"runs": RUNS})
    drawn, state = run_of(app, {"type": "order", "qty": 500})
    assert state.status == "dead_lettered"
    path = run_path(drawn, state.steps, state.status)
    assert path.nodes == {"trigger": "passed", "step:only_orders": "passed",
                          "step:by_size": "passed", "step:bulk": "passed",
                          "step:check": "failed", "step:refused": "failed",
                          "dead_letter": "failed"}
    assert taken(drawn, path) == {
        ("trigger", "step:only_orders"), ("step:only_orders", "step:by_size"),
        ("step:by_size", "step:bulk"), ("step:bulk", "step:check"),
        ("step:check", "step:refused"),  # on_failure: goto
        ("step:refused", "dead_letter")}  # a quiet edge, drawn because the run took it
    svg = ET.fromstring(graph_svg.render(drawn, path))
    states = {g.get("data-node"): g.get("data-state") for g in svg.iter(f"{SVG}g")
              if g.get("data-node")}
    assert states["step:refused"] == "failed" and states["end"] is None
    out_of = {p.get("data-target"): p.get("data-taken") for p in svg.iter(f"{SVG}path")
              if p.get("data-source") == "step:refused"}
    assert out_of == {"end": None, "dead_letter": "true"}
    text = graph_mermaid.render(drawn, path)
    assert mermaid_check.problems(text) == []
    assert "class n4,n5,n7 run_failed" in text  # check, refused and the dead letter


@pytest.mark.parametrize(("body", "status", "end", "branch"), [
    ({"type": "invoice"}, "filtered", "filtered", None),
    ({"type": "order", "qty": -1}, "dead_lettered", "dead_letter", "qty < 0"),
])
def test_a_run_that_ends_early_reaches_its_end(running_app: MakeApp, body: dict[str, object],
                                               status: str, end: str,
                                               branch: str | None) -> None:
    app = running_app({"runs": RUNS})
    drawn, state = run_of(app, body)
    assert state.status == status
    path = run_path(drawn, state.steps, status)
    assert end in path.nodes
    labels = {drawn.edges[i].label for i in path.edges if drawn.edges[i].kind == "branch"}
    assert labels == ({branch} if branch else set())


SPLIT = """
flow: lines
steps:
  - id: per_line
    split: {items: lines}
  - id: note
    log: {message: '"line " & sku'}
"""


def test_each_item_of_a_split_comes_out_of_the_split_step(running_app: MakeApp) -> None:
    app = running_app({"lines": SPLIT})
    flow = app.flows.flows["lines"]
    accepted = app.accept(flow, {"lines": [{"sku": "A"}, {"sku": "B"}]}, {})
    parent, *children = app.wait_for(accepted.run_id, timeout=30)
    assert parent.status == "split" and [c.status for c in children] == ["succeeded"] * 2
    drawn = build(flow)
    whole = run_path(drawn, parent.steps, parent.status)
    assert taken(drawn, whole) == {("trigger", "step:per_line"), ("step:per_line", "step:note")}
    item = run_path(drawn, children[0].steps, children[0].status)
    assert item.nodes == {"step:per_line": "passed", "step:note": "passed", "end": "reached"}
    assert taken(drawn, item) == {("step:per_line", "step:note"), ("step:note", "end")}


def test_a_run_waiting_for_a_retry_waits_at_its_step(running_app: MakeApp,
                                                      httpserver: HTTPServer) -> None:
    httpserver.expect_request("/busy").respond_with_data("busy", status=503)
    waits = f"""
flow: waits
defaults:
  retry: {{max_attempts: 3, backoff: {{initial: 1h}}}}
steps:
  - id: first
    log: {{message: '"calling"'}}
  - id: busy
    call:
      http: {{method: POST, url: "{httpserver.url_for('/busy')}"}}
"""
    app = running_app({"waits": waits})
    flow = app.flows.flows["waits"]
    run_id = app.accept(flow, {}, {}).run_id
    state = wait_until(lambda: (s := app.store.get_run(run_id)) and s.status == "retrying" and s,
                       what="the run to wait for its retry")
    drawn = build(flow)
    path = run_path(drawn, state.steps, state.status,
                    waiting_at=flow.steps[state.position].id)
    assert path.nodes == {"trigger": "passed", "step:first": "passed", "step:busy": "waiting"}
    assert taken(drawn, path) == {("trigger", "step:first"), ("step:first", "step:busy")}
    svg = ET.fromstring(graph_svg.render(drawn, path))
    busy = next(g for g in svg.iter(f"{SVG}g") if g.get("data-node") == "step:busy")
    assert busy.get("data-state") == "waiting"


LOOPS = """
flow: loops
steps:
  - id: fetch
    log: {message: '"fetch"'}
  - id: decide
    route:
      - when: more
        goto: fetch
      - otherwise: finish
  - id: finish
    log: {message: '"done"'}
"""


def test_a_way_back_up_goes_round_the_boxes(tmp_path: Path) -> None:
    drawn = build(load(tmp_path, {"loops": LOOPS})["loops"])
    assert ("step:decide", "step:fetch", "branch", "more") in edges(drawn)
    svg = ET.fromstring(graph_svg.render(drawn))
    back = next(p for p in svg.iter(f"{SVG}path") if p.get("data-target") == "step:fetch"
                and p.get("data-source") == "step:decide")
    boxes = {g.get("data-node"): next(g.iter(f"{SVG}rect")) for g in svg.iter(f"{SVG}g")
             if g.get("data-node")}
    right = max(float(r.get("x", 0)) + float(r.get("width", 0)) for r in boxes.values())
    xs = [float(n) for n in re.findall(r"[ML ]?(-?\d+\.\d+),", back.get("d", ""))]
    assert max(xs) > right  # down the gutter right of every box
    assert float(svg.get("width", 0)) > max(xs)
    assert mermaid_check.problems(graph_mermaid.render(drawn)) == []


@pytest.mark.parametrize(("trigger", "detail"), [
    ("poll: {every: 90s, files: {dir: /srv/drop, pattern: '*.csv'}}",
     "every 90s · files /srv/drop · *.csv"),
    ("poll: {cron: '0 6 * * 1', http: {url: 'http://127.0.0.1:9/acks'}}",
     "cron 0 6 * * 1 · http http://127.0.0.1:9/acks"),
    ("consume: {connection: events, redis: {stream: wms, group: flowrunner}}",
     "redis wms · flowrunner"),
    ("event: {type: order.placed, when: total > 100}", "order.placed when total > 100"),
    ("webhook: {path: /hooks/x, methods: [POST, PUT]}", "POST|PUT /hooks/x"),
])
def test_the_trigger_says_what_starts_a_run(tmp_path: Path, trigger: str, detail: str) -> None:
    (tmp_path / "connections").mkdir()
    (tmp_path / "connections" / "events.yaml").write_text(
        "connection: events\nredis: {host: 127.0.0.1, port: 6379}\n", encoding="utf-8")
    (tmp_path / "flows").mkdir()
    text = (f"flow: started\ntrigger:\n  {trigger}\n"
            "steps:\n  - id: a\n    log: {message: '\"a\"'}\n")
    flows = load(tmp_path / "flows", {"started": text})
    node = build(flows["started"]).node("trigger")
    assert (node.title, node.detail) == (trigger.split(":")[0], detail)


def test_flowrun_graph_draws_a_recorded_run_s_path(running_app: MakeApp, tmp_path: Path) -> None:
    app = running_app({"runs": RUNS})
    _, state = run_of(app, {"type": "order", "qty": -1})
    assert state.status == "dead_lettered"
    env = {"FLOWRUN_HOME": str(tmp_path / "home"), "FLOWRUN_FLOWS": str(tmp_path / "flows")}
    runner = CliRunner()
    done = runner.invoke(main, ["graph", "--run", state.run_id[:12], "--json"], env=env)
    assert done.exit_code == 0, done.output
    run = json.loads(done.output)["run"]
    assert run["nodes"] == {"trigger": "passed", "step:only_orders": "passed",
                            "step:by_size": "passed", "dead_letter": "failed"}
    done = runner.invoke(main, ["graph", "runs", "--run", state.run_id, "--format", "mermaid"],
                         env=env)
    assert done.exit_code == 0 and mermaid_check.problems(done.output) == []
    assert "run_failed" in done.output
    done = runner.invoke(main, ["graph", "other", "--run", state.run_id], env=env)
    assert done.exit_code == 1 and "a run of flow 'runs', not 'other'" in done.output
    done = runner.invoke(main, ["graph", "--run", "0123456789ab"], env=env)
    assert done.exit_code == 1 and "no run '0123456789ab'" in done.output
    done = runner.invoke(main, ["graph"], env=env)
    assert done.exit_code == 2 and "--run" in done.output
