"""``validate``: check the body (or an expression's value) against a JSON Schema by name."""

from __future__ import annotations

from pydantic import Field

from engine.dsl.base import Expr, Model
from engine.envelope import Envelope
from engine.schemas import violations
from engine.types import BuildContext, Continue, Outcome, Resources, StepError, StepFn, StepKind


class ValidateConfig(Model):
    schema_: str = Field(alias="schema", description="Schema name under schemas/, e.g. "
                                                     "canonical/order.v1.")
    value: Expr | None = Field(None, description="What to validate; the body when omitted.")


def build(config: ValidateConfig, ctx: BuildContext) -> StepFn:
    validator = ctx.schema(config.schema_, ("schema",))
    value = ctx.expr(config.value, ("value",)) if config.value else None

    def validate(envelope: Envelope, resources: Resources) -> Outcome:
        instance = value.evaluate(envelope) if value else envelope.body
        found = violations(validator, instance) if validator is not None else []
        if found:
            listing = "; ".join(f"{v['path']}: {v['message']}" for v in found)
            raise StepError(f"{len(found)} schema violation(s) of {config.schema_}: {listing}",
                            kind="validation", detail={"schema": config.schema_,
                                                       "violations": found})
        return Continue()

    return validate


STEP = StepKind(
    name="validate",
    config=ValidateConfig,
    build=build,
    description="Validate against a JSON Schema (2020-12, with format checks); every violation "
                "is reported with its JSON path. Not retried: fix the data or the mapping.",
)
