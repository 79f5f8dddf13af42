"""``x12: {correlate: ...}`` from YAML through the real loader and runner: a 997 read back
against what we sent, and the precise error for input that is not a parsed 997."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from connectors.x12 import MemoryControlNumbers, build_interchange, generate_997, parse
from engine.loader import Loader
from tests.connectors.test_file_format_steps import run

FLOW = """
flow: t
steps:
  - id: keep
    set: {sent: sent_doc}
  - id: read
    x12: {parse: {}, value: edi}
  - id: match
    x12:
      correlate: {sent: $vars.sent}
    output: vars.acks
"""

INVOICE = {"set": "810", "big": {"invoice_date": "20261122", "invoice_number": "INV-1",
                                 "po_number": "PO-1"},
           "lines": [{"qty": "2", "uom": "EA", "unit_price": "5.00"}]}


def sent_and_ack() -> tuple[str, str]:
    sent = build_interchange([INVOICE], sender="ZZ:US", receiver="ZZ:PARTNER",
                             control_numbers=MemoryControlNumbers(start=41),
                             now=datetime(2026, 11, 22, 10, 0))
    ack = generate_997(parse(sent, strict=False), MemoryControlNumbers(start=7))
    return sent, ack


def test_a_997_is_matched_to_the_interchange_we_sent(loader: Loader, tmp_path: Path) -> None:
    sent, ack = sent_and_ack()
    state = run(loader, tmp_path, FLOW, {"sent_doc": parse(sent), "edi": ack})
    assert state.status == "succeeded", state.error
    (group,) = state.envelope["vars"]["acks"]
    assert (group["matched"], group["status"], group["group_control_number"]) == (
        True, "accepted", "41")
    assert [(s["set"], s["control_number"], s["accepted"]) for s in group["sets"]] == [
        ("810", "0041", True)]


def test_a_997_for_another_group_is_not_matched(loader: Loader, tmp_path: Path) -> None:
    sent, ack = sent_and_ack()
    other = parse(sent)
    other["groups"][0]["control_number"] = "42"
    state = run(loader, tmp_path, FLOW, {"sent_doc": other, "edi": ack})
    assert state.status == "succeeded", state.error
    assert state.envelope["vars"]["acks"][0]["matched"] is False


def test_correlate_names_input_that_is_not_a_parsed_997(loader: Loader, tmp_path: Path) -> None:
    flow = """
flow: t
steps:
  - id: match
    x12:
      correlate: {}
"""
    state = run(loader, tmp_path, flow, {"not": "a 997"})
    assert state.status == "dead_lettered"
    assert state.error["message"] == (f"step 'match' ({tmp_path / 't.yaml'}:4): correlate "
                                      "expects a parsed 997: parse it first with x12: "
                                      "{parse: {}}")
    assert state.error["kind"] == "invalid_input"


def test_a_file_of_997s_is_correlated_whole(loader: Loader, tmp_path: Path) -> None:
    sent, ack = sent_and_ack()
    later = generate_997(parse(sent, strict=False), MemoryControlNumbers(start=8))
    state = run(loader, tmp_path, FLOW, {"sent_doc": parse(sent), "edi": ack + later})
    assert state.status == "succeeded", state.error
    acks = state.envelope["vars"]["acks"]
    assert [(a["matched"], a["ack_control_number"]) for a in acks] == [
        (True, "0007"), (True, "0008")]
