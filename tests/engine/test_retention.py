"""Retention end to end: a flow's retention block, `flowrun prune`, and a steady state.

The store-level rules are held for every backend in tests/engine/store/test_contract.py; here
the parts around them: the policy built from settings and flow files, the command an operator
runs, and runs driven through a real `App` and its embedded executor (or a real Redis) whose
stored history stays bounded while traffic goes on.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from engine.app import App
from engine.records import DeadLetter, RunState
from engine.retention import policy
from engine.settings import Settings
from engine.store.base import Keep, RetentionPolicy, RunFilter
from engine.store.redis import RedisStore
from engine.store.sqlite import SqliteStore
from tests.conftest import ROOT

DAY = 86400.0

ORDERS = """\
flow: orders
key: $string(order)
retention: {runs: 30d, bodies: 2d}
steps:
  - id: remember
    set: {seen: 'true'}
"""

AUDIT = """\
flow: audit
retention: {runs: forever}
steps:
  - id: remember
    set: {seen: 'true'}
"""

PLAIN = """\
flow: plain
steps:
  - id: remember
    set: {seen: 'true'}
"""


def flows_folder(tmp_path: Path, **texts: str) -> Path:
    folder = tmp_path / "flows"
    folder.mkdir(exist_ok=True)
    for name, text in texts.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return folder


def test_a_flows_block_overrides_only_the_keys_it_names(tmp_path: Path) -> None:
    folder = flows_folder(tmp_path, orders=ORDERS, audit=AUDIT, plain=PLAIN)
    settings = Settings(home=tmp_path / "home", flows=folder, retention_runs="10d",
                        retention_dead_letters="45d")
    app = App(settings)
    try:
        got = policy(settings, app.flows)
    finally:
        app.store.close()
    assert got.default == Keep(runs=10 * DAY, bodies=None, dead_letters=45 * DAY)
    assert got.of("orders") == Keep(runs=30 * DAY, bodies=2 * DAY, dead_letters=45 * DAY)
    assert got.of("audit") == Keep(runs=None, bodies=None, dead_letters=45 * DAY)
    assert got.of("plain") == got.of("a-deleted-flow") == got.default


def old_run(run_id: str, flow: str, days_ago: float, status: str = "succeeded") -> RunState:
    at = time.time() - days_ago * DAY
    body = {"order": run_id, "lines": [{"sku": "A-1", "qty": 1}] * 30}
    return RunState(run_id=run_id, flow_id=flow, flow_version="v1",
                    envelope={"body": body, "headers": {}, "vars": {}, "meta": {}},
                    original={"body": body, "headers": {}}, status=status, key=run_id,
                    created_at=at, updated_at=at)


def flowrun(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLOWRUN_")}
    done = subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=120, env={**base, **env})
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def test_flowrun_prune_dry_run_then_for_real_then_one_flow(tmp_path: Path) -> None:
    folder = flows_folder(tmp_path, orders=ORDERS, audit=AUDIT, plain=PLAIN)
    home = tmp_path / "home"
    store = SqliteStore(home / "state.db")
    for i in range(3):
        store.save_run(old_run(f"o-old-{i}", "orders", 40))  # past orders' 30 days
    store.save_run(old_run("o-mid", "orders", 20))  # kept, but its body goes (2d)
    store.save_run(old_run("a-old", "audit", 400))  # audit keeps runs forever
    store.save_run(old_run("p-old", "plain", 15))  # past the default 14 days
    store.save_run(old_run("p-busy", "plain", 15, status="retrying"))
    store.close()
    env = {"FLOWRUN_HOME": str(home), "FLOWRUN_FLOWS": str(folder)}

    dry = flowrun("prune", "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["dry_run"] is True and report["total"] == 5
    assert {(r["flow"], r["kind"]): r["count"] for r in report["removed"]} == {
        ("orders", "runs"): 3, ("orders", "bodies"): 1, ("plain", "runs"): 1}
    store = SqliteStore(home / "state.db")
    assert len(store.list_runs(RunFilter())) == 7
    store.close()

    one = flowrun("prune", "--flow", "plain", env=env)
    assert one.returncode == 0, one.stderr
    assert "plain  runs  1" in one.stdout and "retention removed 1 runs" in one.stdout

    done = flowrun("prune", "--json", env=env)
    report = json.loads(done.stdout)
    assert {(r["flow"], r["kind"]): r["count"] for r in report["removed"]} == {
        ("orders", "runs"): 3, ("orders", "bodies"): 1}
    assert report["bytes_freed"] > 3 * 1000
    store = SqliteStore(home / "state.db")
    try:
        assert sorted(r.run_id for r in store.list_runs(RunFilter())) == [
            "a-old", "o-mid", "p-busy"]
        mid = store.get_run("o-mid")
        assert mid is not None and mid.compacted_at is not None and mid.original == {}
        assert store.count_runs() == {"succeeded": 2, "retrying": 1}
    finally:
        store.close()
    again = flowrun("prune", env=env)
    assert again.returncode == 0 and "retention removed nothing" in again.stdout


def test_flowrun_prune_refuses_bad_settings_in_one_line(tmp_path: Path) -> None:
    done = flowrun("prune", env={"FLOWRUN_HOME": str(tmp_path / "home"),
                                 "FLOWRUN_RETENTION_RUNS": "two weeks"})
    assert done.returncode == 1
    assert "FLOWRUN_RETENTION_RUNS: 'two weeks' is not a retention" in done.stderr


# -- steady state ------------------------------------------------------------------------------
WAVES = 8
PER_WAVE = 150


def test_sqlite_history_stays_bounded_under_constant_traffic(tmp_path: Path) -> None:
    """Waves of runs through the real executor, pruned after each with a one-second retention:
    the record count goes back to zero every time and the state file stops growing once the
    pages freed by the first waves are reused."""
    folder = flows_folder(tmp_path, plain=PLAIN)
    app = App(Settings(home=tmp_path / "home", flows=folder, retention_runs="1s"))
    app.executor.start(resume=False)
    body = {"order": "1001", "lines": [{"sku": f"SKU-{n}", "qty": n} for n in range(60)]}
    sizes: list[int] = []
    try:
        for _ in range(WAVES):
            accepted = [app.accept(app.flows.flows["plain"], body) for _ in range(PER_WAVE)]
            for item in accepted:
                assert [s.status for s in app.wait_for(item.run_id, 30)] == ["succeeded"]
            assert app.store.count_runs() == {"succeeded": PER_WAVE}
            time.sleep(1.05)  # every run of the wave finished over a second ago
            report = app.pruner.prune()
            assert report is not None and report.counts == {("plain", "runs"): PER_WAVE}
            assert app.store.count_runs() == {} and app.store.list_runs(RunFilter()) == []
            sizes.append(sum(p.stat().st_size for p in (tmp_path / "home").glob("state.db*")))
    finally:
        app.executor.stop()
        app.store.close()
    # the first waves grow the file; later waves write into the pages pruning freed. The WAL
    # file (counted in) keeps its high-water mark: the checkpoint size plus the largest write
    # between two checkpoints (a prune transaction), reached within the first waves
    assert max(sizes[3:]) <= max(sizes[:3]) * 1.1, sizes


def redis_keys(client: redis.Redis) -> set[str]:
    return {k.decode() for k in client.scan_iter(count=1000)}


def lifecycle(store: RedisStore, wave: int, n: int, old: float) -> None:
    """*n* runs the way intake and the workers write them: created in a group (with an
    idempotency key), saved running, saved finished; every tenth dead-lettered with its entry,
    which is then discarded; every fifth splits off a child."""
    group = []
    for i in range(n):
        body: dict[str, Any] = {"order": f"{wave}-{i}", "lines": [{"sku": "A"}] * 40}
        state = RunState(run_id=f"w{wave}-{i}", flow_id=f"flow-{i % 3}", flow_version="v1",
                         envelope={"body": body, "headers": {}, "vars": {}, "meta": {}},
                         original={"body": body, "headers": {}}, key=f"k-{wave}-{i}",
                         correlation_id=f"c-{wave}-{i}", created_at=old)
        group.append((state, ("orders", f"d-{wave}-{i}", 0.5)))
    store.create_runs(group)
    for state, _ in group:
        store.begin_delivery(state.run_id, "worker-1", 30)
        state.status = "running"
        store.save_run(state)
        state.updated_at = old
        if state.run_id.endswith("0"):
            state.status = "dead_lettered"
            entry = DeadLetter(id=f"e-{state.run_id}", run_id=state.run_id, flow_id=state.flow_id,
                               flow_version="v1", step="erp", reason={"message": "422"},
                               original=state.original, envelope=state.envelope,
                               created_at=old, key=state.key,
                               correlation_id=state.correlation_id)
            store.save_run(state, dead_letter=entry, delivery="worker-1")
            entry.status = "discarded"
            entry.audit.append({"at": old, "action": "discard"})
            store.update_dead_letter(entry)
        elif state.run_id.endswith("5"):
            state.status = "split"
            child = RunState(run_id=f"{state.run_id}-c", flow_id=state.flow_id,
                             flow_version="v1", envelope={"body": 1, "meta": {}},
                             original={"body": 1}, status="succeeded", created_at=old,
                             updated_at=old, parent_run_id=state.run_id)
            store.save_run(state, children=[child], delivery="worker-1")
        else:
            state.status = "succeeded"
            store.save_run(state, delivery="worker-1")


def test_redis_keeps_no_key_of_a_pruned_run_and_memory_stays_flat(redis_url: str) -> None:
    store = RedisStore(redis_url)
    client = redis.Redis.from_url(redis_url)
    policy = RetentionPolicy(Keep(runs=60.0, bodies=None, dead_letters=60.0))
    old = time.time() - 3600
    memory: list[int] = []
    try:
        lifecycle(store, 0, 50, old)
        store.prune(policy, time.time())
        time.sleep(0.6)  # the idempotency keys (0.5 s) expire by themselves
        baseline = redis_keys(client)
        # what stays is per flow, per status or store-wide — a handful — never per run or entry
        per_record = re.compile(r"w\d+-\d+|[kcd]-\d+-\d+")
        assert not [k for k in baseline if per_record.search(k)], sorted(baseline)
        # the activity counters: per flow, an hour of minutes and a day of hours; they expire
        counters = [k for k in baseline if k.startswith("flowrun:act:")]
        assert len(counters) == 2 * 3, sorted(counters)
        assert len(baseline) - len(counters) <= 10, sorted(baseline)
        for wave in range(1, WAVES + 1):
            lifecycle(store, wave, PER_WAVE, old)
            assert len(redis_keys(client)) > PER_WAVE  # the wave is there, every index of it
            report = store.prune(policy, time.time(), batch=64)
            assert report.counts[("flow-0", "runs")] > 0
            assert sum(n for (_, kind), n in report.counts.items() if kind == "dead_letters") \
                == PER_WAVE // 10
            time.sleep(0.6)
            assert redis_keys(client) == baseline
            assert store.count_runs() == {} and store.count_dead_letters("discarded") == {}
            memory.append(int(client.info("memory")["used_memory"]))
    finally:
        store.close()
        client.close()
    # nothing accumulates: the last waves use no more memory than the second did, give or
    # take the allocator's rounding
    assert max(memory[2:]) <= memory[1] + 256 * 1024, memory


def test_the_flows_in_docs_retention_load_and_mean_what_the_text_says(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "retention.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    for block in blocks:
        name = re.search(r"^flow: (\S+)", block, re.M)
        assert name is not None
        (tmp_path / f"{name.group(1)}.yaml").write_text(block, encoding="utf-8")
    settings = Settings(home=tmp_path / "home", flows=tmp_path)
    app = App(settings)
    try:
        assert app.flows.problems.errors == []
        got = policy(settings, app.flows)
    finally:
        app.store.close()
    assert got.of("retention-example-orders") == Keep(runs=30 * DAY, bodies=2 * DAY,
                                                      dead_letters=90 * DAY)
    assert got.of("retention-example-ledger") == Keep(runs=None, bodies=None, dead_letters=None)
