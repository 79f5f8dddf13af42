"""Coverage of flows by their tests: which steps ran and which route branches were taken.

A route step returns only its target (``Goto('erp_eu')``), and two rules may share a target, so
the branch is found by evaluating the route's rules again on the envelope right after the step
(the runner's ``on_step`` hook; a route does not change the envelope and its conditions are pure
expressions). The flows themselves and the runner stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.compiled import CompiledFlow, CompiledStep
from engine.envelope import Envelope
from engine.expressions import Compiled, compile_expr
from engine.steps.route import _truthy as truthy


@dataclass(frozen=True)
class Branch:
    step: str
    index: int
    label: str


def _target(rule: Any) -> str:
    if rule.goto:
        return rule.goto
    if rule.flow:
        return f"flow {rule.flow}"
    if rule.drop:
        return "drop"
    return "dead_letter"


def branches(flow: CompiledFlow) -> list[Branch]:
    """Every route rule of *flow*, labelled ``by_region when[0] → erp_eu`` / ``otherwise →``."""
    out = []
    for step in flow.steps:
        if step.kind != "route":
            continue
        for i, rule in enumerate(flow.model.steps[step.index].config.root):  # type: ignore[attr-defined]
            which = f"when[{i}]" if rule.when is not None else "otherwise"
            out.append(Branch(step.id, i, f"{step.id} {which} → {_target(rule)}"))
    return out


_CONDITIONS: dict[tuple[str, str, int], list[Compiled | None]] = {}


def _conditions(flow: CompiledFlow, index: int) -> list[Compiled | None]:
    # compiled once per flow version and route; two threads racing compile the same thing
    key = (flow.file, flow.version, index)
    if key not in _CONDITIONS:
        rules = flow.model.steps[index].config.root  # type: ignore[attr-defined]
        _CONDITIONS[key] = [compile_expr(rule.when) if rule.when is not None else None
                            for rule in rules]
    return _CONDITIONS[key]


def taken_rule(flow: CompiledFlow, step: CompiledStep, envelope: Envelope) -> int | None:
    """Index of the rule the route *step* took for *envelope* (the first that holds)."""
    for i, condition in enumerate(_conditions(flow, step.index)):
        if condition is None or truthy(condition.evaluate(envelope)):
            return i
    return None


@dataclass
class FlowCoverage:
    flow: str
    file: str
    steps: list[str]
    branches: list[Branch]
    steps_hit: set[str] = field(default_factory=set)
    branches_hit: set[tuple[str, int]] = field(default_factory=set)
    cases: int = 0

    @property
    def percent(self) -> float:
        total = len(self.steps) + len(self.branches)
        hit = len(self.steps_hit & set(self.steps)) + len(
            self.branches_hit & {(b.step, b.index) for b in self.branches})
        return 100.0 * hit / total if total else 100.0

    @property
    def missing(self) -> list[str]:
        return ([f"step {s}" for s in self.steps if s not in self.steps_hit]
                + [b.label for b in self.branches if (b.step, b.index) not in self.branches_hit])


def for_flow(flow: CompiledFlow) -> FlowCoverage:
    return FlowCoverage(flow.id, flow.file, [s.id for s in flow.steps], branches(flow))


def table(coverage: list[FlowCoverage]) -> str:
    """A plain-text table: one row per flow, then what was never exercised."""
    rows = [("flow", "cases", "steps", "branches", "cover")]
    for c in coverage:
        hit_b = len(c.branches_hit & {(b.step, b.index) for b in c.branches})
        rows.append((c.flow, str(c.cases), f"{len(c.steps_hit & set(c.steps))}/{len(c.steps)}",
                     f"{hit_b}/{len(c.branches)}", f"{c.percent:.0f}%"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in rows]
    for c in coverage:
        if c.missing:
            lines.append(f"  {c.flow} never exercised: {', '.join(c.missing)}")
    return "\n".join(lines)
