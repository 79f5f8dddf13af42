"""``fail``: reject the message on purpose, with a reason; handled by ``on_failure``."""

from __future__ import annotations

from pydantic import Field

from engine.dsl.base import Expr, Model
from engine.envelope import Envelope
from engine.types import BuildContext, Outcome, Resources, StepError, StepFn, StepKind


class FailConfig(Model):
    reason: Expr = Field(description="Expression giving the reason, e.g. "
                                     "'\"unknown SKU \" & sku'.")


def build(config: FailConfig, ctx: BuildContext) -> StepFn:
    reason = ctx.expr(config.reason, ("reason",))

    def fail(envelope: Envelope, resources: Resources) -> Outcome:
        text = reason.evaluate(envelope)
        raise StepError(str(text) if text is not None else "rejected", kind="rejected")

    return fail


STEP = StepKind(name="fail", config=FailConfig, build=build,
                description="Reject the message with a reason; never retried, then on_failure "
                            "applies (dead letter by default).")
