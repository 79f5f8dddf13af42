"""Lanes: bulk traffic cannot starve a priority flow.

A flow's ``queue:`` names its lane, and each lane is its own Celery queue (``flowrun.<lane>``).
With the bulk lane's queue full — 30 runs of a flow whose call takes 0.2 s, six seconds of work
— a priority run accepted afterwards completes long before the bulk backlog drains: a worker
serving both lanes takes from each queue in turn, and a worker per lane is never in the way.
In one queue the priority run would wait behind all 30.
"""

from __future__ import annotations

import sys
import time

import pytest

from engine.app import App
from tests.integration.conftest import Cluster, Downstream, Worker, wait_until

pytestmark = pytest.mark.integration

BULK = """
flow: catalog-sync
queue: bulk
steps:
  - id: send
    call:
      http: {method: POST, url: "${env:DOWNSTREAM_URL}/bulk"}
    output: vars.answer
"""

PRIORITY = """
flow: rush-order
queue: priority
steps:
  - id: send
    call:
      http: {method: POST, url: "${env:DOWNSTREAM_URL}/priority"}
    output: vars.answer
"""

BACKLOG = 30


def flowrun_worker(cluster: Cluster, name: str, *options: str) -> Worker:
    return cluster.start_worker(name, command=[
        sys.executable, "-m", "engine.cli", "worker", "--pool", "solo", "--name", f"{name}@%h",
        *options])


def setup(cluster: Cluster, downstream: Downstream) -> None:
    (cluster.flows / "catalog-sync.yaml").write_text(BULK, encoding="utf-8")
    (cluster.flows / "rush-order.yaml").write_text(PRIORITY, encoding="utf-8")
    cluster.env["DOWNSTREAM_URL"] = downstream.url
    downstream.hooks["/bulk"] = lambda count: time.sleep(0.2)


def rush_through_backlog(app: App, downstream: Downstream) -> int:
    """Fill the bulk lane, then send one priority run; bulk calls made by the time it is done."""
    bulk = [app.accept(app.flows.flows["catalog-sync"], {"sku": i}).run_id
            for i in range(BACKLOG)]
    wait_until(lambda: downstream.calls("/bulk"), 30, "the bulk lane to be worked on")
    rush = app.accept(app.flows.flows["rush-order"], {"order": "rush"}).run_id
    state = app.wait_for(rush, timeout=30)[0]
    assert state.status == "succeeded", state.error
    done_meanwhile = len(downstream.calls("/bulk"))
    states = [app.wait_for(r, timeout=60)[0] for r in bulk]
    assert [s.status for s in states] == ["succeeded"] * BACKLOG
    return done_meanwhile


def test_one_worker_serving_both_lanes_takes_the_priority_run_ahead_of_the_backlog(
        cluster: Cluster, downstream: Downstream) -> None:
    setup(cluster, downstream)
    # no --lanes: the worker serves every lane the loaded flows use
    worker = flowrun_worker(cluster, "both")
    app = cluster.app()
    worker.wait_ready()
    assert "flowrun.bulk" in worker.text() and "flowrun.priority" in worker.text()
    assert rush_through_backlog(app, downstream) <= BACKLOG // 3


def test_a_worker_per_lane_serves_priority_while_bulk_is_full(
        cluster: Cluster, downstream: Downstream) -> None:
    setup(cluster, downstream)
    bulk = flowrun_worker(cluster, "bulk", "--lanes", "bulk")
    rush = flowrun_worker(cluster, "rush", "--lanes", "priority")
    app = cluster.app()
    bulk.wait_ready()
    rush.wait_ready()
    assert rush_through_backlog(app, downstream) <= BACKLOG // 3
    assert "flowrun.priority" not in bulk.text()  # the bulk worker does not consume it
