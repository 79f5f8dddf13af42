"""The Mermaid pictures in the docs are what `flowrun graph` draws today.

A picture in a guide sits under the command that writes it::

    <!-- flowrun graph canonical-order-to-erp --format mermaid -->
    ```mermaid
    ...
    ```

This test runs the command on the shipped flows and fails when a block differs; with
``FLOWRUN_UPDATE_DOCS=1`` it writes the blocks instead (then the test passes, and the diff shows
what changed).
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from tests.conftest import ROOT
from tests.engine.mermaid_check import problems

DOCS = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"^<!-- (flowrun graph [^\n]*?) -->\n```mermaid\n(.*?)^```$",
                   re.MULTILINE | re.DOTALL)


def pictures() -> list[tuple[Path, str]]:
    return [(doc, match[1]) for doc in DOCS
            for match in BLOCK.finditer(doc.read_text(encoding="utf-8"))]


def drawn(command: str) -> str:
    args = shlex.split(command)[1:]
    result = CliRunner().invoke(main, [*args, "--flows", str(ROOT / "flows")])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_analyst_guide_has_a_picture() -> None:
    assert any(doc.name == "analyst-guide.md" for doc, _ in pictures())


@pytest.mark.parametrize(("doc", "command"), pictures(),
                         ids=[f"{d.name}:{c}" for d, c in pictures()])
def test_a_picture_in_the_docs_is_up_to_date(doc: Path, command: str) -> None:
    text = doc.read_text(encoding="utf-8")
    fresh = drawn(command)
    assert problems(fresh) == []
    written = next(m[2] for m in BLOCK.finditer(text) if m[1] == command)
    if os.environ.get("FLOWRUN_UPDATE_DOCS") == "1" and written != fresh:
        doc.write_text(text.replace(f"<!-- {command} -->\n```mermaid\n{written}```",
                                    f"<!-- {command} -->\n```mermaid\n{fresh}```"),
                       encoding="utf-8")
        return
    assert written == fresh, (f"{doc.name}: the picture under `{command}` is stale; run the "
                              "tests with FLOWRUN_UPDATE_DOCS=1 to write it")
