"""Scenario 6: two ``flowrun scheduler`` processes on one Redis, the active one paused with
SIGSTOP and resumed with SIGCONT — every poll slot fires once.

The poll flow asks a partner stub every second and names its slot in the request
(``{{slot}}``), so the stub's request log says which slots fired and how often. While the active
scheduler is stopped, the stand-by takes over when the lease (1 s) runs out; the paused one,
resumed, finds its slots claimed or past and fires none of them again.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.store.redis import RedisStore
from tests.engine.poll.support import Partner
from tests.reliability.conftest import ROOT, Cluster, report, size, wait_until

pytestmark = pytest.mark.integration

CYCLES = size(1, 5)
PAUSE = size(4, 8)  # seconds the active scheduler stays stopped
FLOW = """
flow: slot-watch
trigger:
  poll:
    every: 1s
    http:
      url: "${env:PARTNER_URL}/acks"
      params: {slot: "{{slot}}", updated_since: "{{cursor}}"}
    items: data
    cursor: {field: updated_at, start: "2026-01-01T00:00:00Z"}
    idempotency_key: id
steps:
  - id: keep
    set: {seen: "true"}
"""


def start_scheduler(cluster: Cluster, name: str) -> subprocess.Popen[bytes]:
    log = (cluster.home / f"{name}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "scheduler", "--flows",
                             str(cluster.flows), "--lease", "1"], cwd=ROOT, env=cluster.env,
                            stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def partner() -> Iterator[Partner]:
    with Partner() as running:
        yield running


def test_paused_scheduler_fires_no_slot_twice(cluster: Cluster, partner: Partner,
                                              tmp_path: Path) -> None:
    (cluster.flows / "slot-watch.yaml").write_text(FLOW, encoding="utf-8")
    cluster.env["PARTNER_URL"] = partner.url
    schedulers = [start_scheduler(cluster, "a"), start_scheduler(cluster, "b")]
    store = RedisStore(cluster.redis_url)

    def slots() -> list[str]:
        return [r["slot"] for r in list(partner.requests)]

    paused_counts = []
    try:
        wait_until(lambda: len(slots()) >= 3, 60, "the first slots to fire")
        for _ in range(CYCLES):
            owner = wait_until(lambda: store.lock_owner("scheduler"), 10, "an active scheduler")
            leader = next(p for p in schedulers if p.pid == int(owner.split(":")[1]))
            leader.send_signal(signal.SIGSTOP)
            before = len(slots())
            time.sleep(PAUSE)
            paused_counts.append(len(slots()) - before)
            leader.send_signal(signal.SIGCONT)
            time.sleep(3)  # the resumed scheduler looks at its slots again
    finally:
        for process in schedulers:
            process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
        for process in schedulers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        store.close()

    fired = Counter(slots())
    report("scheduler-pause", cycles=CYCLES, pause_seconds=PAUSE, slots=len(fired),
           polls=sum(fired.values()), fired_while_paused=paused_counts,
           twice=sum(n > 1 for n in fired.values()))
    assert {slot: n for slot, n in fired.items() if n > 1} == {}
    assert all(n >= 1 for n in paused_counts), "the stand-by did not take over"
    logs = [(cluster.home / f"{name}.log").read_text(errors="replace") for name in "ab"]
    assert all("Traceback" not in text for text in logs)
