"""``route``: the first rule whose ``when`` holds decides where the message goes next."""

from __future__ import annotations

from typing import Any

from pydantic import Field, PrivateAttr, RootModel, model_validator

from engine.dsl.base import Expr, Model
from engine.envelope import Envelope
from engine.expressions import Compiled
from engine.problems import did_you_mean
from engine.types import (
    END,
    BuildContext,
    Goto,
    HandOff,
    Outcome,
    Resources,
    StepError,
    StepFn,
    StepKind,
    Stop,
    ToDeadLetter,
)


class Rule(Model):
    """One branch: ``when`` (or ``otherwise``) and exactly one target."""

    when: Expr | None = Field(None, description="Condition; the first true one wins.")
    otherwise: str | bool | None = Field(
        None, description="Last rule, taken when no `when` held: a step id, or true with a target.")
    goto: str | None = Field(None, description="Continue at this step; 'end' ends the run here.")
    flow: str | None = Field(None, description="Hand the message to this flow.")
    drop: bool | None = Field(None, description="End the run as dropped (not an error).")
    dead_letter: str | None = Field(None, description="Dead-letter the message with this reason.")

    #: written as ``otherwise: step`` (so problems with the target point at ``otherwise``)
    _shorthand: bool = PrivateAttr(False)

    @model_validator(mode="wrap")
    @classmethod
    def _expand_shorthand(cls, data: Any, handler: Any) -> Rule:
        short = isinstance(data, dict) and isinstance(data.get("otherwise"), str)
        if short:
            if "goto" in data:  # never let one silently replace the other
                raise ValueError("'otherwise: step' already names the target; remove 'goto:' or "
                                 "write 'otherwise: true' with 'goto:'")
            data = {**data, "otherwise": True, "goto": data["otherwise"]}
        rule: Rule = handler(data)
        rule._shorthand = short
        return rule

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        if (self.when is None) == (self.otherwise is None):
            raise ValueError("a route rule has either 'when:' or 'otherwise:'")
        targets = [k for k in ("goto", "flow", "drop", "dead_letter") if getattr(self, k)]
        if len(targets) != 1:
            raise ValueError("a route rule needs exactly one target: goto, flow, drop: true or "
                             f"dead_letter: reason (found {', '.join(targets) or 'none'})")
        return self


class RouteConfig(RootModel[list[Rule]]):
    root: list[Rule] = Field(min_length=1, description="Rules, tried in order.", examples=[[
        {"when": 'shipping_address.country_code in ["DE", "FR"]', "goto": "erp_eu"},
        {"otherwise": "erp_us"}]])


def _target(rule: Rule) -> Outcome:
    if rule.goto:
        return Goto(rule.goto)
    if rule.flow:
        return HandOff(rule.flow)
    if rule.drop:
        return Stop("dropped", "route: drop")
    return ToDeadLetter(rule.dead_letter or "route: dead_letter")


def build(config: RouteConfig, ctx: BuildContext) -> StepFn:
    rules: list[tuple[Compiled | None, Outcome]] = []
    for i, rule in enumerate(config.root):
        if rule.otherwise is not None and i != len(config.root) - 1:
            ctx.problem((i, "otherwise"), "'otherwise' must be the last rule of a route; rules "
                        "after it could never be taken", key=True)
        key = "otherwise" if rule._shorthand else "goto"
        if rule.goto is not None and rule.goto != END and rule.goto not in ctx.step_ids:
            ctx.problem((i, key), f"no step '{rule.goto}' in this flow"
                        + did_you_mean(rule.goto, ctx.step_ids))
        elif rule.goto == ctx.step_id:
            ctx.problem((i, key), "a route cannot go to its own step (that loops forever)")
        if rule.flow is not None:
            ctx.flow_ref(rule.flow, (i, "flow"))
        condition = ctx.expr(rule.when, (i, "when")) if rule.when is not None else None
        rules.append((condition, _target(rule)))

    def route(envelope: Envelope, resources: Resources) -> Outcome:
        for condition, target in rules:
            if condition is None or _truthy(condition.evaluate(envelope)):
                return target
        raise StepError("no route rule matched and the route has no 'otherwise'",
                        kind="route")

    return route


def _truthy(value: Any) -> bool:
    # JSONata's boolean cast: empty arrays, empty strings, 0 and null are false
    if isinstance(value, list):
        return any(_truthy(v) for v in value)
    return bool(value)


STEP = StepKind(
    name="route",
    config=RouteConfig,
    build=build,
    description="Send the message to the first rule whose `when` holds: goto a step, hand off "
                "to another flow, drop, or dead_letter; `otherwise: step` closes the list.",
)
