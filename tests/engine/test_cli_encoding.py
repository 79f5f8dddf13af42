"""``flowrun run --text --encoding``: a partner's Latin-1 EDI file run through a flow as it is."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import ROOT
from tests.engine.test_cli import flowrun

LATIN1 = ROOT / "tests" / "connectors" / "x12" / "samples" / "partners" / "850_latin1_accented.edi"
FLOW = """flow: ship-to
steps:
  - id: read
    x12: {parse: {}}
  - id: name
    transform: 'groups[0].transactions[0].n1.ST.name'
"""


def test_run_text_decodes_with_the_encoding_given(tmp_path: Path) -> None:
    (tmp_path / "ship-to.yaml").write_text(FLOW, encoding="utf-8")
    result = flowrun("run", "ship-to", "--input", str(LATIN1), "--text", "--encoding", "latin-1",
                     "--flows", str(tmp_path))
    assert result.code == 0, result.both
    assert json.loads(result.out)["envelope"]["body"] == "ÉPICERIE FINE GÉRARD"


def test_run_text_says_which_byte_is_not_utf8_and_what_to_add(tmp_path: Path) -> None:
    (tmp_path / "ship-to.yaml").write_text(FLOW, encoding="utf-8")
    result = flowrun("run", "ship-to", "--input", str(LATIN1), "--text", "--flows", str(tmp_path))
    offset = LATIN1.read_bytes().index("É".encode("latin-1"))
    assert result.code == 1
    assert (f"{LATIN1}: the message is not UTF-8 text (byte 0xC9 at offset {offset}); for a "
            "Latin-1 or Windows-1252 file add --encoding latin-1 or --encoding cp1252"
            ) in result.err


def test_run_refuses_an_unknown_encoding(tmp_path: Path) -> None:
    result = flowrun("run", "ship-to", "--input", str(LATIN1), "--text", "--encoding", "latin-9x",
                     "--flows", str(tmp_path))
    assert result.code == 2
    assert "unknown encoding 'latin-9x'; write e.g. utf-8, latin-1 or cp1252" in result.err
