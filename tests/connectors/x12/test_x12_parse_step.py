"""``x12: {parse: ...}`` options from YAML through the real loader and runner: allow_segments
(checked at load), unwrap, encoding, and files of several interchanges acknowledged by the
``ack`` operation."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.x12 import parse
from engine.loader import Loader
from tests.connectors.test_file_format_steps import run

PARTNERS = Path(__file__).parent / "samples" / "partners"


def sample(name: str) -> str:
    return (PARTNERS / name).read_bytes().decode("latin-1")


def flow(parse_options: str) -> str:
    return f"""
flow: t
steps:
  - id: read
    x12: {{parse: {parse_options}}}
"""


def po_number(state: object) -> str:
    body = state.envelope["body"]  # type: ignore[attr-defined]
    return str(body["groups"][0]["transactions"][0]["beg"]["po_number"])


def test_allow_segments_accepts_a_partners_segments(loader: Loader, tmp_path: Path) -> None:
    older = sample("850_004030_mtx_padded_counts.edi").replace("*X*004030~", "*X*004010~")
    refused = run(loader, tmp_path, flow("{}"), older)
    assert refused.status == "dead_lettered"
    assert "segment 9 (MTX): segment MTX is not defined for transaction set 850" in (
        refused.error["message"])
    for options in ("{allow_segments: [MTX]}", "{allow_segments: {'850': [MTX, PKG]}}"):
        state = run(loader, tmp_path, flow(options), older)
        assert state.status == "succeeded", state.error
        assert po_number(state) == "PO-88213"


@pytest.mark.parametrize(("options", "message"), [
    ("{allow_segments: [MTX, mtx]}", "'mtx' is not a segment id; write 2 or 3 capital letters "
                                     "or digits starting with a letter, e.g. MTX"),
    ("{allow_segments: {'85': [MTX]}}", "'85' is not a transaction set id; write three digits "
                                        "such as '850'"),
    ("{encoding: latin-9x}", "unknown encoding 'latin-9x'; write e.g. utf-8, latin-1 or cp1252"),
])
def test_bad_parse_options_fail_at_load_with_their_position(loader: Loader, tmp_path: Path,
                                                            options: str, message: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(flow(options).lstrip(), encoding="utf-8")
    compiled, problems = loader.load_file(path)
    assert compiled is None
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) == 1, errors
    assert message in errors[0].message
    assert errors[0].line == 4


def test_unwrap_reads_a_file_wrapped_at_80_columns(loader: Loader, tmp_path: Path) -> None:
    wrapped = sample("850_wrapped_80_columns.edi")
    refused = run(loader, tmp_path, flow("{}"), wrapped)
    assert refused.status == "dead_lettered"
    assert "set unwrap: true on the x12 step" in refused.error["message"]
    state = run(loader, tmp_path, flow("{unwrap: true}"), wrapped)
    assert state.status == "succeeded", state.error
    assert po_number(state) == "4500099120"


def test_encoding_decodes_an_interchange_given_as_bytes(loader: Loader, tmp_path: Path) -> None:
    raw = (PARTNERS / "850_latin1_accented.edi").read_bytes()
    refused = run(loader, tmp_path, flow("{}"), raw)
    assert refused.status == "dead_lettered"
    offset = raw.index("É".encode("latin-1"))
    assert refused.error["message"].endswith(
        f"EDI X12: byte 0xC9 at offset {offset} is not utf-8; set encoding: "
        "latin-1 (or cp1252) on the x12 step for a partner that sends that")
    for encoding in ("latin-1", "cp1252"):
        state = run(loader, tmp_path, flow(f"{{encoding: {encoding}}}"), raw)
        assert state.status == "succeeded", state.error
        tx = state.envelope["body"]["groups"][0]["transactions"][0]
        assert tx["n1"]["ST"]["name"] == "ÉPICERIE FINE GÉRARD"


def test_a_van_file_is_parsed_and_acknowledged_whole(loader: Loader, tmp_path: Path) -> None:
    text = """
flow: t
steps:
  - id: read
    x12: {parse: {strict: false}}
  - id: answer
    x12: {ack: {}}
"""
    state = run(loader, tmp_path, text, sample("van_three_interchanges.edi"))
    assert state.status == "succeeded", state.error
    acks = parse(state.envelope["body"])["interchanges"]
    assert [a["groups"][0]["transactions"][0]["ak1"]["group_control_number"] for a in acks] == [
        "905", "906", "907"]
