"""The run story logs on Celery workers: runs a worker spawns (split items, hand-offs) are
accepted in its log with their trigger and parent, as on the embedded executor.

The basket is accepted in this process (the producer logs its `run.accepted`); a real
``celery -A worker worker`` process with JSON logs at INFO runs it and the four runs it spawns.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.engine.test_metrics_observability import capture_logs
from tests.engine.test_run_logs import BASKET, LINE, of, parsed, spawned_stories
from tests.integration.conftest import Cluster, wait_until

pytestmark = pytest.mark.integration


def test_a_worker_logs_the_runs_it_spawns_as_accepted(cluster: Cluster) -> None:
    for name, text in (("basket", BASKET), ("line", LINE)):
        (cluster.flows / f"{name}.yaml").write_text(text, encoding="utf-8")
    cluster.env.update(FLOWRUN_LOG_FORMAT="json", FLOWRUN_LOG_LEVEL="INFO")
    worker = cluster.start_worker("story")
    app = cluster.app()
    worker.wait_ready()
    with capture_logs("json") as buffer:
        accepted = app.accept(app.flows.flows["basket"], {
            "order_number": 5, "lines": [{"order_number": 5, "sku": "A"},
                                         {"order_number": 5, "sku": "B"}]}, trigger="webhook")

        def story() -> list[dict[str, Any]] | None:
            lines = parsed(buffer) + [json.loads(line) for line in worker.text().splitlines()
                                      if line.startswith("{")]
            return lines if len(of(lines, "run.finished")) == 5 else None
        lines = wait_until(story, 60, "five finished runs in the worker's log")
    spawned_stories(lines, accepted.run_id)
    # the spawned runs' accepted lines come from the worker, which created them
    worker_lines = [json.loads(line) for line in worker.text().splitlines()
                    if line.startswith("{")]
    assert len(of(worker_lines, "run.accepted")) == 4
