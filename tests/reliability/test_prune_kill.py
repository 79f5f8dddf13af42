"""Scenario: ``flowrun prune`` SIGKILLed in the middle of a long pass.

A store holds thousands of finished runs past their retention, some dead-lettered with a
discarded entry. `flowrun prune` removes them 40 at a time; once some are gone it is killed.
Whatever the moment, every run and entry left is whole: each index entry has its record, each
record is in all its indexes, an entry's run is there while the entry is, and the counts equal
what is left. The killed prune's lock lapses within its lease (5 s here, FLOWRUN_PRUNE_LEASE),
and a second `flowrun prune` finishes the job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from engine.records import DeadLetter, RunState
from engine.retention import LOCK
from engine.store.base import DeadLetterFilter, RunFilter, Store
from engine.store.redis import RedisStore
from engine.store.sqlite import SqliteStore
from tests.integration.conftest import ROOT
from tests.reliability.conftest import size

FLOWS = ("orders", "invoices")
#: the prune lock's lease (default 30 s): the test waits for a killed prune's to lapse
LEASE = 5.0


def fill(store: Store, runs: int) -> None:
    old = time.time() - 40 * 86400
    body = {"order": "1001", "lines": [{"sku": "A-1", "qty": 2}] * 20}
    group = []
    for i in range(runs):
        state = RunState(run_id=f"r{i:06}", flow_id=FLOWS[i % 2], flow_version="v1",
                         envelope={"body": body, "headers": {}, "vars": {}, "meta": {}},
                         original={"body": body, "headers": {}}, status="succeeded",
                         key=f"k{i}", correlation_id=f"c{i // 3}", created_at=old + i,
                         updated_at=old + i)
        if i % 25 == 0:
            state.status = "dead_lettered"
            entry = DeadLetter(id=f"e{i:06}", run_id=state.run_id, flow_id=state.flow_id,
                               flow_version="v1", step="erp", reason={"message": "422"},
                               original=state.original, envelope=state.envelope,
                               created_at=old + i, key=state.key,
                               correlation_id=state.correlation_id, status="discarded",
                               audit=[{"at": old + i, "action": "discard"}])
            store.save_run(state, dead_letter=entry)
        else:
            group.append((state, None))
        if len(group) == 200:
            store.create_runs(group)
            group = []
    store.create_runs(group)


def environment(env: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLOWRUN_")}
    return {**base, **env, "FLOWRUN_PRUNE_BATCH": "40", "FLOWRUN_PRUNE_LEASE": f"{LEASE:g}"}


def start_prune(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "prune"], cwd=ROOT, text=True,
                            env=environment(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_midway(env: dict[str, str], store: Store, total: int) -> int:
    """Start a prune, SIGKILL it once some runs are gone; how many were left."""
    process = start_prune(env)
    try:
        deadline = time.monotonic() + 120
        while sum(store.count_runs().values()) > total * 0.8:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the prune removed nothing in 2 minutes"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(10)
    left = sum(store.count_runs().values())
    assert 0 < left <= total * 0.8, left
    return left


def whole(store: Store) -> None:
    """Every record left is whole, and the counts are what is left."""
    runs = store.list_runs(RunFilter(limit=10**6))
    by_status = Counter(r.status for r in runs)
    assert store.count_runs() == dict(by_status)
    for flow in FLOWS:
        assert store.count_runs(flow) == dict(Counter(r.status for r in runs if r.flow_id == flow))
    entries = store.list_dead_letters(DeadLetterFilter(status=None, limit=10**6))
    assert store.count_dead_letters("discarded") == dict(Counter(e.flow_id for e in entries))
    ids = {r.run_id for r in runs}
    assert all(e.run_id in ids for e in entries)  # an entry never outlives its run
    sample = runs[:: max(1, len(runs) // 50)]
    for run in sample:  # found through each index it is in
        assert [r.run_id for r in store.list_runs(RunFilter(key=run.key))] == [run.run_id]
        assert run.run_id in {r.run_id for r in store.list_runs(
            RunFilter(correlation_id=run.correlation_id))}


def redis_indexes_whole(url: str) -> None:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        records = {k.removeprefix("flowrun:run:") for k in client.scan_iter("flowrun:run:*")}
        for index in client.scan_iter("flowrun:runs:*"):
            if client.type(index) == "zset":
                members = set(client.zrange(index, 0, -1))
                assert members <= records, (index, sorted(members - records)[:5])
        assert set(client.zrange("flowrun:runs:all", 0, -1)) == records
        entries = {k.removeprefix("flowrun:dl:") for k in client.scan_iter("flowrun:dl:*")}
        for index in client.scan_iter("flowrun:dls:*"):
            if client.type(index) == "zset":
                assert set(client.zrange(index, 0, -1)) <= entries, index
    finally:
        client.close()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_killed_prune_leaves_every_record_whole(backend: str, tmp_path: Path,
                                                  request: pytest.FixtureRequest) -> None:
    total = size(4000, 40000)
    (tmp_path / "flows").mkdir()
    env = {"FLOWRUN_HOME": str(tmp_path / "home"), "FLOWRUN_FLOWS": str(tmp_path / "flows")}
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        env["FLOWRUN_REDIS_URL"] = url
        store: Store = RedisStore(url)
    else:
        store = SqliteStore(tmp_path / "home" / "state.db")
    try:
        fill(store, total)
        assert sum(store.count_runs().values()) == total
        kill_midway(env, store, total)
        whole(store)
        if backend == "redis":
            redis_indexes_whole(url)
        # the killed prune's lease lapses by itself
        deadline = time.monotonic() + LEASE + 10
        while not store.acquire_lock(LOCK, "probe", 0.01):
            assert time.monotonic() < deadline, "the prune lock outlived its lease"
            time.sleep(0.1)
        time.sleep(0.05)
        done = subprocess.run([sys.executable, "-m", "engine.cli", "prune", "--json"], cwd=ROOT,
                              text=True, capture_output=True, timeout=300,
                              env=environment(env))
        assert done.returncode == 0, done.stderr
        assert store.count_runs() == {} and store.list_runs(RunFilter()) == []
        assert store.list_dead_letters(DeadLetterFilter(status=None)) == []
        whole(store)
        if backend == "redis":
            redis_indexes_whole(url)
    finally:
        store.close()
