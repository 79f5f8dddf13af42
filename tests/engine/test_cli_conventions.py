"""What every `flowrun` command has in common: --version, --json, colour and progress bars on
a terminal only, and a question before a whole dead-letter queue is replayed.

Terminal behaviour is checked on a real pseudo-terminal (tests/engine/terminal.py), piped
behaviour through ordinary pipes; the dead-letter entries are made against a loopback ERP
exactly as in test_dlq.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from engine import __version__
from engine.app import App
from engine.cli import main
from engine.store.base import DeadLetterFilter
from tests.conftest import ROOT
from tests.engine import test_dlq
from tests.engine.terminal import in_terminal
from tests.engine.test_dlq import Erp, cli_env, fail

# the dead-letter fixtures of test_dlq: a flow that fails against a loopback ERP, and that ERP
env, erp = test_dlq.env, test_dlq.erp

ESC = "\x1b["
FLOWRUN = [sys.executable, "-m", "engine.cli"]
BROKEN = "flow: broken\nsteps:\n  - id: a\n    transform: '{\"x\": '\n"


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None,
         stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLOWRUN, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, input=stdin if stdin is not None else "",
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_version() -> None:
    done = _run(["--version"], ROOT)
    assert (done.returncode, done.stdout) == (0, f"flowrun {__version__}\n")


#: every command that prints data, by its path under `flowrun`
DATA_COMMANDS = [["validate"], ["run"], ["test"], ["connectors"], ["runs"], ["runs", "show"],
                 ["dlq", "list"], ["dlq", "show"], ["poll"]]


@pytest.mark.parametrize("path", DATA_COMMANDS, ids=" ".join)
def test_every_data_command_takes_json_and_none_shows_format(path: list[str]) -> None:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    options = {opt: param for param in command.params for opt in param.opts}
    assert "--json" in options
    assert "--format" not in options or options["--format"].hidden


def test_shell_completion_completes_commands_and_options() -> None:
    script = _run([], ROOT, {"_FLOWRUN_COMPLETE": "bash_source"})
    assert script.returncode == 0 and "complete -o nosort -F _flowrun_completion flowrun" \
        in script.stdout
    words = _run([], ROOT, {"_FLOWRUN_COMPLETE": "bash_complete", "COMP_WORDS": "flowrun dl",
                            "COMP_CWORD": "1"})
    assert words.stdout.splitlines() == ["plain,dlq"]
    options = _run([], ROOT, {"_FLOWRUN_COMPLETE": "bash_complete",
                              "COMP_WORDS": "flowrun dlq replay --al", "COMP_CWORD": "3"})
    assert options.stdout.splitlines() == ["plain,--all-matching"]


def test_format_json_still_works_with_a_deprecation_warning() -> None:
    done = _run(["validate", "--format", "json", "flows/wms-shipment-event.yaml"], ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["flows"] == ["wms-shipment-event"]
    assert done.stderr == "flowrun: --format is deprecated; use --json\n"


def test_colour_on_a_terminal_plain_when_piped_or_no_color(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text(BROKEN)
    base = {**os.environ, "PYTHONPATH": str(ROOT)}
    base.pop("NO_COLOR", None)
    code, shown = in_terminal([*FLOWRUN, "validate", "broken.yaml"], base, str(tmp_path))
    assert code == 1
    assert f"{ESC}31m" in shown and "broken.yaml:4" in shown  # the error, in red
    piped = _run(["validate", "broken.yaml"], tmp_path, {"NO_COLOR": ""})
    assert piped.returncode == 1 and "broken.yaml:4" in piped.stdout
    assert ESC not in piped.stdout + piped.stderr
    code, shown = in_terminal([*FLOWRUN, "validate", "broken.yaml"], {**base, "NO_COLOR": "1"},
                              str(tmp_path))
    assert code == 1 and "broken.yaml:4" in shown and ESC not in shown


# -- replaying a whole queue -------------------------------------------------------------------
def _three_open(env: dict[str, Any], erp: Erp) -> list[str]:
    app: App = env["app"]()
    erp.refuse = True
    entries = fail(app, {"po": "P1", "qty": 1}, {"po": "P2", "qty": 2}, {"po": "P3", "qty": 3})
    app.executor.stop()
    app.store.close()
    erp.refuse = False
    return [e.id for e in entries]


def _open_entries(env: dict[str, Any]) -> int:
    app: App = env["app"]()
    return len(app.store.list_dead_letters(DeadLetterFilter(status="open")))


def _cli(env: dict[str, Any]) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **cli_env(env)}


def test_unfiltered_replay_without_a_terminal_is_refused_in_one_line(
        env: dict[str, Any], erp: Erp) -> None:
    _three_open(env, erp)
    done = subprocess.run([*FLOWRUN, "dlq", "replay", "--all-matching"], cwd=env["tmp"],
                          env=_cli(env), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "Error: Replay all 3 open entries without asking: no filter was given; add --yes to "
        "confirm, or a filter (--flow, --step, --error, --since, --until)"]
    assert _open_entries(env) == 3 and erp.received[-1]["po"] == "P3"


@pytest.mark.parametrize(("answer", "replayed"), [("n", 0), ("y", 3)])
def test_unfiltered_replay_on_a_terminal_asks_first(env: dict[str, Any], erp: Erp,
                                                    answer: str, replayed: int) -> None:
    _three_open(env, erp)
    before = len(erp.received)
    code, shown = in_terminal([*FLOWRUN, "dlq", "replay", "--all-matching"], _cli(env),
                              str(env["tmp"]), answer=answer)
    assert "replay all 3 open entries? [y/N]" in shown
    assert code == (1 if answer == "n" else 0), shown
    assert len(erp.received) - before == replayed
    assert _open_entries(env) == 3 - replayed


def test_yes_or_a_filter_replays_without_asking(env: dict[str, Any], erp: Erp) -> None:
    _three_open(env, erp)
    done = subprocess.run([*FLOWRUN, "dlq", "replay", "--all-matching", "--yes"],
                          cwd=env["tmp"], env=_cli(env), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "3 entries, 0 not replayed successfully" in done.stderr
    assert _open_entries(env) == 0


def test_bulk_replay_draws_a_progress_bar_on_a_terminal_and_lines_when_piped(
        env: dict[str, Any], erp: Erp) -> None:
    _three_open(env, erp)
    code, shown = in_terminal([*FLOWRUN, "dlq", "replay", "--all-matching", "--flow",
                               "po-intake"], _cli(env), str(env["tmp"]))
    assert code == 0, shown
    assert "replaying" in shown and "3/3" in shown and "[####" in shown
    assert "[1/3]" not in shown  # the bar replaces the per-entry lines
    assert shown.count(": run ") == 3 and f"{ESC}32msucceeded" in shown
