"""Workers that die or stop lose nothing and do nothing twice.

A worker killed with SIGKILL in the middle of a call: its task is delivered again (visibility
timeout), another worker resumes the run from its last checkpoint, and the downstream — which
honours Idempotency-Key — sees each effect once. A worker stopped with SIGTERM finishes the run
in hand, gives back the rest, and another worker completes them.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest

from engine.store.redis import RedisStore
from tests.integration.conftest import STORES, Cluster, Downstream, wait_until

pytestmark = pytest.mark.integration

THREE_CALLS = """
flow: three-calls
steps:
  - id: first
    call:
      http: {method: POST, url: "${env:DOWNSTREAM_URL}/a"}
    output: vars.a
  - id: second
    call:
      http: {method: POST, url: "${env:DOWNSTREAM_URL}/b"}
    output: vars.b
  - id: third
    call:
      http: {method: POST, url: "${env:DOWNSTREAM_URL}/c"}
    output: vars.c
"""

SLOW = """
flow: slow
steps:
  - id: send
    call:
      http: {method: POST, url: "${env:DOWNSTREAM_URL}/slow"}
    output: vars.answer
"""


def write_flow(cluster: Cluster, name: str, text: str) -> None:
    (cluster.flows / f"{name}.yaml").write_text(text, encoding="utf-8")


@pytest.mark.parametrize("cluster", STORES, indirect=True)
def test_sigkill_mid_run_completes_on_another_worker_with_each_effect_once(
        cluster: Cluster, downstream: Downstream) -> None:
    write_flow(cluster, "three-calls", THREE_CALLS)
    cluster.env["DOWNSTREAM_URL"] = downstream.url
    started, release = threading.Event(), threading.Event()

    def block_first(count: int) -> None:
        if count == 1:  # the first /b is received, then never answered: its worker dies
            started.set()
            release.wait(30)

    downstream.hooks["/b"] = block_first
    workers = [cluster.start_worker("one"), cluster.start_worker("two")]
    app = cluster.app()  # loads flows while the workers start
    for worker in workers:
        worker.wait_ready()
    accepted = app.accept(app.flows.flows["three-calls"], {"order": 1})

    assert started.wait(30), "no worker called /b"
    assert isinstance(app.store, RedisStore)
    owner = wait_until(lambda: app.store.lock_owner(f"run:{accepted.run_id}"), 10, "the lease")
    pid = int(owner.split(":")[1])
    victim = next(w for w in workers if w.pid == pid)
    survivor = next(w for w in workers if w is not victim)
    victim.kill(signal.SIGKILL)
    victim.process.wait(10)
    release.set()

    state = app.wait_for(accepted.run_id, timeout=40)[0]
    assert state.status == "succeeded", state.error
    assert victim.process.returncode == -signal.SIGKILL
    # /a was checkpointed before the kill: not called again; /b was, with the same key
    assert len(downstream.calls("/a")) == 1
    b_keys = [r["key"] for r in downstream.calls("/b")]
    assert len(b_keys) == 2 and b_keys[0] == b_keys[1]
    assert len(downstream.calls("/c")) == 1
    assert sorted(downstream.effects.values()) == [1, 1, 1]
    assert state.envelope["vars"]["b"]["body"] == downstream.answers[b_keys[0]]
    # the run was recorded before the task was acknowledged; the log line follows shortly
    wait_until(lambda: "'succeeded'" in survivor.text(), 10, "the survivor to log the run")


@pytest.mark.parametrize("cluster", STORES, indirect=True)
def test_sigterm_finishes_the_run_in_hand_and_loses_none(
        cluster: Cluster, downstream: Downstream) -> None:
    write_flow(cluster, "slow", SLOW)
    cluster.env["DOWNSTREAM_URL"] = downstream.url
    first = threading.Event()

    def slow(count: int) -> None:
        first.set()
        threading.Event().wait(0.4)  # a call that takes a while: SIGTERM arrives during one

    downstream.hooks["/slow"] = slow
    stopping = cluster.start_worker("stopping", pool="prefork", concurrency=2)
    app = cluster.app()
    stopping.wait_ready()
    runs = [app.accept(app.flows.flows["slow"], {"order": i}).run_id for i in range(8)]

    assert first.wait(30)
    stopping.kill(signal.SIGTERM)
    assert stopping.process.wait(30) == 0  # warm shutdown: runs in hand finished first
    done_before = [r for r in runs if (s := app.store.get_run(r)) is not None and s.done]
    assert 1 <= len(done_before) < len(runs)

    cluster.start_worker("taking-over").wait_ready()
    states = [app.wait_for(r, timeout=40)[0] for r in runs]
    assert [s.status for s in states] == ["succeeded"] * len(runs)
    keys = [r["key"] for r in downstream.calls("/slow")]
    assert len(keys) == len(runs) == len(set(keys))  # no run's call was made twice
    assert sorted(downstream.effects.values()) == [1] * len(runs)


def test_worker_without_redis_url_refuses_to_start(cluster: Cluster, tmp_path: Path) -> None:
    cluster.env.pop("FLOWRUN_REDIS_URL")
    worker = cluster.start_worker("misconfigured")
    assert worker.process.wait(30) != 0
    assert "FLOWRUN_REDIS_URL is not set" in worker.text()
