"""Scenario 1: workers SIGKILLed at random moments lose no message and apply no effect twice.

Messages go through the reference flow (App.accept → transform → call to the downstream stub)
on two Celery worker processes. A chaos thread kills a random worker with SIGKILL at random
moments — often in the middle of a call, since the stub answers after a short random delay —
and starts a replacement, so two workers are always (re)starting or running. In the end every
accepted message succeeded, its effect reached the stub under exactly one Idempotency-Key, and
the dead-letter queue is empty.
"""

from __future__ import annotations

import random
import signal
import threading
import time

import pytest

from tests.integration.conftest import Worker
from tests.reliability.conftest import (
    Cluster,
    Downstream,
    Ledger,
    dead_letters,
    finish,
    message,
    report,
    seeded,
    size,
    start_cluster,
    use_reference_flow,
)

pytestmark = pytest.mark.integration

MESSAGES = size(200, 2000)
KILLS = size(25, 150)  # then the workers are left alone and must finish everything


class Chaos:
    """Kills a random ready worker every 0.3–1.5 s and starts a new one in its place, until
    KILLS workers were killed."""

    def __init__(self, cluster: Cluster, rng: random.Random):
        self.cluster, self.rng = cluster, rng
        self.kills = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def live(self) -> list[Worker]:
        return [w for w in self.cluster.workers if w.process.poll() is None]

    def _run(self) -> None:
        rng = self.rng
        while self.kills < KILLS and not self.stop.wait(rng.uniform(0.3, 1.5)):
            ready = [w for w in self.live() if " ready." in w.text()]
            if not ready:  # killing a worker that is still starting tests nothing
                continue
            victim = rng.choice(ready)
            victim.kill(signal.SIGKILL)
            victim.process.wait(10)
            self.kills += 1
            self.cluster.start_worker(f"w{len(self.cluster.workers) + 1}")


def test_sigkilled_workers_lose_nothing_and_double_nothing(
        cluster: Cluster, downstream: Downstream, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = seeded("worker-kills")
    use_reference_flow(cluster, downstream, monkeypatch)
    # the stuck-run sweep, like the visibility timeout, is tuned short for the test
    cluster.env["FLOWRUN_CELERY_REAP_INTERVAL"] = "2"

    def jitter(count: int) -> None:  # answers take a moment, so kills land mid-call
        time.sleep(rng.uniform(0, 0.02))

    downstream.hooks["/orders"] = jitter
    app, _ = start_cluster(cluster)
    flow = app.flows.flows["reference-orders"]
    chaos = Chaos(cluster, rng)
    started = time.monotonic()
    chaos.thread.start()
    try:
        accepted = {app.accept(flow, message(n)).run_id: f"m-{n:06d}" for n in range(MESSAGES)}
        stranded = finish(app, "reference-orders", MESSAGES, 120 + MESSAGES * 0.5,
                          busy=chaos.thread.is_alive)
    finally:
        chaos.stop.set()
        chaos.thread.join(30)
    elapsed = time.monotonic() - started

    statuses = {run_id: app.store.get_run(run_id) for run_id in accepted}
    failed = {r: s.status if s else "missing" for r, s in statuses.items()
              if s is None or s.status != "succeeded"}
    ledger = Ledger.of(downstream, "/orders")
    expected = set(accepted.values())
    report("worker-kills", messages=MESSAGES, kills=chaos.kills, stranded=stranded,
        workers_started=len(cluster.workers), requests=ledger.requests, effects=ledger.effects,
        missing=len(ledger.missing(expected)), doubled=len(ledger.doubled()),
        dead_letters=len(dead_letters(app.store, "reference-orders")), seconds=round(elapsed, 1))
    assert chaos.kills >= 1, "no worker was killed: the scenario proved nothing"
    assert stranded == [], "runs left queued by a lost task were not queued again by the sweep"
    assert failed == {}, {s.key: (s.status, s.position, s.error) for s in statuses.values()
                          if s is not None and s.run_id in failed}
    assert ledger.missing(expected) == set()
    assert ledger.doubled() == {}
    assert ledger.unexpected(expected) == set()
    assert ledger.effects == MESSAGES
    assert dead_letters(app.store, "reference-orders") == []
