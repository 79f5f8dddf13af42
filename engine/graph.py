"""The picture of a compiled flow: nodes and edges, drawn as SVG or Mermaid by the renderers.

A graph has a trigger node, one node per step, and the ends a message can reach: the end of the
flow, the dead-letter queue, dropped, filtered, and the other flows it hands off to. Edges are
the ways between them — the next step, each route rule (labelled with its condition), a split's
items, a filter that does not match, and `on_failure`. Every step can fail; the failure edge of
a step whose failure is nothing special (dead letter, the default) is *quiet*: not drawn, unless
a run took it. `engine.graph_path` lays one run's record over the graph.

Only the step kinds that steer the message (route, split, filter, fail, publish) are named here;
the detail line of any other step — every connector's — is read off its config model, so a new
step kind draws without a change to this module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, RootModel

from engine.dsl.base import ExprSpec, format_duration

if TYPE_CHECKING:
    from engine.compiled import CompiledFlow, CompiledStep

TRIGGER, END, DEAD_LETTER, DROPPED, FILTERED = "trigger", "end", "dead_letter", "dropped", \
    "filtered"
#: the ends a run can reach, with their titles
ENDS = {END: "end", DEAD_LETTER: "dead letter", DROPPED: "dropped", FILTERED: "filtered"}
#: step kinds whose failures are part of the design: their failure edge is always drawn
FAILING = frozenset({"validate", "fail"})


@dataclass(frozen=True)
class Node:
    id: str
    #: trigger, step, end, dead_letter, dropped, filtered or flow (a hand-off)
    role: str
    title: str
    #: the trigger kind or the step kind
    kind: str = ""
    detail: str = ""
    notes: tuple[str, ...] = ()
    step: str | None = None
    #: the flow a hand-off node stands for
    flow: str | None = None
    #: how it is coloured: trigger, plain, decision, split, effect, check, fail, or the role
    tone: str = ""


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str = ""
    #: next, branch, failure, split, filtered or event
    kind: str = "next"
    #: drawn only when a run took it (the default failure handling of an ordinary step)
    quiet: bool = False
    #: longer text for a tooltip: the whole condition, the dead-letter reason
    hint: str = ""


@dataclass
class Graph:
    flow: str
    description: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)

    def steps(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "step"]

    def to_dict(self) -> dict[str, Any]:
        return {"flow": self.flow, "description": self.description,
                "nodes": [asdict(n) for n in self.nodes], "edges": [asdict(e) for e in self.edges]}

    def redacted(self, text: Any) -> Graph:
        """This graph with every text passed through *text* (a redactor's ``text``)."""
        nodes = [replace(n, title=text(n.title), detail=text(n.detail),
                         notes=tuple(text(x) for x in n.notes)) for n in self.nodes]
        edges = [replace(e, label=text(e.label), hint=text(e.hint)) for e in self.edges]
        return Graph(self.flow, text(self.description), nodes, edges)


def step_node(step_id: str) -> str:
    """The node of a step, or the end for ``end`` (a route's or a failure's ``goto: end``)."""
    return END if step_id == END else f"step:{step_id}"


def flow_node(flow_id: str) -> str:
    return f"flow:{flow_id}"


def build(flow: CompiledFlow, flows: dict[str, CompiledFlow] | None = None) -> Graph:
    """The graph of *flow*; with *flows* (the loaded set) publish steps point at the flows
    subscribed to their events."""
    graph = Graph(flow.id, (getattr(flow.model, "description", None) or "").strip())
    graph.nodes.append(Node(TRIGGER, "trigger", flow.trigger_kind, kind="trigger",
                            detail=_trigger_detail(flow), notes=_sla(flow), tone="trigger"))
    models = flow.model.steps  # type: ignore[attr-defined]
    for step, model in zip(flow.steps, models, strict=True):
        graph.nodes.append(Node(step_node(step.id), "step", step.id, kind=step.kind,
                                detail=_config_summary(model.config), notes=_notes(step, model),
                                step=step.id, tone=_tone(step)))
    if flow.steps:
        graph.edges.append(Edge(TRIGGER, step_node(flow.steps[0].id)))
    for step, model in zip(flow.steps, models, strict=True):
        graph.edges.extend(_edges(flow, step, model, flows or {}))
    used = {e.target for e in graph.edges}
    for end, title in ENDS.items():
        if end in used:
            graph.nodes.append(Node(end, end, title, tone=end))
    for target in dict.fromkeys(e.target for e in graph.edges):
        if target.startswith("flow:"):
            graph.nodes.append(Node(target, "flow", target[5:], kind="flow", flow=target[5:],
                                    tone="flow"))
    return graph


def _tone(step: CompiledStep) -> str:
    if step.kind in ("route", "filter"):
        return "decision"
    if step.kind in ("split", "fail"):
        return step.kind
    if step.kind == "validate":
        return "check"
    return "effect" if step.side_effect else "plain"


def _after(flow: CompiledFlow, step: CompiledStep) -> str:
    if step.next == "end" or (not step.next and step.index + 1 >= len(flow.steps)):
        return END
    return step_node(step.next or flow.steps[step.index + 1].id)


def _edges(flow: CompiledFlow, step: CompiledStep, model: Any,
           flows: dict[str, CompiledFlow]) -> list[Edge]:
    here = step_node(step.id)
    out: list[Edge] = []
    catches_all = True
    if step.kind == "route":
        catches_all = False
        for rule in model.config.root:
            label = "otherwise" if rule.when is None else rule.when.source
            catches_all = catches_all or rule.when is None
            target, hint = _rule_target(rule)
            out.append(Edge(here, target, _short(label), "branch",
                            hint=" · ".join(x for x in (label, hint) if x)))
    elif step.kind == "split":
        out.append(Edge(here, _after(flow, step), "each item", "split",
                        hint=model.config.items.source))
    elif step.kind == "filter":
        out.append(Edge(here, _after(flow, step), "match"))
        out.append(Edge(here, FILTERED, "no match", "filtered", hint=model.config.source))
    elif step.kind != "fail":
        out.append(Edge(here, _after(flow, step)))
    if step.kind == "publish":
        event = model.config.type
        for other in sorted(flows.values(), key=lambda f: f.id):
            if other.subscription is not None and other.subscription.type == event:
                out.append(Edge(here, flow_node(other.id), "event", "event",
                                hint=f"event {event} starts a run of {other.id}"))
    failure, how = _failure_target(step.on_failure)
    special = step.on_failure != "dead_letter" or step.kind in FAILING or not catches_all \
        or step.side_effect
    out.append(Edge(here, failure, "on failure" if how else "", "failure", quiet=not special,
                    hint=f"on failure: {how}" if how else "fails for good: dead letter"))
    return out


def _rule_target(rule: Any) -> tuple[str, str]:
    if rule.goto:
        return step_node(rule.goto), ""
    if rule.flow:
        return flow_node(rule.flow), f"hand off to {rule.flow}"
    if rule.drop:
        return DROPPED, "drop"
    return DEAD_LETTER, rule.dead_letter or ""


def _failure_target(on_failure: Any) -> tuple[str, str]:
    if on_failure == "drop":
        return DROPPED, "drop"
    if getattr(on_failure, "goto", None):
        return step_node(on_failure.goto), f"goto {on_failure.goto}"
    if getattr(on_failure, "flow", None):
        return flow_node(on_failure.flow), f"hand off to {on_failure.flow}"
    return DEAD_LETTER, ""


def _notes(step: CompiledStep, model: Any) -> tuple[str, ...]:
    """Retry policy of a step that talks to another system, and its shared rate limit."""
    notes = []
    if step.side_effect:
        policy = step.retry
        if policy.max_attempts == 1:
            notes.append("no retry")
        else:
            backoff = policy.backoff
            notes.append(f"retry {policy.max_attempts}× · {human_duration(backoff.initial)} "
                         f"×{backoff.multiplier:g} ≤ {human_duration(backoff.max)}")
    if step.output and step.output.startswith("vars."):
        notes.append(f"→ ${step.output}")
    limit = getattr(model, "rate_limit", None)
    if limit is not None:
        notes.append(f"rate {limit.name} {limit.per_second:g}/s")
    return tuple(notes)


def _sla(flow: CompiledFlow) -> tuple[str, ...]:
    """The flow's service level, when it has one: the deadline, its rules, who hears of it."""
    sla = getattr(flow.model, "sla", None)
    if sla is None:
        return ()
    rules = f" ({len(sla.rules)} rule{'s' if len(sla.rules) != 1 else ''})" if sla.rules else ""
    alert = f" · late → {sla.alert.flow}" if sla.alert else ""
    return (f"SLA {human_duration(sla.within)}{rules}{alert}",)


def _trigger_detail(flow: CompiledFlow) -> str:
    trigger, kind = flow.trigger, flow.trigger_kind
    if kind == "webhook":
        return f"{'|'.join(trigger.methods)} {trigger.path}" + (" · AS2" if trigger.as2 else "")
    if kind == "poll":
        when = f"every {human_duration(trigger.every)}" if trigger.every is not None \
            else f"cron {trigger.cron}"
        return f"{when} · {trigger.source} {_config_summary(trigger.source_config)}".rstrip()
    if kind == "event":
        return trigger.type + (f" when {trigger.when.source}" if trigger.when else "")
    if kind == "consume":
        return f"{trigger.bus} {_config_summary(getattr(trigger, trigger.bus))}".rstrip()
    return "flowrun run, a replay or a hand-off"


def _config_summary(config: Any) -> str:
    """One line read off a step's (or source's) config: its first plain values and the names
    of its blocks; an expression only when there is nothing else to show."""
    if isinstance(config, ExprSpec):
        return _expr(config)
    if isinstance(config, RootModel):
        root = config.root
        if isinstance(root, dict):
            return _short(", ".join(str(k) for k in root))
        if isinstance(root, list):
            return f"{len(root)} rule{'s' if len(root) != 1 else ''}"
        return _short(str(root))
    if not isinstance(config, BaseModel):
        return _short(str(config)) if config is not None else ""
    plain: list[str] = []
    exprs: list[str] = []
    written = [n for n in type(config).model_fields if n in config.model_fields_set]
    for name in written:
        value = getattr(config, name)
        if isinstance(value, ExprSpec):
            exprs.append(_expr(value))
        elif isinstance(value, BaseModel):
            inner = _config_summary(value) if len(written) == 1 else ""
            plain.append(f"{name} {inner}".strip())
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            # the serialised form: a duration reads 30s, not 30.0
            shown = config.model_dump(mode="json", include={name}, by_alias=True)
            plain.append(str(next(iter(shown.values()))))
    return _short(" · ".join(plain[:2]) if plain else (exprs[0] if exprs else ""))


def _expr(spec: ExprSpec) -> str:
    lines = [line for line in spec.source.strip().splitlines() if line.strip()]
    if len(lines) > 1:
        return f"{spec.lang}, {len(lines)} lines"
    return _short(spec.source)


def human_duration(seconds: float) -> str:
    """5m rather than 300s; what `parse_duration` reads back."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return format_duration(seconds)


def _short(text: str, limit: int = 120) -> str:
    """One line of at most *limit* characters (renderers shorten further for their boxes)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


