"""Replays on Celery workers: a replay that fails again settles on the entry it replays.

A real worker on a real redis-server runs the flow and its replays; the ERP on loopback refuses
the article every time. Replays come from the producer's App, from `flowrun dlq replay ID` and
from `flowrun dlq replay --all-matching` (processes of their own, on the same Redis): one open
entry with every attempt on its audit, counted once in Redis and in ``flowrun_dlq_depth`` of
the server (`flowrun serve`'s app, on the same Redis) over HTTP; the downstream acted on no
replay (each was refused).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from engine.store.base import DeadLetterFilter
from tests.integration.conftest import ROOT, Cluster, Downstream

sys.path.insert(0, str(ROOT / "tests" / "engine"))

from test_server_harness import serving

pytestmark = pytest.mark.integration

FLOW = """\
flow: erp
key: $string(order)
steps:
  - id: book
    call:
      http: {{method: POST, url: "{url}/erp"}}
    retry: {{max_attempts: 1}}
"""


def depth(url: str) -> float | None:
    text = requests.get(f"{url}/metrics", timeout=5).text
    return next((s.value for family in text_string_to_metric_families(text)
                 for s in family.samples
                 if s.name == "flowrun_dlq_depth" and s.labels.get("flow") == "erp"), None)


def test_replays_that_fail_again_on_a_worker_stay_one_entry(cluster: Cluster,
                                                            downstream: Downstream) -> None:
    (cluster.flows / "erp.yaml").write_text(FLOW.format(url=downstream.url), encoding="utf-8")
    downstream.hooks["/erp"] = lambda n: 422  # DISCONTINUED-HP-59A, every time
    worker = cluster.start_worker("dlq")
    worker.wait_ready()
    app = cluster.app()

    accepted = app.accept(app.flows.flows["erp"], {"order": 59})
    assert app.wait_for(accepted.run_id, timeout=30)[0].status == "dead_lettered"
    entry, = app.store.list_dead_letters(DeadLetterFilter(status=None))
    for _ in range(2):
        replay = app.replay(entry.id)
        assert app.wait_for(replay.run_id, timeout=30)[0].status == "dead_lettered"

    def flowrun(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT,
                              env=cluster.env,
                              capture_output=True, text=True, timeout=120)

    one = flowrun("dlq", "replay", entry.id)
    assert one.returncode == 1 and "1 entry, 1 not replayed successfully" in one.stderr
    bulk = flowrun("dlq", "replay", "--all-matching", "--flow", "erp")
    assert bulk.returncode == 1 and "1 entry, 1 not replayed successfully" in bulk.stderr

    everything = app.store.list_dead_letters(DeadLetterFilter(status=None))
    assert [e.id for e in everything] == [entry.id]
    settled = everything[0]
    assert settled.status == "open"
    replays = [a for a in settled.audit if a["action"] == "replay"]
    assert len(replays) == 4
    assert all(a["result"] == "dead_lettered" and a["error"]["status"] == 422 for a in replays)
    assert app.store.count_dead_letters() == {"erp": 1}
    assert app.store.count_dead_letters("replaying") == {}
    with serving(app, executor=False) as server:
        assert depth(server.url) == 1
    listed = flowrun("dlq", "list")
    assert listed.stdout.count(entry.id) == 1 and len(listed.stdout.splitlines()) == 2
    # the ERP refused every call: nothing was applied, once or twice
    assert downstream.effects == {} and len(downstream.calls("/erp")) == 5

