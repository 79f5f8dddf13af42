"""One run laid over its flow's graph: the nodes it reached and the edges it took.

Read from the run's record alone (`RunState.steps`, its status, the step it waits at): which
rule of a route was taken is where the next record is, and which end was reached is the run's
status. Hand-offs are told apart by the flow of the run that was started, when known.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from engine.graph import DEAD_LETTER, DROPPED, END, FILTERED, TRIGGER, Graph, flow_node, step_node


@dataclass
class RunPath:
    """One run laid over its flow's graph: the state of each node it reached (passed,
    failed, waiting, or reached for an end) and the edges it took, by index."""

    nodes: dict[str, str] = field(default_factory=dict)
    edges: set[int] = field(default_factory=set)


#: the end a finished run reached, by its status
_REACHED = {"succeeded": END, "dead_lettered": DEAD_LETTER, "dropped": DROPPED,
            "filtered": FILTERED}


def run_path(graph: Graph, steps: list[dict[str, Any]], status: str, *,
             waiting_at: str | None = None, handed_to: str | None = None) -> RunPath:
    """The path of a run with step records *steps* (`RunState.steps`) and *status*.
    *waiting_at*: the step a run that is not done stands at; *handed_to*: the flow a run that
    handed off started."""
    path = RunPath()
    known = {n.id for n in graph.nodes}
    seq = [step_node(r["id"]) for r in steps if step_node(r["id"]) in known]
    failed = {step_node(r["id"]) for r in steps if r.get("status") == "failed"}
    # how the message came in: from the trigger, or as an item of a split (whose run starts
    # after the split step); a replay from the failed step starts there, with no way in
    into = [i for i, e in enumerate(graph.edges) if seq and e.target == seq[0]
            and (e.source == TRIGGER or e.kind == "split")]
    if into or not seq:
        path.edges.update(into[:1])
        path.nodes[graph.edges[into[0]].source if into else TRIGGER] = "passed"
    for node in seq:
        path.nodes[node] = "failed" if node in failed else "passed"
    for a, b in itertools.pairwise(seq):
        path.edges.update(_taken(graph, a, b, a in failed))
    if waiting_at and step_node(waiting_at) in known:
        node = step_node(waiting_at)
        path.nodes[node] = "waiting"
        if seq:
            path.edges.update(_taken(graph, seq[-1], node, seq[-1] in failed))
    if not seq:
        return path
    last = seq[-1]
    end = _REACHED.get(status)
    if status == "handed_off":
        targets = [e.target for e in graph.edges if e.source == last and e.target.startswith(
            "flow:") and (handed_to is None or e.target == flow_node(handed_to))]
        end = targets[0] if len(set(targets)) == 1 else None
    if status == "split":
        path.edges.update(i for i, e in enumerate(graph.edges)
                          if e.source == last and e.kind == "split")
    if end is not None:
        taken = _taken(graph, last, end, last in failed)
        if taken:
            path.edges.update(taken)
            path.nodes[end] = "failed" if end == DEAD_LETTER else "reached"
    return path


def _taken(graph: Graph, source: str, target: str, failed: bool) -> list[int]:
    """The edges from *source* to *target* a run took: the failure edge when the step failed,
    else the others (several route rules may lead to the same place)."""
    found = [i for i, e in enumerate(graph.edges) if e.source == source and e.target == target]
    chosen = [i for i in found if (graph.edges[i].kind == "failure") == failed]
    return chosen or found


def path_of_run(graph: Graph, flow: Any, state: Any, store: Any = None) -> RunPath:
    """`run_path` of a recorded run (a `RunState` of *flow*, the `CompiledFlow` version it ran
    on): the step a run not done stands at, and with *store* the flow a hand-off started."""
    waiting = flow.steps[state.position].id if not state.done and \
        0 <= state.position < len(flow.steps) else None
    handed_to = None
    if state.status == "handed_off" and store is not None:
        for child_id in state.envelope.get("meta", {}).get("children", [])[:1]:
            child = store.get_run(child_id)
            handed_to = child.flow_id if child is not None else None
    return run_path(graph, state.steps, state.status, waiting_at=waiting, handed_to=handed_to)
