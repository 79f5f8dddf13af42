"""``transform``: replace the body (or write ``output: vars.x``) with an expression's result."""

from __future__ import annotations

from engine.dsl.base import Expr, ExprSpec
from engine.envelope import Envelope
from engine.types import BuildContext, Outcome, Resources, StepFn, StepKind, result


def build(config: ExprSpec, ctx: BuildContext) -> StepFn:
    expr = ctx.expr(config, ())

    def transform(envelope: Envelope, resources: Resources) -> Outcome:
        return result(expr.evaluate(envelope))

    return transform


STEP = StepKind(
    name="transform",
    config=Expr,
    build=build,
    description="Map the message with an expression: a JSONata string, {jsonata: ...} or "
                "{jmespath: ...}. The result becomes the body, or goes to `output: vars.NAME`.",
)
