"""The pytest plugin collects ``*.test.yaml`` only where a project opts in.

Each case runs pytest as a subprocess in a folder of its own (its own rootdir and ini file, far
from this repository's configuration) holding one Python test and an unrelated
``deploy.test.yaml``: installed alone, flowrunner must leave that file to its owner.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "test_app.py").write_text("def test_app():\n    assert 1 + 1 == 2\n")
    # a deployment manifest that happens to end in .test.yaml: no flow test at all
    (tmp_path / "deploy.test.yaml").write_text("replicas: 3\nimage: shop:1.2\n")
    return tmp_path


@pytest.mark.parametrize("ini", ["", "[pytest]\nflowrun_tests = false\n"])
def test_installed_but_not_enabled_it_collects_nothing(project: Path, ini: str) -> None:
    if ini:
        (project / "pytest.ini").write_text(ini)
    done = _pytest(project)
    assert done.returncode == 0, done.stdout
    assert "1 passed" in done.stdout and "deploy.test.yaml" not in done.stdout


@pytest.mark.parametrize(("ini", "args"), [
    ("flowrun_tests = true\n", []),
    ("", ["--flowrun-tests"]),
    ("", ["-p", "flowrunner"]),
    ("addopts = -p flowrunner\n", []),
], ids=["ini", "option", "-p", "addopts"])
def test_enabled_by_the_ini_setting_or_on_the_command_line_it_collects_test_yaml(
        project: Path, ini: str, args: list[str]) -> None:
    (project / "pytest.ini").write_text(f"[pytest]\n{ini}")
    done = _pytest(project, *args)
    # the manifest is now read as a flow test, and it is not one: a load failure, reported
    assert done.returncode == 1, done.stdout
    assert "deploy.test.yaml" in done.stdout and "1 failed, 1 passed" in done.stdout


def test_this_project_enables_it_and_collects_the_shipped_flow_tests() -> None:
    done = _pytest(ROOT, "--collect-only", "-q", "flows/wms-shipment-event.test.yaml")
    assert done.returncode == 0, done.stdout
    assert "wms-shipment-event.test.yaml::" in done.stdout
