"""The README's five-minute tutorial, followed to the letter in a copy of the checkout: each
command prints what the README says it prints (run ids, timestamps and timings aside), and the
flow and test files it has a newcomer write leave the test command green."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

SECTION = "## Your first flow in five minutes"


def tutorial() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    return text[start:text.index("\n## ", start + len(SECTION))]


def fenced(kind: str) -> list[str]:
    return [m[1] for m in re.finditer(rf"^```{kind}\n(.*?)^```", tutorial(),
                                      re.MULTILINE | re.DOTALL)]


def normal(text: str) -> str:
    """Output with what differs from run to run replaced: ids, timestamps, timings."""
    text = re.sub(r"\b[0-9a-f]{32}\b", "<id>", text)
    text = re.sub(r'"flow_version": "[0-9a-f]{12}"', '"flow_version": "<v>"', text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>", text)
    return re.sub(r"\d+(\.\d+)? (ms|s)\b", r"<n> \2", text).strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    for folder in ("flows", "schemas", "connections"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def sh(line: str, cwd: Path) -> tuple[str, str]:
    """One command of the tutorial; `flowrun` is this checkout's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWRUN_")}
    env["PYTHONPATH"] = str(ROOT)
    command = re.sub(r"^flowrun ", f"{sys.executable} -m engine.cli ", line)
    done = subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout, done.stderr


def test_the_tutorial_prints_what_the_readme_says(checkout: Path) -> None:
    flow_yaml, test_yaml = fenced("yaml")
    commands = [line for block in fenced("sh") for line in block.splitlines()]
    outputs = fenced("text")
    assert commands == [
        "flowrun validate flows/hello-orders.yaml",
        """echo '{"number": 1001, "total": 250, "customer": {"name": "Ada"}}' > order.json""",
        "flowrun run flows/hello-orders.yaml --input order.json --trace",
        "flowrun test flows/hello-orders.yaml"]
    flow_file = checkout / "flows" / "hello-orders.yaml"
    flow_file.write_text(flow_yaml, encoding="utf-8")

    # 2. valid: a summary and nothing else (no word about connections it does not use)
    out, _ = sh(commands[0], checkout)
    assert normal(out) == normal(outputs[0])

    # the two mistakes the README describes, and what it says they print
    said = " ".join(tutorial().split())
    assert "cut the filter short (`filter: total >`)" in said
    assert "misspell the second step's kind (`transfrom: |`)" in said
    broken = flow_yaml.replace("filter: total > 100", "filter: total >").replace(
        "    transform: |", "    transfrom: |")
    flow_file.write_text(broken, encoding="utf-8")
    out, _ = sh(commands[0], checkout)
    assert normal(out) == normal(outputs[1])
    flow_file.write_text(flow_yaml, encoding="utf-8")

    # 3. run it: the trace (stderr) as it scrolls by, then the run (stdout), then the summary
    sh(commands[1], checkout)
    out, err = sh(commands[2], checkout)
    trace = err.rstrip("\n").split("\n")
    assert normal("\n".join([*trace[:-1], out.rstrip("\n"), trace[-1]])) == normal(outputs[2])

    # the small order: filtered, with its reason (the README shows the opening lines)
    (checkout / "small.json").write_text(
        '{"number": 1002, "total": 50, "customer": {"name": "Bo"}}', encoding="utf-8")
    out, _ = sh("flowrun run flows/hello-orders.yaml --input small.json", checkout)
    assert normal(out).startswith(normal(outputs[3]))

    # 4. its tests pass, every step covered
    (checkout / "flows" / "hello-orders.test.yaml").write_text(test_yaml, encoding="utf-8")
    out, _ = sh(commands[3], checkout)
    assert normal(out) == normal(outputs[4])


def test_the_tutorial_files_keep_the_checks_of_the_shipped_flows_green(checkout: Path) -> None:
    """The suite's checks over flows/ see the newcomer's files too: all flows valid, every test
    passing, coverage 100% (what `flowrun test flows --min-coverage 100` asks)."""
    flow_yaml, test_yaml = fenced("yaml")
    (checkout / "flows" / "hello-orders.yaml").write_text(flow_yaml, encoding="utf-8")
    (checkout / "flows" / "hello-orders.test.yaml").write_text(test_yaml, encoding="utf-8")
    out, _ = sh("flowrun validate flows", checkout)
    assert re.search(r"^\d+ flow\(s\) valid, 0 error\(s\)", out, re.MULTILINE), out
    out, _ = sh("flowrun test flows/hello-orders.yaml --min-coverage 100", checkout)
    assert "2 passed, 0 failed" in out and "100%" in out
