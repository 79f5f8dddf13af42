"""No file of the project carries a merge-conflict marker: one left in a doc or a module is a
broken page or a syntax error waiting to be found by a reader."""

from __future__ import annotations

import re

from tests.conftest import ROOT

MARKER = re.compile(r"^(<{7} |>{7} |={7}$)", re.M)
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".json", ".html", ".css", ".js", ".sql",
            ".edi", ".csv", ".txt", ".cfg", ".ini"}
SKIP = {".git", "node_modules", "__pycache__", ".venv", "build", "dist", "artifacts"}


def test_no_tracked_text_file_carries_a_merge_conflict_marker() -> None:
    found = []
    for path in ROOT.rglob("*"):
        if any(part in SKIP or part.endswith(".egg-info") for part in path.parts) \
                or path.suffix not in SUFFIXES or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{path.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}"
                  for m in MARKER.finditer(text)]
    assert found == []
