"""A structural check of the Mermaid ``flowchart TD`` text flowrunner writes (engine/
graph_mermaid.py): every line is a node, an edge, a class, a link style or a click of the
shapes it uses; shapes open and close in pairs; quoted texts hold no quote or raw HTML but
``<br/>``; edges join nodes defined above; class names are no Mermaid keywords. It returns
the problems found, so a test shows all of them.

It checks the subset flowrunner writes, not all of Mermaid; Mermaid's own parser accepts the
same text (checked by hand with mermaid 11 in Chromium when the writer changed).
"""

from __future__ import annotations

import re

SHAPES = {'(["': '"])', '("': '")', '{{"': '"}}', '[["': '"]]', '[/"': '"/]'}
NODE = re.compile(r'^  (n\d+)(\(\["|\("|\{\{"|\[\["|\[/")(.*?)("\]\)|"\)|"\}\}|"\]\]|"/\])$')
EDGE = re.compile(r'^  (n\d+) (-->|-\.->|==>)(?:\|"([^"|]*)"\|)? (n\d+)$')
STYLE = r"[A-Za-z0-9_#:,. -]+"
CLASSDEF = re.compile(rf"^  classDef (\w+) ({STYLE})$")
CLASS = re.compile(r"^  class (n\d+(?:,n\d+)*) (\w+)$")
LINKSTYLE = re.compile(rf"^  linkStyle (\d+) ({STYLE})$")
CLICK = re.compile(r'^  click (n\d+) "([^"<>]*)"$')
KEYWORDS = {"end", "subgraph", "graph", "flowchart", "style", "class", "classDef", "click",
            "linkStyle", "default"}


def problems(text: str) -> list[str]:
    lines = text.splitlines()
    found: list[str] = []
    if not lines or lines[0] != "flowchart TD":
        found.append("the first line is not 'flowchart TD'")
    nodes: set[str] = set()
    edges = 0
    defined: set[str] = set()
    used: set[str] = set()
    for number, line in enumerate(lines[1:], start=2):
        if node := NODE.match(line):
            name, opening, label, closing = node.groups()
            if SHAPES[opening] != closing:
                found.append(f"line {number}: shape opened with {opening} closed with {closing}")
            found.extend(f"line {number}: {p}" for p in _text(label))
            if name in nodes:
                found.append(f"line {number}: node {name} defined twice")
            nodes.add(name)
        elif edge := EDGE.match(line):
            source, _, label, target = edge.groups()
            found.extend(f"line {number}: edge from undefined node {n}"
                         for n in (source, target) if n not in nodes)
            found.extend(f"line {number}: {p}" for p in _text(label or ""))
            edges += 1
        elif classdef := CLASSDEF.match(line):
            defined.add(classdef[1])
        elif klass := CLASS.match(line):
            used.add(klass[2])
            found.extend(f"line {number}: class on undefined node {n}"
                         for n in klass[1].split(",") if n not in nodes)
        elif style := LINKSTYLE.match(line):
            if int(style[1]) >= edges:
                found.append(f"line {number}: linkStyle {style[1]} of {edges} edges")
        elif click := CLICK.match(line):
            if click[1] not in nodes:
                found.append(f"line {number}: click on undefined node {click[1]}")
        else:
            found.append(f"line {number}: not a line of a flowrunner flowchart: {line!r}")
    found.extend(f"class {c} is used but not defined" for c in used - defined)
    found.extend(f"class {c} is a Mermaid keyword" for c in (defined | used) & KEYWORDS)
    return found


def _text(label: str) -> list[str]:
    out = []
    if '"' in label:
        out.append(f"a raw quote in {label!r}")
    if re.search(r"<(?!br/>)|(?<!<br/)>", label):
        out.append(f"raw HTML in {label!r}")
    if re.search(r"#(?![a-z]+;|\d+;)", label):
        out.append(f"a raw # in {label!r}")
    return out


def edge_lines(text: str) -> list[tuple[str, str, str, str]]:
    """(source, arrow, label, target) of each edge, in order."""
    return [(m[1], m[2], m[3] or "", m[4]) for m in map(EDGE.match, text.splitlines()) if m]


def node_labels(text: str) -> dict[str, str]:
    return {m[1]: m[3] for m in map(NODE.match, text.splitlines()) if m}
