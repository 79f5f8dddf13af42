"""The examples of docs/events.md work: its flows load together with no problem, its flow tests
pass, and the `flowrun validate` lines it shows are what flowrun prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from tests.conftest import ROOT

TEXT = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
# name -> text, the "# flows/<name>" line included (the line numbers shown count it)
FILES = {name: text for text, name in re.findall(r"```yaml\n(# flows/(\S+)\n.*?)```", TEXT,
                                                  flags=re.S)}


@pytest.fixture
def flows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SHOP_URL", "http://shop.test")
    monkeypatch.setenv("ALERTS_URL", "http://alerts.test")
    folder = tmp_path / "flows"
    folder.mkdir()
    for name, text in FILES.items():
        (folder / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return folder


def flowrun(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args])
    return result.exit_code, result.output


def test_the_flows_load_and_match_and_their_tests_pass(flows: Path) -> None:
    assert len(FILES) == 5, sorted(FILES)
    code, output = flowrun("validate", "flows", "--schemas", str(ROOT / "schemas"))
    assert code == 0 and "3 flow(s) valid, 0 error(s), 0 warning(s)" in output, output
    code, output = flowrun("test", "flows")
    assert code == 0 and "3 passed, 0 failed" in output, output


def test_the_validate_lines_shown_are_what_flowrun_prints(flows: Path) -> None:
    (flows / "channel-stock-sync.yaml").unlink()
    alert = flows / "shrinkage-alert.yaml"
    alert.write_text(alert.read_text().replace("type: inventory.adjusted", "type: "
                                               "inventory.shrunk"))
    broken = flows / "broken-alert.yaml"
    broken.write_text(alert.read_text().replace("shrinkage-alert", "broken-alert")
                      .replace("delta <= -50", "delta <="))
    code, output = flowrun("validate", "flows", "--schemas", str(ROOT / "schemas"))
    assert code == 1
    shown = re.search(r"```\n(flows/.*?)```", TEXT, flags=re.S)
    assert shown is not None
    for line in shown.group(1).splitlines():
        where, _, message = line.partition(" ")
        message = message.split(" (...)")[0]
        assert any(o.startswith(where) and message in o for o in output.splitlines()), \
            (line, output)
