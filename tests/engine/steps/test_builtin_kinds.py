"""Every built-in step kind, from YAML through the real loader and a real `Runner`.

Each test writes flow files, loads them with `Loader.load_paths` (so hand-offs between flows
resolve as they do in production) and runs one message with `engine.local.run_to_completion`.
"""

from __future__ import annotations

import copy
import json
import logging
import textwrap
from pathlib import Path
from typing import Any

import pytest

from engine.loader import FlowSet, Loader
from engine.local import resources_factory, run_to_completion
from engine.records import RunState
from engine.refs import Secrets
from engine.runner import MAX_STEPS_PER_RUN, Runner
from tests.conftest import ROOT

ORDER = json.loads((ROOT / "schemas" / "canonical" / "order.v1.json").read_text())["examples"][0]


def load(loader: Loader, folder: Path, *texts: str) -> FlowSet:
    for text in texts:
        text = textwrap.dedent(text).lstrip("\n")
        flow_id = text.split("\n", 1)[0].removeprefix("flow:").strip()
        (folder / f"{flow_id}.yaml").write_text(text, encoding="utf-8")
    flows = loader.load_paths([folder])
    assert flows.ok, "\n".join(str(p) for p in flows.problems)
    return flows


def never_sleep(seconds: float) -> None:
    raise AssertionError(f"no step in these flows should wait for a retry ({seconds}s)")


def run(flows: FlowSet, flow_id: str, body: Any, headers: dict[str, Any] | None = None,
        ) -> list[RunState]:
    secrets = Secrets(environ={})
    runner = Runner(resources_factory(secrets), secrets.redactor)
    return run_to_completion(flows, flows.flows[flow_id], body, headers, runner=runner,
                             sleep=never_sleep)


def executed(state: RunState) -> list[str]:
    return [s["id"] for s in state.steps]


# -- transform -------------------------------------------------------------------------------

def test_transform_jsonata_sees_body_headers_vars_and_meta(loader: Loader, tmp_path: Path) -> None:
    flows = load(loader, tmp_path, """
        flow: shape
        steps:
          - id: remember
            set: {region: 'country = "DE" ? "eu" : "us"'}
          - id: to_canonical
            transform:
              jsonata: |
                {
                  "order": $string(number),
                  "lines": $count(items),
                  "delivery": $headers."x-delivery-id",
                  "region": $vars.region,
                  "flow": $meta.flow,
                  "run": $meta.run_id
                }
        """)
    (state,) = run(flows, "shape", {"number": 1001, "country": "DE", "items": [1, 2, 3]},
                   {"x-delivery-id": "d-17"})
    assert state.status == "succeeded"
    assert state.envelope["body"] == {"order": "1001", "lines": 3, "delivery": "d-17",
                                      "region": "eu", "flow": "shape", "run": state.run_id}
    assert executed(state) == ["remember", "to_canonical"]


def test_transform_jmespath_sees_body_headers_vars_and_meta(loader: Loader,
                                                            tmp_path: Path) -> None:
    flows = load(loader, tmp_path, """
        flow: shape-jmes
        steps:
          - id: remember
            set: {region: '"eu"'}
          - id: pick
            transform:
              jmespath: >-
                {skus: items[?qty > `1`].sku, delivery: $headers."x-delivery-id",
                 region: $vars.region, flow: $meta.flow, literal: '$vars'}
        """)
    body = {"items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}, {"sku": "C", "qty": 5}]}
    (state,) = run(flows, "shape-jmes", body, {"x-delivery-id": "d-18"})
    assert state.status == "succeeded"
    assert state.envelope["body"] == {"skus": ["A", "C"], "delivery": "d-18", "region": "eu",
                                      "flow": "shape-jmes", "literal": "$vars"}


def test_transform_output_to_vars_leaves_the_body(loader: Loader, tmp_path: Path) -> None:
    flows = load(loader, tmp_path, """
        flow: keep-body
        steps:
          - id: total
            transform: '$sum(items.price)'
            output: vars.total
          - id: label
            transform: {jmespath: 'length(items)'}
            output: vars.count
        """)
    body = {"items": [{"price": 2.5}, {"price": 4}]}
    (state,) = run(flows, "keep-body", body)
    assert state.status == "succeeded"
    assert state.envelope["body"] == body
    assert state.envelope["vars"] == {"total": 6.5, "count": 2}


def test_expression_error_dead_letters_naming_file_line_and_expression(loader: Loader,
                                                                       tmp_path: Path) -> None:
    flows = load(loader, tmp_path, """
        flow: bad-number
        steps:
          - id: first
            set: {seen: 'true'}

          - id: convert
            transform: '{"qty": qty + 1}'
          - id: never
            set: {reached: 'true'}
        """)
    (state,) = run(flows, "bad-number", {"qty": "twelve"})
    assert state.status == "dead_lettered"
    assert executed(state) == ["first", "convert"]
    error = state.error
    assert error is not None and error["step"] == "convert" and error["kind"] == "expression"
    assert error["message"].startswith(f"step 'convert' ({tmp_path / 'bad-number.yaml'}:6): ")
    assert "The left side of the + operator must evaluate to a number" in error["message"]
    assert "in expression '{\"qty\": qty + 1}'" in error["message"]
    assert len(error["attempts"]) == 1
    assert error["gave_up"] == "not retryable"


# -- validate --------------------------------------------------------------------------------

def test_validate_lists_all_six_violations_and_dead_letters_them(loader: Loader,
                                                                 tmp_path: Path) -> None:
    flows = load(loader, tmp_path, """
        flow: check-order
        defaults:
          retry: {max_attempts: 5}
        steps:
          - id: check
            validate: {schema: canonical/order.v1}
          - id: after
            set: {ok: 'true'}
        """)
    bad = copy.deepcopy(ORDER)
    bad["channel"] = ""
    bad["created_at"] = "yesterday"
    bad["currency"] = "euro"
    bad["customer"]["email"] = "not-an-email"
    bad["lines"][0]["qty"] = "two"
    bad["tags"] = ["vip", "vip"]
    (state,) = run(flows, "check-order", bad)
    assert state.status == "dead_lettered"
    assert executed(state) == ["check"]
    error = state.error
    assert error is not None and error["kind"] == "validation"
    paths = ["$.channel", "$.created_at", "$.currency", "$.customer.email", "$.lines[0].qty",
             "$.tags"]
    assert [v["path"] for v in error["detail"]["violations"]] == paths
    assert error["detail"]["schema"] == "canonical/order.v1"
    assert "6 schema violation(s) of canonical/order.v1" in error["message"]
    for path in paths:
        assert f"{path}: " in error["message"]
    assert len(error["attempts"]) == 1  # a bad document is never retried


def test_validate_passes_a_valid_order_and_checks_a_value_expression(loader: Loader,
                                                                     tmp_path: Path) -> None:
    flows = load(loader, tmp_path, """
        flow: check-wrapped
        steps:
          - id: check
            validate: {schema: canonical/order.v1, value: order}
          - id: after
            set: {ok: 'true'}
        """)
    (good,) = run(flows, "check-wrapped", {"order": ORDER})
    assert good.status == "succeeded" and good.envelope["vars"] == {"ok": True}
    (bad,) = run(flows, "check-wrapped", {"order": {**ORDER, "lines": []}})
    assert bad.status == "dead_lettered"
    assert [v["path"] for v in bad.error["detail"]["violations"]] == ["$.lines"]  # type: ignore[index]


# -- route -----------------------------------------------------------------------------------

ROUTER = """
    flow: router
    steps:
      - id: pick
        route:
          - when: kind = "eu"
            goto: eu
          - when: kind = "return"
            flow: returns
          - when: kind = "test"
            drop: true
          - when: kind = "unknown"
            dead_letter: no ERP for this kind
          - when: kind = "sample"
            goto: end
          - otherwise: us
      - id: eu
        set: {erp: '"eu"'}
        next: end
      - id: us
        set: {erp: '"us"'}
    """
RETURNS = """
    flow: returns
    steps:
      - id: receive
        transform: '{"return_of": order, "via": $meta.trigger, "from": $meta.parent_run_id}'
    """


@pytest.fixture
def routed(loader: Loader, tmp_path: Path) -> FlowSet:
    return load(loader, tmp_path, ROUTER, RETURNS)


def test_route_goto_and_next_end(routed: FlowSet) -> None:
    (state,) = run(routed, "router", {"kind": "eu"})
    assert state.status == "succeeded"
    assert executed(state) == ["pick", "eu"]  # next: end, the us branch is not run
    assert state.envelope["vars"] == {"erp": "eu"}


def test_route_otherwise(routed: FlowSet) -> None:
    (state,) = run(routed, "router", {"kind": "nothing matches"})
    assert state.status == "succeeded"
    assert executed(state) == ["pick", "us"]
    assert state.envelope["vars"] == {"erp": "us"}


def test_route_flow_hand_off_runs_the_second_flow(routed: FlowSet) -> None:
    first, second = run(routed, "router", {"kind": "return", "order": "A-1"})
    assert first.status == "handed_off" and executed(first) == ["pick"]
    assert second.flow_id == "returns" and second.status == "succeeded"
    assert second.envelope["body"] == {"return_of": "A-1", "via": "handoff",
                                       "from": first.run_id}
    assert second.correlation_id == first.correlation_id
    assert second.parent_run_id == first.run_id


def test_route_goto_end_ends_the_run_as_succeeded(routed: FlowSet) -> None:
    (state,) = run(routed, "router", {"kind": "sample"})
    assert state.status == "succeeded" and state.error is None
    assert executed(state) == ["pick"]
    assert state.envelope["vars"] == {}


def test_route_drop(routed: FlowSet) -> None:
    (state,) = run(routed, "router", {"kind": "test"})
    assert state.status == "dropped"
    assert executed(state) == ["pick"]


def test_route_dead_letter_with_reason(routed: FlowSet) -> None:
    (state,) = run(routed, "router", {"kind": "unknown"})
    assert state.status == "dead_lettered"
    assert state.error == {"message": "no ERP for this kind", "step": "pick", "kind": "route"}


def test_route_without_a_match_or_otherwise_dead_letters(loader: Loader, tmp_path: Path) -> None:
    flows = load(loader, tmp_path, """
        flow: partial-route
        steps:
          - id: pick
            route:
              - when: kind = "eu"
                goto: eu
          - id: eu
            set: {erp: '"eu"'}
        """)
    (state,) = run(flows, "partial-route", {"kind": "us"})
    assert state.status == "dead_lettered"
    assert "no route rule matched and the route has no 'otherwise'" in state.error["message"]  # type: ignore[index]


def test_route_loop_is_bounded(loader: Loader, tmp_path: Path) -> None:
    flows = load(loader, tmp_path, """
        flow: loops
        steps:
          - id: count
            set: {n: '$vars.n ? $vars.n + 1 : 1'}
          - id: again
            route:
              - when: 'true'
                goto: count
        """)
    (state,) = run(flows, "loops", {})
    assert state.status == "failed"
    assert state.error is not None and state.error["kind"] == "loop"
    assert f"run exceeded {MAX_STEPS_PER_RUN} steps" in state.error["message"]
    assert state.executed == MAX_STEPS_PER_RUN
    assert state.envelope["vars"]["n"] == MAX_STEPS_PER_RUN // 2


# -- filter, set, log, fail ------------------------------------------------------------------

def test_filter_keeps_or_ends_as_filtered(loader: Loader, tmp_path: Path) -> None:
    flows = load(loader, tmp_path, """
        flow: big-only
        steps:
          - id: big
            filter: total > 100
          - id: after
            set: {kept: 'true'}
        """)
    (small,) = run(flows, "big-only", {"total": 5})
    assert small.status == "filtered"
    assert executed(small) == ["big"]
    assert small.error == {"message": "filter 'big' did not match", "step": "big"}
    (big,) = run(flows, "big-only", {"total": 500})
    assert big.status == "succeeded" and big.envelope["vars"] == {"kept": True}


def test_set_evaluates_all_names_against_the_same_envelope(loader: Loader,
                                                           tmp_path: Path) -> None:
    flows = load(loader, tmp_path, """
        flow: setter
        steps:
          - id: first
            set: {n: '1'}
          - id: second
            set:
              n: '$vars.n + 1'
              before: '$vars.n'
              order_no: 'order.number'
        """)
    (state,) = run(flows, "setter", {"order": {"number": "A-7"}})
    assert state.status == "succeeded"
    assert state.envelope["vars"] == {"n": 2, "before": 1, "order_no": "A-7"}
    assert state.envelope["body"] == {"order": {"number": "A-7"}}


def test_log_line_carries_flow_step_and_run_ids(loader: Loader, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    flows = load(loader, tmp_path, """
        flow: logger
        steps:
          - id: announce
            log: {message: '"order " & number & " received"', level: warning}
          - id: quiet
            log: {message: 'number'}
        """)
    with caplog.at_level(logging.INFO, logger="flowrunner.flow"):
        (state,) = run(flows, "logger", {"number": "A-9"})
    assert state.status == "succeeded"
    records = [r for r in caplog.records if r.name == "flowrunner.flow"]
    assert [(r.levelname, r.getMessage()) for r in records] == [("WARNING", "order A-9 received"),
                                                                ("INFO", "A-9")]
    first = records[0]
    assert first.flow == "logger"  # type: ignore[attr-defined]
    assert first.step == "announce"  # type: ignore[attr-defined]
    assert first.run_id == state.run_id  # type: ignore[attr-defined]
    assert first.correlation_id == state.correlation_id  # type: ignore[attr-defined]
    assert records[1].step == "quiet"  # type: ignore[attr-defined]


def test_fail_dead_letters_with_the_reason_and_is_not_retried(loader: Loader,
                                                              tmp_path: Path) -> None:
    flows = load(loader, tmp_path, """
        flow: rejecter
        defaults:
          retry:
            max_attempts: 5
            retry_on: {errors: [timeout, connection]}
        steps:
          - id: reject
            fail: {reason: '"unknown SKU " & sku'}
          - id: never
            set: {x: '1'}
        """)
    (state,) = run(flows, "rejecter", {"sku": "ZZ-1"})
    assert state.status == "dead_lettered"
    assert state.error is not None
    assert state.error["kind"] == "rejected"
    assert state.error["message"].endswith("): unknown SKU ZZ-1")
    assert len(state.error["attempts"]) == 1
    assert state.error["gave_up"] == "not retryable"
    assert executed(state) == ["reject"]


# -- split -----------------------------------------------------------------------------------

def test_split_starts_one_child_run_per_item(loader: Loader, tmp_path: Path) -> None:
    flows = load(loader, tmp_path, """
        flow: splitter
        steps:
          - id: remember
            set: {order: 'order'}
          - id: each_line
            split: {items: lines}
          - id: shape
            transform: '{"order": $vars.order, "sku": sku, "index": $meta.split_index}'
          - id: tag
            set: {done: 'true'}
        """)
    body = {"order": "A-3", "lines": [{"sku": "A"}, {"sku": "B"}, {"sku": "C"}]}
    parent, *children = run(flows, "splitter", body)
    assert parent.status == "split"
    assert executed(parent) == ["remember", "each_line"]
    assert len(children) == 3
    for i, child in enumerate(children):
        assert child.status == "succeeded"
        assert child.trigger == "split" and child.parent_run_id == parent.run_id
        assert child.correlation_id == parent.correlation_id
        assert child.envelope["meta"]["split_index"] == i
        assert executed(child) == ["shape", "tag"]
        assert child.envelope["body"] == {"order": "A-3", "sku": "ABC"[i], "index": i}
        assert child.envelope["vars"] == {"order": "A-3", "done": True}


def test_split_over_max_items_dead_letters(loader: Loader, tmp_path: Path) -> None:
    flows = load(loader, tmp_path, """
        flow: guarded
        steps:
          - id: each
            split: {items: lines, max_items: 2}
          - id: after
            set: {x: '1'}
        """)
    (state,) = run(flows, "guarded", {"lines": [1, 2, 3]})
    assert state.status == "dead_lettered"
    assert "split of 3 items exceeds max_items 2" in state.error["message"]  # type: ignore[index]


# -- on_failure ------------------------------------------------------------------------------

FAILING = """
    flow: {flow}
    steps:
      - id: convert
        transform: 'qty * 2'
        on_failure: {handler}
      - id: never
        set: {{reached: 'true'}}
        next: end
      - id: handle
        transform: '{{"failed_step": $vars.error.step, "kind": $vars.error.kind}}'
    """


def test_on_failure_drop(loader: Loader, tmp_path: Path) -> None:
    flows = load(loader, tmp_path, FAILING.format(flow="drops", handler="drop"))
    (state,) = run(flows, "drops", {"qty": "x"})
    assert state.status == "dropped"
    assert state.error is not None and state.error["step"] == "convert"
    assert executed(state) == ["convert"]


def test_on_failure_goto_sees_the_error_in_vars(loader: Loader, tmp_path: Path) -> None:
    flows = load(loader, tmp_path, FAILING.format(flow="handles", handler="{goto: handle}"))
    (state,) = run(flows, "handles", {"qty": "x"})
    assert state.status == "succeeded"
    assert executed(state) == ["convert", "handle"]
    assert state.steps[0]["status"] == "failed"
    assert state.envelope["body"] == {"failed_step": "convert", "kind": "expression"}
    assert "in expression 'qty * 2'" in state.envelope["vars"]["error"]["message"]


def test_on_failure_flow_hands_the_message_over(loader: Loader, tmp_path: Path) -> None:
    flows = load(loader, tmp_path, FAILING.format(flow="forwards", handler="{flow: repairs}"),
                 """
        flow: repairs
        steps:
          - id: note
            transform: '{"qty": qty, "error_step": $vars.error.step}'
        """)
    first, second = run(flows, "forwards", {"qty": "x"})
    assert first.status == "handed_off"
    assert second.flow_id == "repairs" and second.status == "succeeded"
    assert second.envelope["body"] == {"qty": "x", "error_step": "convert"}


def test_defaults_on_failure_applies_to_every_step(loader: Loader, tmp_path: Path) -> None:
    flows = load(loader, tmp_path, """
        flow: lenient
        defaults:
          on_failure: drop
        steps:
          - id: reject
            fail: {reason: '"no"'}
        """)
    (state,) = run(flows, "lenient", {})
    assert state.status == "dropped"


def test_interpreter_crash_inside_an_expression_still_dead_letters(loader: Loader,
                                                                   tmp_path: Path) -> None:
    """$number("x") makes the JSONata interpreter raise a plain ValueError, not its own error
    type; the message must still end in the dead-letter queue, naming the step and file."""
    flows = load(loader, tmp_path, """
        flow: crashes
        steps:
          - id: convert
            transform: '$number(qty)'
        """)
    (state,) = run(flows, "crashes", {"qty": "twelve"})
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["step"] == "convert"
    assert state.error["message"].startswith(f"step 'convert' ({tmp_path / 'crashes.yaml'}:3): ")
