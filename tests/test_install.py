"""The wheel, installed as a new user installs it: into a fresh virtualenv, far from the checkout.

The wheel is built from a copy of only what the build reads (so nothing else in the checkout can
leak into it), installed with its dependencies into a new venv, and then the commands a newcomer
types first run from a folder outside the checkout: ``--version``, ``init``, ``validate``,
``test`` and ``demo`` — the last one on the flows that ship inside the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import __version__
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

#: what the build reads; anything missing here is missing from the wheel, and a test fails
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "worker.py",
                "engine", "connectors", "flows", "schemas", "connections")


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("FLOWRUN_")}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bin/ folder of a fresh virtualenv with the freshly built wheel installed."""
    work = tmp_path_factory.mktemp("install")
    source = work / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".flowrun")
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                  str(work / "dist"), str(source)], cwd=work)
    assert built.returncode == 0, built.stderr
    [wheel] = (work / "dist").glob("flowrunner_ipaas-*.whl")
    made = _run([sys.executable, "-m", "venv", str(work / "venv")], cwd=work)
    assert made.returncode == 0, made.stderr
    bin_dir = work / "venv" / "bin"
    installed = _run([str(bin_dir / "pip"), "install", "-q", str(wheel)], cwd=work)
    assert installed.returncode == 0, installed.stderr
    shutil.rmtree(source)  # the installed copy must stand on its own
    yield bin_dir


def test_the_installed_engine_is_the_wheels_not_the_checkouts(venv: Path,
                                                              tmp_path: Path) -> None:
    done = _run([str(venv / "python"), "-c", "import engine, engine.shipped as s; "
                 "print(engine.__file__); print(s.data_dir())"], cwd=tmp_path)
    engine_file, data = done.stdout.split()
    assert Path(engine_file).is_relative_to(venv.parent), engine_file
    assert Path(data) == Path(engine_file).parent / "_data"


def test_version_init_validate_test_from_a_new_folder(venv: Path, tmp_path: Path) -> None:
    flowrun = str(venv / "flowrun")
    version = _run([flowrun, "--version"], cwd=tmp_path)
    assert (version.returncode, version.stdout) == (0, f"flowrun {__version__}\n")
    made = _run([flowrun, "init", "shop"], cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    project = tmp_path / "shop"
    assert (project / "schemas" / "canonical" / "order.v1.json").is_file()
    valid = _run([flowrun, "validate"], cwd=project)
    assert valid.returncode == 0, valid.stdout
    assert "1 flow(s) valid, 0 error(s)" in valid.stdout
    tested = _run([flowrun, "test"], cwd=project)
    assert tested.returncode == 0, tested.stdout
    assert "2 passed, 0 failed" in tested.stdout


def test_the_installed_command_prints_its_shell_completion(venv: Path, tmp_path: Path) -> None:
    done = subprocess.run([str(venv / "flowrun")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "_FLOWRUN_COMPLETE": "bash_source"})
    assert done.returncode == 0
    assert "complete -o nosort -F _flowrun_completion flowrun" in done.stdout


def test_demo_runs_the_shipped_flows_from_any_folder(venv: Path, tmp_path: Path) -> None:
    done = _run([str(venv / "flowrun"), "demo"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "demo finished" in done.stdout
    assert (tmp_path / ".flowrun" / "demo" / "state.db").is_file()


def test_the_wheel_ships_the_consoles_vendored_chart_library(tmp_path: Path) -> None:
    """The console's static files, the vendored uPlot among them (a folder below static/), and
    the PostgreSQL migrations are package data: a console served from the wheel draws charts."""
    import zipfile

    source = tmp_path / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".flowrun")
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                  str(tmp_path / "dist"), str(source)], cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("flowrunner_ipaas-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    vendor = "engine/console/static/vendor/uplot/"
    for shipped in (f"{vendor}uPlot.iife.min.js", f"{vendor}uPlot.min.css", f"{vendor}LICENSE",
                    f"{vendor}VERSION", "engine/console/static/activity.js",
                    "engine/console/static/activity.css",
                    "engine/console/templates/activity.html",
                    "engine/store/migrations/0005_finished_at.sql"):
        assert shipped in names, shipped
