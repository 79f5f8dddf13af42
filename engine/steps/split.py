"""``split``: one message per array item, each continuing through the remaining steps."""

from __future__ import annotations

from pydantic import Field

from engine.dsl.base import Expr, Model
from engine.envelope import Envelope
from engine.types import BuildContext, Fork, Outcome, Resources, StepError, StepFn, StepKind

MAX_ITEMS = 10_000


class SplitConfig(Model):
    items: Expr = Field(description="Expression giving the array to split, e.g. 'lines'.")
    max_items: int = Field(MAX_ITEMS, ge=1, description="Refuse larger arrays (a guard against "
                                                        "a runaway fan-out).")


def build(config: SplitConfig, ctx: BuildContext) -> StepFn:
    items = ctx.expr(config.items, ("items",))

    def split(envelope: Envelope, resources: Resources) -> Outcome:
        value = items.evaluate(envelope)
        if value is None:
            value = []
        if not isinstance(value, list):
            value = [value]
        if len(value) > config.max_items:
            raise StepError(f"split of {len(value)} items exceeds max_items {config.max_items}",
                            kind="split")
        return Fork(value)

    return split


STEP = StepKind(name="split", config=SplitConfig, build=build,
                description="Split into one message per item; each item becomes the body of a "
                            "child run that continues with the next step.")
