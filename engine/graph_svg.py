"""A flow's graph as SVG, drawn by flowrunner itself: rounded boxes, labelled edges, and a
run's path when one is given.

Colours are presentation attributes, never ``style``: the same drawing works as a file and
inline in the console, whose Content-Security-Policy refuses inline styles. Each node carries
``data-node`` (its graph id) and, over a run, ``data-state``, so pages and tests can find it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from xml.sax.saxutils import escape, quoteattr

from engine.graph import Graph, Node
from engine.graph_layout import CHAR, LINE, Box, Layout, Point, layout
from engine.graph_path import RunPath

#: fill and stroke of each tone of node
TONES = {"trigger": ("#e8f1fb", "#2f6db5"), "plain": ("#f6f7f9", "#8a94a6"),
         "decision": ("#fff5e0", "#c98a12"), "split": ("#e9f7ee", "#2e8b57"),
         "effect": ("#f1ecfb", "#6b4fb3"), "check": ("#e6f6f6", "#22888a"),
         "fail": ("#fdecec", "#c0392b"), "end": ("#e9f7ee", "#2e8b57"),
         "dead_letter": ("#fdecec", "#c0392b"), "dropped": ("#f0f0f0", "#777777"),
         "filtered": ("#f0f0f0", "#777777"), "flow": ("#ffffff", "#2f6db5")}
#: colour and dash of each kind of edge
EDGES = {"next": ("#8a94a6", ""), "branch": ("#c98a12", ""), "failure": ("#c0392b", "6 4"),
         "split": ("#2e8b57", ""), "filtered": ("#777777", "4 3"), "event": ("#2f6db5", "2 3")}
TAKEN, FAILED, WAITING = "#1f6feb", "#d1242f", "#bf8700"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def render(graph: Graph, path: RunPath | None = None,
           link: Callable[[str], str | None] | None = None) -> str:
    """The SVG document of *graph*; with *path*, the run's path over it; *link* gives the
    address of another flow's drawing (hand-off nodes become links)."""
    drawn = {i for i, e in enumerate(graph.edges)
             if not e.quiet or (path is not None and i in path.edges)}
    placed = layout(graph, drawn)
    ident = re.sub(r"[^A-Za-z0-9_-]", "_", graph.flow)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="flow-graph" '
             f'width="{placed.width:.0f}" height="{placed.height:.0f}" '
             f'viewBox="0 0 {placed.width:.0f} {placed.height:.0f}" role="img" '
             f'aria-label={_attr(f"flow {graph.flow}")} data-flow={_attr(graph.flow)} '
             'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" '
             'font-size="12">',
             f"<title>{_text(graph.flow)}</title>", _markers(ident)]
    parts.append('<g class="edges">')
    for i in sorted(placed.routes, key=lambda i: path is not None and i in path.edges):
        parts.append(_edge(graph, i, placed, path, ident))
    parts.append('</g><g class="nodes">')
    for node in graph.nodes:
        parts.append(_node(node, placed.boxes[node.id], path, link))
    parts.append('</g><g class="labels">')
    taken: list[tuple[float, float, float]] = []  # labels placed: centre x, y and width
    for i in placed.routes:
        parts.append(_label(graph, i, placed, path, taken))
    parts.append("</g></svg>")
    return "\n".join(p for p in parts if p) + "\n"


def _markers(ident: str) -> str:
    colours = {"grey": "#8a94a6", "red": "#c0392b", "taken": TAKEN, "amber": "#c98a12",
               "green": "#2e8b57", "blue": "#2f6db5", "dim": "#777777"}
    return "<defs>" + "".join(
        f'<marker id="{ident}-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" '
        'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        for name, colour in colours.items()) + "</defs>"


_MARKER = {"#8a94a6": "grey", "#c0392b": "red", TAKEN: "taken", "#c98a12": "amber",
           "#2e8b57": "green", "#2f6db5": "blue", "#777777": "dim"}


def _edge(graph: Graph, i: int, placed: Layout, path: RunPath | None, ident: str) -> str:
    edge = graph.edges[i]
    colour, dash = EDGES.get(edge.kind, EDGES["next"])
    points = placed.routes[i]
    d = _polyline(points) if i in placed.gutter else _curve(points)
    taken = path is not None and i in path.edges
    width = "3" if taken else ("2.2" if edge.kind == "split" else "1.4")
    if taken:
        colour = FAILED if edge.kind == "failure" else TAKEN
    opacity = ' opacity="0.35"' if path is not None and not taken else ""
    marker = _MARKER.get(colour, "grey") if colour != FAILED else "red"
    dashes = f' stroke-dasharray="{dash}"' if dash else ""
    state = ' data-taken="true"' if taken else ""
    title = f"<title>{_text(edge.hint or edge.label)}</title>" if edge.hint or edge.label else ""
    return (f'<path class="edge e-{edge.kind}{" taken" if taken else ""}" '
            f'data-source={_attr(edge.source)} data-target={_attr(edge.target)}{state} '
            f'd="{d}" fill="none" stroke="{colour}" stroke-width="{width}"{dashes}{opacity} '
            f'marker-end="url(#{ident}-{marker})">{title}</path>')


def _curve(points: list[Point]) -> str:
    (x, y), rest = points[0], points[1:]
    d = f"M{x:.1f},{y:.1f}"
    for nx, ny in rest:
        k = (ny - y) / 2
        d += f" C{x:.1f},{y + k:.1f} {nx:.1f},{ny - k:.1f} {nx:.1f},{ny:.1f}"
        x, y = nx, ny
    return d


def _polyline(points: list[Point], radius: float = 7.0) -> str:
    """Straight segments with their corners rounded."""
    d = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
    for (px, py), (cx, cy), (nx, ny) in zip(points, points[1:], points[2:], strict=False):
        before = min(radius, (abs(cx - px) + abs(cy - py)) / 2)
        after = min(radius, (abs(nx - cx) + abs(ny - cy)) / 2)
        d += (f" L{cx - _sign(cx - px) * before:.1f},{cy - _sign(cy - py) * before:.1f}"
              f" Q{cx:.1f},{cy:.1f} {cx + _sign(nx - cx) * after:.1f},"
              f"{cy + _sign(ny - cy) * after:.1f}")
    return d + f" L{points[-1][0]:.1f},{points[-1][1]:.1f}"


def _sign(value: float) -> float:
    return (value > 0) - (value < 0)


def _label(graph: Graph, i: int, placed: Layout, path: RunPath | None,
           placed_labels: list[tuple[float, float, float]]) -> str:
    edge = graph.edges[i]
    if not edge.label:
        return ""
    points = placed.routes[i]
    if i in placed.gutter:
        (x, y), (_, y2) = points[2], points[3]
        y = (y + y2) / 2
    else:
        (x1, y1), (x2, y2) = points[0], points[1]
        share = 0.6 if len(points) == 2 else 0.4
        x, y = x1 + (x2 - x1) * share, y1 + (y2 - y1) * share
    text = _fit(edge.label, 28)
    width = len(text) * CHAR * 0.92 + 10
    # a label on top of another one moves down until it is clear
    while any(abs(x - ox) < (width + ow) / 2 + 2 and abs(y - oy) < 17
              for ox, oy, ow in placed_labels):
        y += 18
    placed_labels.append((x, y, width))
    colour = EDGES.get(edge.kind, EDGES["next"])[0]
    taken = path is not None and i in path.edges
    opacity = ' opacity="0.45"' if path is not None and not taken else ""
    weight = ' font-weight="600"' if taken else ""
    return (f'<g class="label"{opacity}><rect x="{x - width / 2:.1f}" y="{y - 9:.1f}" '
            f'width="{width:.1f}" height="16" rx="4" fill="#ffffff" stroke="{colour}" '
            f'stroke-width="0.6"/><text x="{x:.1f}" y="{y + 3:.1f}" text-anchor="middle" '
            f'font-size="11" fill="#374151"{weight}>{_text(text)}</text>'
            f"<title>{_text(edge.hint or edge.label)}</title></g>")


def _node(node: Node, box: Box, path: RunPath | None, link: Callable[[str], str | None] | None
          ) -> str:
    fill, stroke = TONES.get(node.tone, TONES["plain"])
    state = path.nodes.get(node.id) if path is not None else None
    width, dash = "1.4", ' stroke-dasharray="5 3"' if node.role == "flow" else ""
    if state == "failed":
        fill, stroke, width = "#fdecec", FAILED, "3"
    elif state == "waiting":
        stroke, width = WAITING, "3"
    elif state in ("passed", "reached"):
        stroke, width = TAKEN, "2.6"
    opacity = ' opacity="0.5"' if path is not None and state is None else ""
    left, top = box.x - box.w / 2, box.y
    pill = node.role not in ("trigger", "step")
    radius = box.h / 2 if pill else 8
    tip = "\n".join(x for x in (f"{node.title} ({node.kind})" if node.kind and not pill
                                else node.title, node.detail, *node.notes) if x)
    classes = f"node {node.role} tone-{node.tone}" + (f" {state}" if state else "")
    data = f' data-node={_attr(node.id)}' + (f' data-state="{state}"' if state else "")
    out = [f'<g class="{classes}"{data}{opacity}><title>{_text(tip)}</title>',
           f'<rect x="{left:.1f}" y="{top:.1f}" width="{box.w:.1f}" height="{box.h:.1f}" '
           f'rx="{radius:.1f}" fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dash}/>']
    if pill:
        out.append(f'<text x="{box.x:.1f}" y="{top + box.h / 2 + 4:.1f}" text-anchor="middle" '
                   f'font-weight="600" fill="{stroke}">{_text(node.title)}</text>')
    else:
        room = int((box.w - 20) / CHAR)
        kind = node.kind
        out.append(f'<text x="{left + 10:.1f}" y="{top + 19:.1f}" font-weight="600" '
                   f'fill="#111827">{_text(_fit(node.title, room - len(kind) - 2))}</text>')
        out.append(f'<text x="{left + box.w - 10:.1f}" y="{top + 19:.1f}" text-anchor="end" '
                   f'font-size="10.5" fill="{stroke}">{_text(kind)}</text>')
        y = top + 19
        for line, colour, size in [(node.detail, "#374151", "11.5")] + [
                (n, "#6b7280", "11") for n in node.notes]:
            if not line:
                continue
            y += LINE
            out.append(f'<text x="{left + 10:.1f}" y="{y:.1f}" font-size="{size}" '
                       f'fill="{colour}">{_text(_fit(line, room))}</text>')
    out.append("</g>")
    target = link(node.flow) if link is not None and node.flow else None
    if target:
        return f'<a href={_attr(target)} class="flow-link">' + "".join(out) + "</a>"
    return "".join(out)


def _fit(text: str, room: int) -> str:
    room = max(room, 4)
    return text if len(text) <= room else text[:room - 1] + "…"


def _text(value: str) -> str:
    return escape(_CONTROL.sub("", value))


def _attr(value: str) -> str:
    return quoteattr(_CONTROL.sub("", value))
