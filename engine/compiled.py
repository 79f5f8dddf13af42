"""What loading makes of a flow file: `CompiledFlow` (its steps compiled, its trigger's
compiled parts), `CompiledStep`, and the `FlowSet` of a folder with its problems. The loader
(`engine.loader`) builds them; everything that runs, draws or tests flows takes them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.dsl.flow import FlowBase
from engine.dsl.retry import RetryPolicy
from engine.expressions import Compiled
from engine.problems import Problem, Problems
from engine.types import StepFn


@dataclass
class CompiledStep:
    id: str
    kind: str
    index: int
    fn: StepFn
    output: str | None
    next: str | None
    retry: RetryPolicy
    on_failure: Any
    side_effect: bool
    line: int


@dataclass
class CompiledFlow:
    id: str
    file: str
    version: str
    text: str
    model: FlowBase
    steps: list[CompiledStep]
    key: Compiled | None = None
    idempotency_key: Compiled | None = None
    flow_refs: list[tuple[str, Problem]] = field(default_factory=list)
    #: a poll trigger compiled at load (schedule, source, retry): an `engine.poll.CompiledPoll`
    poll: Any = None
    #: an event trigger compiled at load (`engine.events.Subscription`), and where it is written
    subscription: Any = None
    subscription_at: Problem | None = None
    #: the event types its publish steps emit, each with where it is written
    publishes: list[tuple[str, Problem]] = field(default_factory=list)
    #: the flow's ``sla:`` compiled at load (`engine.sla.CompiledSla`), or None
    sla: Any = None

    def __post_init__(self) -> None:
        self.index = {step.id: step.index for step in self.steps}

    @property
    def trigger_kind(self) -> str:
        return next(iter(type(self.model.trigger).model_fields))

    @property
    def trigger(self) -> Any:
        return getattr(self.model.trigger, self.trigger_kind)


@dataclass
class FlowSet:
    flows: dict[str, CompiledFlow]
    problems: Problems

    @property
    def ok(self) -> bool:
        return not self.problems.errors
