"""``filter``: let a message through only when a condition holds; others end as filtered."""

from __future__ import annotations

from engine.dsl.base import Expr, ExprSpec
from engine.envelope import Envelope
from engine.steps.route import _truthy
from engine.types import BuildContext, Continue, Outcome, Resources, StepFn, StepKind, Stop


def build(config: ExprSpec, ctx: BuildContext) -> StepFn:
    condition = ctx.expr(config, ())
    # read now: the context moves on to the next step once this one is built
    reason = f"filter '{ctx.step_id}' did not match"

    def filter_(envelope: Envelope, resources: Resources) -> Outcome:
        if _truthy(condition.evaluate(envelope)):
            return Continue()
        return Stop("filtered", reason)

    return filter_


STEP = StepKind(
    name="filter",
    config=Expr,
    build=build,
    description="Keeps the message only when this JSONata expression is true; otherwise the run "
                "ends as `filtered` (recorded, not a failure).",
)
