"""Business SLAs on Celery workers: a run a slow ERP holds past its ``within: 2s`` deadline is
claimed late by the worker that finishes it, and the alert flow — run by the workers too —
calls the pager once; sweeps from other processes afterwards announce nothing again.
"""

from __future__ import annotations

import time

import pytest

from engine.sla import SlaWatch
from engine.store.base import RunFilter
from tests.conftest import wait_until
from tests.integration.conftest import STORES, Cluster, Downstream

pytestmark = pytest.mark.integration

ORDERS = """
flow: orders
key: $string(order)
sla:
  within: 2s
  alert: {flow: late-order-handling}
steps:
  - id: erp
    call:
      http: {method: POST, url: "${env:DOWNSTREAM_URL}/erp", json: '{"order": order}'}
"""

ALERT = """
flow: late-order-handling
steps:
  - id: page
    call:
      http: {method: POST, url: "${env:DOWNSTREAM_URL}/late", json: 'sla'}
"""


@pytest.mark.parametrize("cluster", STORES, indirect=True)
def test_a_run_a_slow_erp_held_past_its_deadline_is_announced_once(
        cluster: Cluster, downstream: Downstream) -> None:
    (cluster.flows / "orders.yaml").write_text(ORDERS, encoding="utf-8")
    (cluster.flows / "late-order-handling.yaml").write_text(ALERT, encoding="utf-8")
    cluster.env["DOWNSTREAM_URL"] = downstream.url
    # the first order's booking takes 3 s (the ERP is slow), the second is answered at once
    downstream.hooks["/erp"] = lambda count: time.sleep(3) if count == 1 else None
    workers = [cluster.start_worker("one"), cluster.start_worker("two")]
    app = cluster.app()
    for worker in workers:
        worker.wait_ready()
    slow = app.accept(app.flows.flows["orders"], {"order": 1}).run_id
    wait_until(lambda: downstream.calls("/erp"), what="the slow booking to start")
    quick = app.accept(app.flows.flows["orders"], {"order": 2}).run_id
    for run_id in (slow, quick):
        assert app.wait_for(run_id, timeout=40)[0].status == "succeeded"

    breach = wait_until(lambda: app.store.get_breach(slow), what="the breach")
    assert breach.status == "succeeded" and breach.late_by > 0.5
    assert app.store.get_breach(quick) is None
    alert = wait_until(lambda: downstream.calls("/late"), what="the alert")
    assert [c["body"]["run_id"] for c in alert] == [slow]
    assert breach.alert_run_id is not None
    assert app.wait_for(breach.alert_run_id, timeout=40)[0].status == "succeeded"

    # two sweepers of other processes, an hour on: everything was settled or claimed
    sweepers = [SlaWatch(app.store, app.versions, app.executor, app.metrics,
                         clock=lambda: time.time() + 3600) for _ in range(2)]
    assert [s.sweep() for s in sweepers] == [0, 0]
    assert len(app.store.list_runs(RunFilter(flow="late-order-handling"))) == 1
    assert [b.run_id for b in app.store.list_breaches("orders")] == [slow]
