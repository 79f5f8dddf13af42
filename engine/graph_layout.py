"""Where the nodes and edges of a flow's graph go: a layered, top-to-bottom layout.

Sugiyama's method, kept small: ranks by the longest path from the trigger (edges that go back
up — a goto to an earlier step — are left out of ranking), long edges broken by invisible dummy
nodes so they pass between boxes, a few barycenter sweeps to order each rank, and x positions
that sit each node over its neighbours without overlap (pool-adjacent-violators, exact for one
rank at a time). Edges that go back, and quiet edges a run took, run down a gutter on the right.
Flows are tens of steps, so nothing here needs to be clever about speed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from engine.graph import Graph, Node

Point = tuple[float, float]

CHAR = 6.6  # average width of a 12px sans-serif character
GAP_X, GAP_Y, MARGIN, GUTTER = 28.0, 64.0, 16.0, 18.0
MIN_W, MAX_W = 150.0, 290.0
LINE = 16.0


@dataclass
class Box:
    x: float  # centre
    y: float  # top
    w: float
    h: float

    @property
    def bottom(self) -> float:
        return self.y + self.h


@dataclass
class Layout:
    width: float
    height: float
    boxes: dict[str, Box]
    #: the points of each edge drawn, by its index in `Graph.edges`
    routes: dict[int, list[Point]] = field(default_factory=dict)
    #: edges that run down the gutter (their points are a polyline, not a curve)
    gutter: set[int] = field(default_factory=set)


def size(node: Node) -> tuple[float, float]:
    if node.role not in ("trigger", "step"):
        return max(96.0, len(node.title) * CHAR + 36), 34.0
    longest = max([len(node.title) + len(node.kind) + 3, len(node.detail),
                   *(len(n) for n in node.notes)])
    lines = 1 + bool(node.detail) + len(node.notes)
    return min(MAX_W, max(MIN_W, longest * CHAR + 24)), 14 + lines * LINE


def layout(graph: Graph, drawn: set[int]) -> Layout:
    """Positions for every node, and routes for the edges in *drawn* (indices)."""
    order = {n.id: i for i, n in enumerate(graph.nodes)}
    edges = [(i, e) for i, e in enumerate(graph.edges) if e.source in order and e.target in order]
    forward = [(i, e) for i, e in edges if order[e.target] > order[e.source]]
    rank = {n.id: 0 for n in graph.nodes}
    for node in graph.nodes[1:]:
        preds = [rank[e.source] + 1 for _, e in forward if e.target == node.id]
        rank[node.id] = max(preds, default=1)
    # dummies for the drawn edges that span ranks, so they are laid out like nodes
    layers: dict[int, list[str]] = {}
    for node in graph.nodes:
        layers.setdefault(rank[node.id], []).append(node.id)
    widths = {n.id: size(n)[0] for n in graph.nodes}
    chains: dict[int, list[str]] = {}
    links: list[tuple[str, str]] = []
    #: failure edges pull little on positions: the main path stays straight
    weights: dict[tuple[str, str], float] = {}
    for i, e in forward:
        if i not in drawn or graph.edges[i].quiet:
            continue
        chain = [e.source]
        for r in range(rank[e.source] + 1, rank[e.target]):
            dummy = f"~{i}~{r}"
            layers[r].append(dummy)
            widths[dummy] = 0.0
            chain.append(dummy)
        chain.append(e.target)
        chains[i] = chain
        for link in itertools.pairwise(chain):
            links.append(link)
            weights[link] = 0.05 if e.kind in ("failure", "filtered") else 1.0
    ranks = [layers[r] for r in sorted(layers)]
    _order(ranks, links)
    xs = _positions(ranks, links, widths, weights)
    boxes, middles = _boxes(graph, ranks, xs)
    out = Layout(0.0, middles[-1][1], boxes)
    for i, chain in chains.items():
        out.routes[i] = [(xs[n], boxes[n].y if n in boxes else middles[int(n.split("~")[2])][0])
                         for n in chain]
    _ports(graph, out)
    right = max(b.x + b.w / 2 for b in boxes.values())
    lane, far = right + GUTTER, right
    for k, (i, e) in enumerate((i, e) for i, e in edges if i in drawn and i not in chains):
        # down into the gap under the source's rank, along the gutter, and into the gap over
        # the target's rank: the gaps hold no boxes, so the way crosses none
        a, b = boxes[e.source], boxes[e.target]
        below, above = a.bottom + 16 + 5 * k, b.y - 16 - 5 * k
        ax, bx = a.x + a.w * 0.42, b.x + b.w * (0.42 - 0.03 * k)
        out.routes[i] = [(ax, a.bottom), (ax, below), (lane, below), (lane, above), (bx, above),
                         (bx, b.y)]
        out.gutter.add(i)
        far = max(far, lane + min(len(e.label), 28) * CHAR * 0.46 + 6)
        lane += GUTTER / 1.5
    out.width = max(lane, far) + MARGIN
    return out


def _order(ranks: list[list[str]], links: list[tuple[str, str]]) -> None:
    """Barycenter sweeps, down then up; ties keep the flow's own order."""
    for sweep in range(8):
        down = sweep % 2 == 0
        seq = range(1, len(ranks)) if down else range(len(ranks) - 2, -1, -1)
        for r in seq:
            fixed = {n: i for i, n in enumerate(ranks[r - 1 if down else r + 1])}
            keys = {}
            for i, n in enumerate(ranks[r]):
                near = [fixed[a if down else b] for a, b in links
                        if (b if down else a) == n and (a if down else b) in fixed]
                keys[n] = sum(near) / len(near) if near else float(i)
            ranks[r].sort(key=lambda n: keys[n])


def _positions(ranks: list[list[str]], links: list[tuple[str, str]],
               widths: dict[str, float], weights: dict[tuple[str, str], float]
               ) -> dict[str, float]:
    xs: dict[str, float] = {}
    for layer in ranks:
        left = 0.0
        for n in layer:
            xs[n] = left + widths[n] / 2
            left += widths[n] + GAP_X
    for sweep in range(6):
        down = sweep % 2 == 0
        seq = range(1, len(ranks)) if down else range(len(ranks) - 2, -1, -1)
        for r in seq:
            wanted = []
            for n in ranks[r]:
                near = [(xs[a if down else b], weights[a, b]) for a, b in links
                        if (b if down else a) == n]
                total = sum(w for _, w in near)
                wanted.append(sum(x * w for x, w in near) / total if near else xs[n])
            gaps = [(widths[a] + widths[b]) / 2 + (GAP_X if widths[a] and widths[b] else 12)
                    for a, b in zip(ranks[r], ranks[r][1:], strict=False)]
            for n, x in zip(ranks[r], _pack(wanted, gaps), strict=True):
                xs[n] = x
    low = min(xs[n] - widths[n] / 2 for n in xs)
    return {n: x - low + MARGIN for n, x in xs.items()}


def _pack(wanted: list[float], gaps: list[float]) -> list[float]:
    """Positions closest to *wanted* (least squares) keeping each next one *gaps* further:
    pool-adjacent-violators on the positions less their cumulative gaps."""
    offsets = [0.0]
    for g in gaps:
        offsets.append(offsets[-1] + g)
    blocks: list[list[float]] = []  # [mean, count]
    for w, o in zip(wanted, offsets, strict=True):
        blocks.append([w - o, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, c2 = blocks.pop()
            m1, c1 = blocks.pop()
            blocks.append([(m1 * c1 + m2 * c2) / (c1 + c2), c1 + c2])
    out: list[float] = []
    for mean, count in blocks:
        out.extend([mean] * int(count))
    return [v + o for v, o in zip(out, offsets, strict=True)]


def _boxes(graph: Graph, ranks: list[list[str]],
           xs: dict[str, float]) -> tuple[dict[str, Box], list[tuple[float, float]]]:
    """The boxes, and for each rank the middle of its band (where dummies sit) and its
    bottom (the last one is the drawing's height, margin included)."""
    sizes = {n.id: size(n) for n in graph.nodes}
    y = MARGIN
    boxes: dict[str, Box] = {}
    bands = []
    for layer in ranks:
        real = [n for n in layer if n in sizes]
        tallest = max((sizes[n][1] for n in real), default=0.0)
        for n in real:
            w, h = sizes[n]
            boxes[n] = Box(xs[n], y + (tallest - h) / 2, w, h)
        bands.append((y + tallest / 2, y + tallest + MARGIN))
        y += tallest + GAP_Y
    return boxes, bands


def _ports(graph: Graph, out: Layout) -> None:
    """Spread the edges leaving a box over its bottom, and those entering over its top, in
    the order of where they go, so they do not start on top of each other."""
    leaving: dict[str, list[int]] = {}
    entering: dict[str, list[int]] = {}
    for i in out.routes:
        leaving.setdefault(graph.edges[i].source, []).append(i)
        entering.setdefault(graph.edges[i].target, []).append(i)
    for node, ids in leaving.items():
        box = out.boxes[node]
        ids.sort(key=lambda i: out.routes[i][1][0])
        for k, i in enumerate(ids):
            x = box.x + box.w * 0.7 * ((k + 1) / (len(ids) + 1) - 0.5)
            out.routes[i][0] = (x, box.bottom)
    for node, ids in entering.items():
        box = out.boxes[node]
        ids.sort(key=lambda i: out.routes[i][-2][0])
        for k, i in enumerate(ids):
            x = box.x + box.w * 0.6 * ((k + 1) / (len(ids) + 1) - 0.5)
            out.routes[i][-1] = (x, box.y)
