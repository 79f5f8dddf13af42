"""Concurrency and rate limits hold on the embedded executor and across Celery workers.

Each case runs twice: in this process on the embedded executor, and on real ``celery -A worker
worker`` processes sharing one real redis-server (its slots and buckets). A loopback downstream
records what a partner would see: how many calls are in flight at once, and when each arrived.

The rate check counts the calls in every window between two arrivals against what the bucket
allows, ``burst + per_second × window``. Arrivals trail their tokens by scheduling jitter (a
thread waking, a task crossing the queue), which can bring two calls a little closer than their
tokens were; that jitter, and only that, is allowed for: ``JITTER`` seconds' worth of tokens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from engine.app import App
from engine.dsl.flow import RateLimit
from engine.settings import Settings
from tests.engine.test_limits import over_budget
from tests.integration.conftest import ROOT, Cluster, Downstream, wait_until

pytestmark = pytest.mark.integration

JITTER = {"embedded": 0.1, "celery": 0.3}

LIMITED = """
flow: limited
concurrency: 2
steps:
  - id: send
    call:
      http: {method: POST, url: "${env:DOWNSTREAM_URL}/limited"}
    output: vars.answer
"""

METERED = """
flow: metered
steps:
  - id: shape
    transform: '{"order": order}'
  - id: send
    rate_limit: {name: partner, per_second: 5, burst: 2}
    call:
      http: {method: POST, url: "${env:DOWNSTREAM_URL}/metered"}
    output: vars.answer
"""

FREE = """
flow: free
steps:
  - id: send
    call:
      http: {method: POST, url: "${env:DOWNSTREAM_URL}/free"}
    output: vars.answer
"""


@dataclass
class InFlight:
    """A downstream hook that holds each call a while and records the most held at once."""

    hold: float
    now: int = 0
    most: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, count: int) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(self.hold)
        with self.lock:
            self.now -= 1


@dataclass
class Mode:
    """Starts the flows written to the cluster's folder on one executor."""

    name: str
    cluster: Cluster
    monkeypatch: pytest.MonkeyPatch

    def start(self, downstream: Downstream, *, threads: int = 4,
              workers: tuple[dict[str, object], ...] = ({},)) -> App:
        self.cluster.env["DOWNSTREAM_URL"] = downstream.url
        if self.name == "embedded":
            self.monkeypatch.setenv("DOWNSTREAM_URL", downstream.url)
            app = App(Settings(flows=self.cluster.flows, home=self.cluster.home,
                               schemas=ROOT / "schemas", workers=threads))
            assert app.flows.ok, [str(p) for p in app.flows.problems.errors]
            self.cluster.apps.append(app)  # stopped and closed by the cluster
            app.executor.start(resume=False)
            return app
        started = [self.cluster.start_worker(f"w{i}", **how) for i, how in enumerate(workers)]
        app = self.cluster.app()
        for worker in started:
            worker.wait_ready()
        return app

    def write(self, name: str, text: str) -> None:
        (self.cluster.flows / f"{name}.yaml").write_text(text, encoding="utf-8")


@pytest.fixture(params=["embedded", "celery"])
def mode(request: pytest.FixtureRequest, cluster: Cluster,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Mode]:
    # due runs (rate-limit tokens, woken waiters) leave the due set within 50 ms
    cluster.env["FLOWRUN_CELERY_PUMP_INTERVAL"] = "0.05"
    monkeypatch.setenv("FLOWRUN_CELERY_PUMP_INTERVAL", "0.05")
    yield Mode(request.param, cluster, monkeypatch)


def test_concurrency_limit_keeps_at_most_n_runs_of_a_flow_in_steps(
        mode: Mode, downstream: Downstream) -> None:
    mode.write("limited", LIMITED)
    held = InFlight(hold=0.3)
    downstream.hooks["/limited"] = held
    # more room than the limit: 4 threads, or 2 workers of 2 processes each
    app = mode.start(downstream, threads=4,
                     workers=({"pool": "prefork", "concurrency": 2},) * 2)
    runs = [app.accept(app.flows.flows["limited"], {"order": i}).run_id for i in range(8)]

    states = [app.wait_for(r, timeout=60)[0] for r in runs]
    assert [s.status for s in states] == ["succeeded"] * 8
    assert len(downstream.calls("/limited")) == 8
    assert held.most == 2  # never more than the limit, and the limit was used


def test_rate_limit_holds_for_every_window_and_never_blocks_a_worker(
        mode: Mode, downstream: Downstream) -> None:
    mode.write("metered", METERED)
    mode.write("free", FREE)
    # one embedded thread, or two single-process workers sharing the Redis bucket
    app = mode.start(downstream, threads=1, workers=({}, {}))
    limit = RateLimit(name="partner", per_second=5, burst=2)
    runs = [app.accept(app.flows.flows["metered"], {"order": i}).run_id for i in range(20)]
    wait_until(lambda: len(downstream.calls("/metered")) >= 3, 30, "the first metered calls")
    free = app.accept(app.flows.flows["free"], {"order": "urgent"}).run_id

    # waiting for tokens holds no worker: the free run goes through the metered backlog
    assert app.wait_for(free, timeout=30)[0].status == "succeeded"
    assert len(downstream.calls("/metered")) < 20
    states = [app.wait_for(r, timeout=60)[0] for r in runs]
    assert [s.status for s in states] == ["succeeded"] * 20
    arrivals = [r["at"] for r in downstream.calls("/metered")]
    assert len(arrivals) == 20
    assert over_budget(arrivals, limit, slack=limit.per_second * JITTER[mode.name]) == []
    # 20 calls at 5/s after a burst of 2 take 3.6 s at least: the limit was applied
    assert max(arrivals) - min(arrivals) >= (20 - 2) / 5 - JITTER[mode.name]
    # a wait for a token uses no attempt and is not recorded as a failure
    assert all(s.steps[-1]["attempts"] == 1 for s in states)
