"""The flow model, assembled from the registered step kinds.

Every step is a mapping with an ``id`` and exactly one kind key (``transform:``, ``route:``,
``call:``...). The step union is built from the registry, so adding a step kind means adding a
module and an entry point — nothing here changes.
"""

from __future__ import annotations

import functools
import warnings
from typing import Annotated, Any, Union

from pydantic import Discriminator, Field, Tag, TypeAdapter, create_model

from engine.dsl.base import Expr, Model
from engine.dsl.retention import RetentionSpec
from engine.dsl.retry import Defaults, OnFailure, RetryPolicy
from engine.dsl.sla import SlaSpec
from engine.dsl.triggers import ManualSpec, trigger_union
from engine.registry import registry
from engine.types import config_type

ID_PATTERN = r"^[a-z][a-z0-9_-]*$"


class RateLimit(Model):
    """A rate shared by every step, flow and worker that names the same target."""

    name: str = Field(pattern=ID_PATTERN, description="The target the limit protects, e.g. "
                      "erp-eu; steps naming it share one budget across all workers.")
    per_second: float = Field(gt=0, description="Sustained requests per second (0.5 = one "
                              "every two seconds).")
    burst: int = Field(1, ge=1, description="Requests allowed at once after a quiet spell.")


class StepBase(Model):
    """Keys every step may carry besides its kind."""

    id: str = Field(pattern=ID_PATTERN, description="Unique step id: lowercase, digits, _ and -.")
    description: str | None = Field(None, description="What this step is for.")
    output: str | None = Field(
        None, pattern=r"^(body|vars\.[A-Za-z_][A-Za-z0-9_]*)$",
        description="Where the step's result goes: body (default) or vars.NAME.")
    next: str | None = Field(
        None, description="Step to continue with instead of the following one; 'end' ends the run.")
    retry: RetryPolicy | None = Field(None, description="Overrides of the flow's retry policy.")
    on_failure: OnFailure | None = Field(
        None, description="What happens when this step fails for good (overrides the flow's "
                          "defaults.on_failure): dead_letter, drop, {goto: step} or "
                          "{flow: other-flow}.")
    # A common key rather than an http option: waiting for a token is the runner's business (the
    # run is rescheduled, no attempt used), like retry, and any connector that talks to a
    # rate-limited system (http today, sftp or x12 tomorrow) needs the same thing.
    rate_limit: RateLimit | None = Field(
        None, description="Shared rate limit of the system this step talks to (usually on a "
                          "call step): over it, the run waits its turn without using an attempt.")

    @property
    def kind(self) -> str:
        extra = set(type(self).model_fields) - set(StepBase.model_fields)
        return next(iter(extra))

    @property
    def config(self) -> Any:
        return getattr(self, self.kind)


def step_kind_of(value: Any) -> str | None:
    kinds = registry().steps
    if isinstance(value, dict):
        found = [k for k in value if k in kinds]
        return found[0] if len(found) == 1 else None
    return value.kind if isinstance(value, StepBase) else None


class FlowBase(Model):
    flow: str = Field(pattern=ID_PATTERN, description="Unique flow id; the file name should match.")
    description: str | None = Field(None, description="What this flow does, for people.")
    key: Expr | None = Field(None, description="Business key of a run (order number, PO number), "
                                                "searchable in run records.")
    trigger: Any = Field(default_factory=ManualSpec,  # the registered poll sources: flow_model
                         description="What starts a run: webhook, poll, event or manual.")
    defaults: Defaults = Field(default_factory=Defaults, description="Retry and failure defaults.")
    queue: str = Field("default", pattern=r"^[a-z][a-z0-9_-]*$",
                       description="Worker lane for this flow's runs, e.g. priority or bulk.")
    concurrency: int | None = Field(None, ge=1, description="Most runs of this flow at once.")
    retention: RetentionSpec | None = Field(
        None, description="How long this flow's run records, message bodies and resolved "
                          "dead-letter entries are kept, overriding FLOWRUN_RETENTION_*.")
    sla: SlaSpec | None = Field(
        None, description="What on time means for this flow's runs: a deadline from receipt to "
                          "success (per business key if need be) and the flow told of each "
                          "breach.")


@functools.cache
def step_union() -> Any:
    """The discriminated union of every registered step kind."""
    members = []
    for name, kind in sorted(registry().steps.items()):
        with warnings.catch_warnings():
            # a kind named like a BaseModel attribute (validate) is fine: fields win on instances
            warnings.simplefilter("ignore", UserWarning)
            model = create_model(  # type: ignore[call-overload]
                "".join(part.title() for part in name.split("_")) + "Step",
                __base__=StepBase,
                **{name: (config_type(kind), Field(description=kind.description))},
            )
        members.append(Annotated[model, Tag(name)])
    return Annotated[Union[tuple(members)], Discriminator(step_kind_of)]  # noqa: UP007


@functools.cache
def step_adapter() -> TypeAdapter[Any]:
    return TypeAdapter(step_union())


@functools.cache
def flow_model() -> type[FlowBase]:
    """The Flow model for the step kinds registered in this process."""
    step: Any = step_union()
    model: type[FlowBase] = create_model(
        "Flow",
        __base__=FlowBase,
        trigger=(trigger_union(), Field(default_factory=ManualSpec,
                                        description="What starts a run: webhook, poll or "
                                                    "manual.")),
        steps=(list[step], Field(min_length=1, description="The steps, run in order.")),
    )
    return model
