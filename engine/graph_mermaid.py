"""A flow's graph as Mermaid ``flowchart TD`` text, for docs and for anything that renders
Mermaid (GitHub, GitLab, most wikis).

Node ids are ``n0``, ``n1``... in the graph's order (a step id such as ``end`` is a Mermaid
keyword); every text is quoted, with ``"``, ``<``, ``>``, ``&``, ``#`` and ``|`` written as
Mermaid entity codes, so a condition such as ``qty > 0 and sku != "X"`` stays text.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.graph import Graph, Node
from engine.graph_path import RunPath
from engine.graph_svg import FAILED, TAKEN, TONES, WAITING

#: opening and closing of each role's shape
SHAPES = {"trigger": ('(["', '"])'), "step": ('("', '")'), "end": ('(["', '"])'),
          "dead_letter": ('(["', '"])'), "dropped": ('(["', '"])'),
          "filtered": ('(["', '"])'), "flow": ('[/"', '"/]')}
#: a step's shape by its tone, where it differs from a plain step's
TONE_SHAPES = {"decision": ('{{"', '"}}'), "split": ('[["', '"]]')}
#: Mermaid's arrows for each kind of edge
ARROWS = {"next": "-->", "branch": "-->", "failure": "-.->", "split": "==>",
          "filtered": "-.->", "event": "-.->"}
_ENTITIES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "|": "#124;",
             "`": "#96;"}


def render(graph: Graph, path: RunPath | None = None,
           link: Callable[[str], str | None] | None = None) -> str:
    """Mermaid text of *graph*: quiet edges left out unless *path* took them; *link* gives
    the address of another flow (a ``click`` line on its hand-off node)."""
    ids = {node.id: f"n{i}" for i, node in enumerate(graph.nodes)}
    lines = ["flowchart TD"]
    for node in graph.nodes:
        opening, closing = TONE_SHAPES.get(node.tone, SHAPES[node.role]) \
            if node.role == "step" else SHAPES[node.role]
        lines.append(f"  {ids[node.id]}{opening}{_label(node)}{closing}")
    drawn = [(i, e) for i, e in enumerate(graph.edges)
             if not e.quiet or (path is not None and i in path.edges)]
    for _, edge in drawn:
        arrow = ARROWS.get(edge.kind, "-->")
        label = f'|"{_text(_fit(edge.label, 40))}"|' if edge.label else ""
        lines.append(f"  {ids[edge.source]} {arrow}{label} {ids[edge.target]}")
    for tone in sorted({n.tone for n in graph.nodes}):
        fill, stroke = TONES.get(tone, TONES["plain"])
        dash = ",stroke-dasharray:5 3" if tone == "flow" else ""
        # prefixed: a class named like a keyword (end) would end the chart
        lines.append(f"  classDef tone_{tone} fill:{fill},stroke:{stroke},color:#111827{dash}")
        members = ",".join(ids[n.id] for n in graph.nodes if n.tone == tone)
        lines.append(f"  class {members} tone_{tone}")
    if path is not None:
        lines.extend(_path(graph, path, ids, [i for i, _ in drawn]))
    for node in graph.nodes:
        target = link(node.flow) if link is not None and node.flow else None
        if target:
            lines.append(f'  click {ids[node.id]} "{_text(target)}"')
    return "\n".join(lines) + "\n"


def _path(graph: Graph, path: RunPath, ids: dict[str, str], drawn: list[int]) -> list[str]:
    colours = {"passed": TAKEN, "reached": TAKEN, "failed": FAILED, "waiting": WAITING}
    lines = []
    for state, colour in colours.items():
        members = [ids[n] for n, s in path.nodes.items() if s == state and n in ids]
        if members:
            lines.append(f"  classDef run_{state} stroke:{colour},stroke-width:3px")
            lines.append(f"  class {','.join(members)} run_{state}")
    for position, i in enumerate(drawn):  # linkStyle counts the links drawn, in order
        if i in path.edges:
            colour = FAILED if graph.edges[i].kind == "failure" else TAKEN
            lines.append(f"  linkStyle {position} stroke:{colour},stroke-width:3px")
    return lines


def _label(node: Node) -> str:
    if node.role not in ("trigger", "step"):
        return _text(node.title)
    head = f"{node.title} · {node.kind}" if node.role == "step" else node.title
    rest = [_fit(x, 60) for x in (node.detail, *node.notes) if x]
    return "<br/>".join([_text(head), *(_text(x) for x in rest)])


def _fit(text: str, room: int) -> str:
    return text if len(text) <= room else text[:room - 1] + "…"


def _text(value: str) -> str:
    return "".join(_ENTITIES.get(ch, ch) for ch in " ".join(value.split()))
