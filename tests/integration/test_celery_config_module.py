"""``worker.py`` with a standard Celery configuration module, and without any settings at all.

Real ``celery -A worker`` processes: a worker whose tuning comes from the module
``FLOWRUN_CELERY_CONFIG`` names reports that tuning to ``celery inspect`` and runs flows; the
module imports with no FLOWRUN_* set, and only a worker that starts so stops, with one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, Cluster

pytestmark = pytest.mark.integration

GREET = """
flow: greet
steps:
  - id: shape
    transform: '{"greeting": "Hello " & name}'
"""


def _bare_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FLOWRUN_")}


def test_worker_imports_without_settings_and_a_started_worker_says_what_is_missing() -> None:
    imported = subprocess.run([sys.executable, "-c", "import worker; print(worker.app.main)"],
                              cwd=ROOT, env=_bare_env(), capture_output=True, text=True,
                              timeout=60)
    assert (imported.returncode, imported.stdout, imported.stderr) == (0, "flowrun\n", "")
    started = subprocess.run([sys.executable, "-m", "celery", "-A", "worker", "worker",
                              "--pool", "solo"], cwd=ROOT, env=_bare_env(),
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 1
    assert (started.stdout + started.stderr).splitlines() == [
        "worker: FLOWRUN_REDIS_URL is not set; workers keep run state in Redis "
        "(e.g. FLOWRUN_REDIS_URL=redis://localhost:6379/0)"]


def test_a_worker_takes_its_tuning_from_the_configuration_module(cluster: Cluster,
                                                                 tmp_path: Path) -> None:
    modules = tmp_path / "config"
    modules.mkdir()
    (modules / "platform_celery.py").write_text("worker_max_tasks_per_child = 250\n"
                                                "worker_prefetch_multiplier = 3\n")
    cluster.env["FLOWRUN_CELERY_CONFIG"] = "platform_celery"
    cluster.env["PYTHONPATH"] = os.pathsep.join(
        [str(modules), *filter(None, [cluster.env.get("PYTHONPATH")])])
    (cluster.flows / "greet.yaml").write_text(GREET, encoding="utf-8")
    worker = cluster.start_worker("tuned")
    worker.wait_ready()
    app = cluster.app()
    accepted = app.accept(app.flows.flows["greet"], {"name": "Ada"})
    assert app.wait_for(accepted.run_id, timeout=30)[0].status == "succeeded"
    asked = subprocess.run([sys.executable, "-m", "celery", "-A", "worker", "inspect", "conf",
                            "--json", "--timeout", "5"], cwd=ROOT, env=cluster.env,
                           capture_output=True, text=True, timeout=60)
    assert asked.returncode == 0, asked.stdout + asked.stderr
    [conf] = json.loads(asked.stdout).values()
    assert (conf["worker_max_tasks_per_child"], conf["worker_prefetch_multiplier"]) == (250, 3)
    # flowrunner's own defaults the module left alone still hold
    assert conf["task_acks_late"] is True
    assert conf["broker_transport_options"]["visibility_timeout"] == 2.0
