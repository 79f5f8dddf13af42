"""``set``: store values in ``vars`` for later steps; the body is left alone."""

from __future__ import annotations

from pydantic import Field, RootModel

from engine.dsl.base import Expr
from engine.envelope import Envelope
from engine.types import BuildContext, Continue, Outcome, Resources, StepFn, StepKind


class SetConfig(RootModel[dict[str, Expr]]):
    root: dict[str, Expr] = Field(min_length=1, description="Variable name → expression.",
                                  examples=[{"order_no": "order_number"}])


def build(config: SetConfig, ctx: BuildContext) -> StepFn:
    compiled = []
    for name, spec in config.root.items():
        if not name.isidentifier():
            ctx.problem((name,), f"'{name}' is not a valid variable name; use letters, digits "
                        "and _", key=True)
        compiled.append((name, ctx.expr(spec, (name,))))

    def set_(envelope: Envelope, resources: Resources) -> Outcome:
        # evaluate all first so one assignment never sees another of the same step
        values = [(name, expr.evaluate(envelope)) for name, expr in compiled]
        envelope.vars.update(values)
        return Continue()

    return set_



STEP = StepKind(
    name="set",
    config=SetConfig,
    build=build,
    description="Store values for later steps: `set: {order_no: order_number}` makes "
                "$vars.order_no available.",
)
