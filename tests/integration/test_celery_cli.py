"""`flowrun worker` starts a Celery worker for the configured Redis that runs flows."""

from __future__ import annotations

import sys

import pytest

from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

GREET = """
flow: greet
steps:
  - id: shape
    transform: '{"greeting": "Hello " & name}'
  - id: remember
    set: {who: name}
"""


def test_flowrun_worker_runs_flows(cluster: Cluster) -> None:
    (cluster.flows / "greet.yaml").write_text(GREET, encoding="utf-8")
    worker = cluster.start_worker("cli", command=[
        sys.executable, "-m", "engine.cli", "worker", "--pool", "solo", "--name", "cli@%h"])
    app = cluster.app()
    worker.wait_ready()
    accepted = app.accept(app.flows.flows["greet"], {"name": "Ada"})
    state = app.wait_for(accepted.run_id, timeout=30)[0]
    assert state.status == "succeeded"
    assert state.envelope["body"] == {"greeting": "Hello Ada"}
    assert "cli@" in worker.text()
