"""The ``sla:`` block: each mistake reported at its key, durations read like the rest of the DSL,
and the deadline a run gets from the first rule that matches it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from engine.loader import Loader
from engine.records import start

OK_STEP = "steps:\n  - id: a\n    set: {x: '1'}\n"


@dataclass(frozen=True)
class Case:
    id: str
    sla: str
    line: int
    column: int
    path: str
    fragment: str


CASES = [
    Case("not-a-duration", "sla: {within: 15 minutes}", 2, 15, "sla.within",
         "'15 minutes' is not a duration"),
    Case("zero", "sla: {within: 0s}", 2, 15, "sla.within", "longer than 0s"),
    Case("missing-within", "sla: {rules: [{key: 'B2B-*', within: 4h}]}", 2, 1, "sla",
         "within: field required"),
    Case("misspelt-key", "sla: {within: 15m, rule: []}", 2, 20, "sla.rule",
         "did you mean 'rules'?"),
    Case("rule-without-match", "sla:\n  within: 15m\n  rules:\n    - within: 4h", 5, 7,
         "sla.rules[0]", "a rule needs key:"),
    Case("rule-bad-duration", "sla:\n  within: 15m\n  rules:\n    - {key: 'B2B-*', within: soon}",
         5, 30, "sla.rules[0].within", "'soon' is not a duration"),
    Case("rule-bad-expression", "sla:\n  within: 15m\n  rules:\n    - {when: '1 +', within: 1h}",
         5, 18, "sla.rules[0].when", "syntax error"),
    Case("alert-call-goes-in-a-flow", "sla:\n  within: 15m\n  alert: {call: {connection: p}}",
         4, 10, "sla.alert", "call the pager from that flow's steps"),
    Case("alert-bad-flow-id", "sla:\n  within: 15m\n  alert: {flow: Late Orders}", 4, 17,
         "sla.alert.flow", "does not have the expected form"),
]


@pytest.fixture
def loader() -> Loader:
    return Loader()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_broken_sla_is_reported_at_its_key(loader: Loader, case: Case) -> None:
    raw = f"flow: f\n{case.sla}\n{OK_STEP}".encode()
    flow, problems = loader.load_file("<input>", raw=raw)
    assert flow is None
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) == 1, "\n".join(str(p) for p in errors)
    (error,) = errors
    assert (error.line, error.column, error.path) == (case.line, case.column, case.path), \
        str(error)
    assert case.fragment in error.message, str(error)


def test_an_alert_flow_that_does_not_exist_is_named_by_validate(loader: Loader, tmp_path) -> None:
    (tmp_path / "orders.yaml").write_text(
        "flow: orders\nsla:\n  within: 15m\n  alert: {flow: late-order-handlng}\n" + OK_STEP)
    (tmp_path / "late-order-handling.yaml").write_text("flow: late-order-handling\n" + OK_STEP)
    problems = list(loader.load_paths([tmp_path]).problems)
    assert [(p.path, p.line) for p in problems] == [("sla.alert.flow", 4)]
    assert "late-order-handling" in problems[0].message  # did you mean


FLOW = """\
flow: orders
key: order
sla:
  within: 15m
  rules:
    - key: "B2B-*"
      within: 4h
    - when: $headers."x-partner" = 'acme'
      within: 1h30m
{steps}"""


@pytest.mark.parametrize(("order", "headers", "within"), [
    ("B2B-7", {"x-partner": "acme"}, 4 * 3600),  # the first rule that matches wins
    ("C-7", {"x-partner": "acme"}, 5400),
    ("C-7", {"x-partner": "other"}, 900),
    (None, {}, 900),  # no key: a key rule does not match
])
def test_a_run_gets_the_deadline_of_the_first_matching_rule(
        loader: Loader, order: str | None, headers: dict[str, str], within: float) -> None:
    flow, problems = loader.load_file("<input>", raw=FLOW.format(steps=OK_STEP).encode())
    assert flow is not None, problems
    state = start(flow, {"order": order}, headers, trigger="webhook")
    assert state.deadline == pytest.approx(state.created_at + within)


@pytest.mark.parametrize("trigger", ["split", "handoff", "replay", "sla"])
def test_split_items_hand_offs_replays_and_alerts_start_no_clock(loader: Loader,
                                                                trigger: str) -> None:
    flow, _ = loader.load_file("<input>", raw=FLOW.format(steps=OK_STEP).encode())
    assert flow is not None
    assert start(flow, {"order": "C-1"}, trigger=trigger).deadline is None


def test_a_flow_without_sla_gives_no_deadline(loader: Loader) -> None:
    flow, _ = loader.load_file("<input>", raw=("flow: plain\n" + OK_STEP).encode())
    assert flow is not None and flow.sla is None
    assert start(flow, {}).deadline is None
