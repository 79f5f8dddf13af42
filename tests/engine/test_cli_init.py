"""`flowrun init`: a project that validates and passes its tests at once, never written over
an existing one; and the shipped schemas for a flow with no schemas/ folder of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine.shipped import data_dir, flows_dir
from tests.conftest import ROOT


def flowrun(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FLOWRUN_")},
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def test_init_here_then_validate_and_test_are_green(tmp_path: Path) -> None:
    made = flowrun("init", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines()[-1] == "next: flowrun validate && flowrun test"
    assert (tmp_path / "connections").is_dir()
    assert (tmp_path / "schemas" / "canonical" / "order.v1.json").read_bytes() == (
        ROOT / "schemas" / "canonical" / "order.v1.json").read_bytes()
    valid = flowrun("validate", cwd=tmp_path)
    assert valid.returncode == 0 and "1 flow(s) valid, 0 error(s)" in valid.stdout
    tested = flowrun("test", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout
    assert "2 passed, 0 failed" in tested.stdout


def test_init_never_writes_over_a_project(tmp_path: Path) -> None:
    assert flowrun("init", "shop", cwd=tmp_path).returncode == 0
    flow = tmp_path / "shop" / "flows" / "web-order-to-erp.yaml"
    flow.write_text("# mine now\n", encoding="utf-8")
    again = flowrun("init", "shop", cwd=tmp_path)
    assert again.returncode == 1
    assert again.stderr.startswith("Error: shop already has connections/README.md, ")
    assert "nothing written" in again.stderr
    assert flow.read_text(encoding="utf-8") == "# mine now\n"


def test_a_flow_without_a_schemas_folder_uses_the_shipped_schemas(tmp_path: Path) -> None:
    (tmp_path / "check.yaml").write_text(
        "flow: check\nsteps:\n  - id: check\n    validate: {schema: canonical/order.v1}\n",
        encoding="utf-8")
    done = flowrun("validate", "check.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    typo = tmp_path / "typo.yaml"
    typo.write_text("flow: typo\nsteps:\n  - id: check\n    validate: {schema: canonical/"
                    "ordr.v1}\n", encoding="utf-8")
    refused = flowrun("validate", "typo.yaml", cwd=tmp_path)
    assert refused.returncode == 1
    assert "no schema 'canonical/ordr.v1'; did you mean 'canonical/order.v1'?" in refused.stdout


def test_in_a_checkout_the_shipped_data_is_the_repositorys_own_folders() -> None:
    assert data_dir() == ROOT and flows_dir() == ROOT / "flows"
