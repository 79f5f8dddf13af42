"""``log``: write a line to the run's log, e.g. a business event operators search for."""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field

from engine.dsl.base import Expr, Model
from engine.envelope import Envelope
from engine.types import BuildContext, Continue, Outcome, Resources, StepFn, StepKind


class LogConfig(Model):
    message: Expr = Field(description="Expression giving the text, e.g. "
                                      "'\"order \" & order_id & \" received\"'.")
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")


def build(config: LogConfig, ctx: BuildContext) -> StepFn:
    message = ctx.expr(config.message, ("message",))
    level = getattr(logging, config.level.upper())

    def log(envelope: Envelope, resources: Resources) -> Outcome:
        value = message.evaluate(envelope)
        resources.log.log(level, "%s", value if isinstance(value, str) else repr(value))
        return Continue()

    return log


STEP = StepKind(name="log", config=LogConfig, build=build,
                description="Log a message (an expression) at a level; the body is unchanged.")
