"""Scenario 3: a flapping downstream — every message is delivered or dead-lettered with its
reason, and after the downstream recovers one bulk replay delivers the rest, each once.

Each message has its own script of answers, one per attempt, drawn at random: 503 (half of
them), a timeout (the stub applies the effect but answers after the call's read timeout),
a slow answer within the timeout, or a plain success. A few scripts are fixed so the hard cases
always occur: a message whose last attempt timed out after the effect was applied (replaying it
must not apply it again), and messages that never got through. Two workers run the flow; then
``flowrun dlq replay --all-matching`` (a real subprocess) replays the dead letters once the
downstream answers normally again.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from tests.reliability.conftest import (
    ROOT,
    Cluster,
    Downstream,
    Ledger,
    dead_letters,
    report,
    seeded,
    settle,
    size,
    start_cluster,
    use_reference_flow,
)

pytestmark = pytest.mark.integration

MESSAGES = size(60, 600)
ATTEMPTS = 3
FLOW = f"""
flow: flaky-deliveries
key: $string(message)
defaults:
  retry:
    max_attempts: {ATTEMPTS}
    backoff: {{initial: 100ms, multiplier: 2, max: 400ms}}
    retry_on: {{http_status: [5xx], errors: [timeout, connection]}}
  on_failure: dead_letter
steps:
  - id: shape
    transform: '{{"message": message}}'
  - id: deliver
    call:
      http:
        method: POST
        url: "${{env:DOWNSTREAM_URL}}/flaky/{{{{ message }}}}"
        timeout: {{connect: 2s, read: 500ms}}
    output: vars.receipt
"""
FIXED = [["503", "503", "timeout"]] * 3 + [["503"] * 3] * 2 + [["timeout"] * 3] * 2
WEIGHTS = {"503": 50, "timeout": 15, "slow": 15, "ok": 20}


def behaviour(script: list[str]) -> Callable[[int], int | None]:
    """The stub's answer to the n-th request for one message: a status, or None to apply."""
    def answer(count: int) -> int | None:
        what = script[min(count, len(script)) - 1]
        if what == "503":
            return 503
        if what in ("timeout", "slow"):
            time.sleep(1.0 if what == "timeout" else 0.2)  # read timeout is 0.5 s
        return None
    return answer


def test_flapping_downstream_then_bulk_replay_delivers_each_message_once(
        cluster: Cluster, downstream: Downstream, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = seeded("downstream-flapping")
    use_reference_flow(cluster, downstream, monkeypatch, FLOW, "flaky-deliveries")
    names = [f"m-{n:06d}" for n in range(MESSAGES)]
    scripts = {name: FIXED[n] if n < len(FIXED) else
               rng.choices(list(WEIGHTS), list(WEIGHTS.values()), k=ATTEMPTS)
               for n, name in enumerate(names)}
    for name, script in scripts.items():
        downstream.hooks[f"/flaky/{name}"] = behaviour(script)
    app, _ = start_cluster(cluster)
    flow = app.flows.flows["flaky-deliveries"]
    began = time.monotonic()
    runs = {app.accept(flow, {"message": name}).run_id: name for name in names}

    def ended() -> bool:
        counts = app.store.count_runs("flaky-deliveries")
        return counts.get("succeeded", 0) + counts.get("dead_lettered", 0) >= MESSAGES
    settle(ended, 60 + MESSAGES * 2)
    first_pass = time.monotonic() - began
    states = {runs[r]: app.store.get_run(r) for r in runs}
    outcome = {name: s.status if s else "missing" for name, s in states.items()}
    entries = dead_letters(app.store, "flaky-deliveries")
    reasons = {str(e.key): (e.reason.get("kind"), e.reason.get("status")) for e in entries}

    downstream.hooks.clear()  # the downstream recovered
    began = time.monotonic()
    replay = subprocess.run([sys.executable, "-m", "engine.cli", "dlq", "replay",
                             "--all-matching", "--flow", "flaky-deliveries"],
                            cwd=ROOT, env=cluster.env, capture_output=True, text=True,
                            timeout=120 + MESSAGES)
    replay_seconds = time.monotonic() - began
    ledger = Ledger.of(downstream, "/flaky/")
    dead = sorted(n for n, s in outcome.items() if s == "dead_lettered")
    report("downstream-flapping", messages=MESSAGES, delivered_first_pass=sum(
        s == "succeeded" for s in outcome.values()), dead_lettered=len(dead),
        replayed_ok=replay.stdout.count(" succeeded"), requests=ledger.requests,
        effects=ledger.effects, missing=len(ledger.missing(set(names))),
        doubled=len(ledger.doubled()), first_pass_seconds=round(first_pass, 1),
        replay_seconds=round(replay_seconds, 1))

    assert {s for s in outcome.values()} <= {"succeeded", "dead_lettered"}, outcome
    assert sorted(reasons) == dead  # one entry per dead-lettered message, none for the others
    for name, (kind, status) in reasons.items():
        assert (kind, status) in (("http", 503), ("timeout", None)), (name, kind, status)
    assert {"m-000000", "m-000003"} <= set(dead)  # the fixed hard cases did fail
    assert replay.returncode == 0, replay.stderr[-3000:]
    assert "Traceback" not in replay.stderr
    assert ledger.missing(set(names)) == set()
    assert ledger.doubled() == {}  # a replay never applies an effect a second time
    assert ledger.effects == MESSAGES
