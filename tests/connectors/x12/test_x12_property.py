"""Property tests: any well-formed interchange, any delimiters, renders back byte for byte.

The interchanges are assembled here by plain string joins (not by the
library's renderer) so that parse and render are each checked against an
independent construction.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.x12 import parse, render

# Characters partners actually use as separators, printable and control.
SEPARATORS = ["*", "|", "^", "~", ":", ">", "\\", "!", "\x1d", "\x1c", "\x1e", "\x1f", "\x07"]
DATA = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -./#&@"


@st.composite
def delimiters(draw: st.DrawFn) -> dict[str, Any]:
    chars = draw(st.permutations(SEPARATORS))
    five = draw(st.booleans())  # 00501 has a repetition separator, 00401 does not
    return {
        "element": chars[0],
        "component": chars[1],
        "repetition": chars[2] if five else None,
        "segment": chars[3],
        "suffix": draw(st.sampled_from(["", "\n", "\r\n"])),
    }


def element(repetition: bool) -> st.SearchStrategy[Any]:
    simple = st.text(DATA, max_size=12)
    composite = st.lists(st.text(DATA, max_size=6), min_size=2, max_size=4)
    options = [simple, composite]
    if repetition:
        options.append(
            st.lists(st.one_of(simple, composite), min_size=2, max_size=3).map(
                lambda reps: {"repeat": reps}
            )
        )
    return st.one_of(*options)


def segments(repetition: bool) -> st.SearchStrategy[list[list[Any]]]:
    seg_id = st.sampled_from(["W05", "N1", "N9", "LX", "W01", "G69", "N3", "N4", "W76"])
    return st.lists(
        st.tuples(seg_id, st.lists(element(repetition), min_size=1, max_size=6)).map(
            lambda t: [t[0], *t[1]]
        ),
        min_size=1,
        max_size=8,
    )


def join(value: Any, d: dict[str, Any]) -> str:
    if isinstance(value, dict):
        return str(d["repetition"]).join(join(r, d) for r in value["repeat"])
    if isinstance(value, list):
        return str(d["component"]).join(value)
    return str(value)


def assemble(d: dict[str, Any], groups: list[list[list[list[Any]]]], trailing: str) -> str:
    version = "00501" if d["repetition"] else "00401"
    isa = [
        "ISA",
        "00",
        " " * 10,
        "00",
        " " * 10,
        "ZZ",
        "ACMEDIST".ljust(15),
        "ZZ",
        "PARTNER".ljust(15),
        "240501",
        "0930",
        d["repetition"] or "U",
        version,
        "000000777",
        "0",
        "P",
        d["component"],
    ]
    rows = [d["element"].join(isa)]
    for gi, sets in enumerate(groups, start=1):
        rows.append(
            d["element"].join(
                ["GS", "AR", "ACMEDIST", "PARTNER", "20240501", "0930", str(gi), "X", version + "0"]
            )
        )
        for ti, body in enumerate(sets, start=1):
            control = f"{gi}{ti:03d}"
            rows.append(d["element"].join(["ST", "943", control]))
            for seg in body:
                rows.append(d["element"].join([seg[0], *(join(e, d) for e in seg[1:])]))
            rows.append(d["element"].join(["SE", str(len(body) + 2), control]))
        rows.append(d["element"].join(["GE", str(len(sets)), str(gi)]))
    rows.append(d["element"].join(["IEA", str(len(groups)), "000000777"]))
    return (d["segment"] + d["suffix"]).join(rows) + d["segment"] + trailing


@st.composite
def interchanges(draw: st.DrawFn) -> tuple[str, dict[str, Any], list[Any]]:
    d = draw(delimiters())
    groups = draw(
        st.lists(
            st.lists(segments(d["repetition"] is not None), min_size=1, max_size=3),
            min_size=1,
            max_size=3,
        )
    )
    trailing = draw(st.sampled_from(["", d["suffix"], "\n"]))
    return assemble(d, groups, trailing), d, groups


@settings(max_examples=60, deadline=None)
@given(interchanges())
def test_any_interchange_round_trips(case: tuple[str, dict[str, Any], list[Any]]) -> None:
    text, d, groups = case
    doc = parse(text)
    assert doc["interchange"]["delimiters"] == d
    parsed_bodies = [[tx["segments"][1:-1] for tx in g["transactions"]] for g in doc["groups"]]
    assert parsed_bodies == groups
    assert render(doc) == text
