"""The drop folder's ``encoding:``: a partner's Latin-1 EDI file is taken in as text instead
of being moved to error/ as "not UTF-8", and an unknown encoding fails the flow at load."""

from __future__ import annotations

from pathlib import Path

from engine.loader import Loader
from tests.conftest import ROOT, make_app
from tests.engine.poll.support import T0, Clock, runs, scheduler

FLOW = """
flow: edi-drop
trigger:
  poll:
    every: 1m
    files: {{dir: "{dir}", pattern: "*.edi", stable_for: 10s{extra}}}
steps:
  - id: keep
    set: {{name: $headers.name}}
"""
LATIN1 = ROOT / "tests" / "connectors" / "x12" / "samples" / "partners" / "850_latin1_accented.edi"


def take_latin1_file(tmp_path: Path, extra: str) -> tuple[Path, list[str]]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    app = make_app(tmp_path, {"edi-drop": FLOW.format(dir=inbox, extra=extra)})
    (inbox / "PO-88.edi").write_bytes(LATIN1.read_bytes())
    clock = Clock(T0.timestamp())
    with scheduler(app, clock) as sched:
        sched.tick()
        clock.now += 10
        sched.tick()
    return inbox, [e["body"] for e in runs(app, "edi-drop")]


def test_a_latin1_file_is_taken_with_encoding_latin1(tmp_path: Path) -> None:
    inbox, bodies = take_latin1_file(tmp_path, ", encoding: latin-1")
    assert bodies == [LATIN1.read_bytes().decode("latin-1")]
    assert "N1*ST*ÉPICERIE FINE GÉRARD*92*MTL-01~" in bodies[0]
    assert (inbox / "archive" / "PO-88.edi").exists()


def test_without_encoding_a_latin1_file_goes_to_error(tmp_path: Path) -> None:
    inbox, bodies = take_latin1_file(tmp_path, "")
    assert bodies == []
    reason = (inbox / "error" / "PO-88.edi.reason.txt").read_text(encoding="utf-8")
    assert reason.startswith("PO-88.edi: the file is not UTF-8 text (byte ")


def test_an_unknown_encoding_fails_at_load(tmp_path: Path, loader: Loader) -> None:
    path = tmp_path / "edi-drop.yaml"
    path.write_text(FLOW.format(dir=tmp_path, extra=", encoding: latin-9x").lstrip(),
                    encoding="utf-8")
    flow, problems = loader.load_file(path)
    assert flow is None
    assert [(p.line, p.message) for p in problems if p.severity == "error"] == [
        (5, "unknown encoding 'latin-9x'; write e.g. utf-8, latin-1 or cp1252")]
