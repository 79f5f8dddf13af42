"""The csv, fixed_width and x12 steps from YAML through the real loader and runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.loader import Loader
from engine.local import resources_factory, run_to_completion
from engine.records import RunState
from engine.runner import Runner
from tests.conftest import ROOT

SAMPLES = ROOT / "tests" / "connectors" / "x12" / "samples"


def run(loader: Loader, tmp_path: Path, flow_text: str, body: object) -> RunState:
    path = tmp_path / "t.yaml"
    path.write_text(flow_text)
    flows = loader.load_paths([path])
    assert flows.ok, [str(p) for p in flows.problems]
    runner = Runner(resources_factory(loader.secrets), loader.secrets.redactor)
    return run_to_completion(flows, flows.flows["t"], body, runner=runner)[0]


CSV_FLOW = """
flow: t
steps:
  - id: rows
    csv:
      parse:
        delimiter: semicolon
        columns:
          - {name: sku, type: string, required: true}
          - {name: qty, type: integer, required: true}
  - id: total
    transform: '{"skus": sku, "qty": $sum(qty)}'
"""


def test_csv_parse_then_map(loader: Loader, tmp_path: Path) -> None:
    state = run(loader, tmp_path, CSV_FLOW, "sku;qty\r\nA-1;3\r\nB-2;4\r\n")
    assert state.status == "succeeded", state.error
    assert state.envelope["body"] == {"skus": ["A-1", "B-2"], "qty": 7}


def test_csv_errors_dead_letter_with_every_row_and_column(loader: Loader, tmp_path: Path) -> None:
    state = run(loader, tmp_path, CSV_FLOW, "sku;qty\nA-1;three\n;4\nC;x\n")
    assert state.status == "dead_lettered"
    errors = state.error["detail"]["errors"]
    assert [(e["row"], e["column"]) for e in errors] == [(2, "qty"), (3, "sku"), (4, "qty")]
    assert state.error["attempts"][0]["kind"] == "invalid_input"
    assert len(state.error["attempts"]) == 1  # a broken file is not retried


def test_csv_render(loader: Loader, tmp_path: Path) -> None:
    flow = """
flow: t
steps:
  - id: out
    csv: {render: {columns: [sku, qty], line_terminator: lf}}
"""
    state = run(loader, tmp_path, flow, [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}])
    assert state.envelope["body"] == "sku,qty\nA,1\nB,2\n"


def test_step_needs_exactly_one_action(loader: Loader, tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("flow: t\nsteps:\n  - id: x\n    csv: {parse: {}, render: {columns: [a]}}\n")
    flow, problems = loader.load_file(path)
    assert flow is None
    assert any("exactly one of 'parse:' or 'render:'" in p.message and p.line == 4
               for p in problems), problems


X12_FLOW = """
flow: t
steps:
  - id: edi
    x12: {parse: {}}
  - id: to_po
    transform: |
      groups[0].transactions[0].{
        "po_number": beg.po_number,
        "ship_to": n1.ST.name,
        "lines": [lines.{"sku": $string(ids.SK ? ids.SK : ids.VP ? ids.VP : ids.UP), "qty": qty}]
      }
"""


def test_x12_parse_and_map_an_850(loader: Loader, tmp_path: Path) -> None:
    text = (SAMPLES / "850_single.edi").read_text()
    state = run(loader, tmp_path, X12_FLOW, text)
    assert state.status == "succeeded", state.error
    body = state.envelope["body"]
    assert body["po_number"] == "4500012345"
    assert body["ship_to"] == "BIGMART DC 6094"
    assert len(body["lines"]) >= 1


def test_malformed_x12_dead_letters_with_segment_and_element(loader: Loader,
                                                            tmp_path: Path) -> None:
    text = (SAMPLES / "850_single.edi").read_text()
    broken = text.replace("SE*", "SE*9", 1)  # wrong segment count in SE01
    state = run(loader, tmp_path, X12_FLOW, broken)
    assert state.status == "dead_lettered"
    assert "SE01" in state.error["message"]
    assert state.error["detail"]["segment_id"] == "SE"


@pytest.mark.parametrize("sample", ["850_single.edi", "856_sopi.edi", "810_single.edi"])
def test_x12_parse_then_render_round_trips(loader: Loader, tmp_path: Path, sample: str) -> None:
    flow = "flow: t\nsteps:\n  - id: p\n    x12: {parse: {}}\n  - id: r\n    x12: {render: {}}\n"
    text = (SAMPLES / sample).read_text()
    state = run(loader, tmp_path, flow, text)
    assert state.status == "succeeded", state.error
    assert state.envelope["body"] == text
