"""The shipped flows give the same results on Celery workers as on the embedded executor.

The demo's scenario (an ERP that fails twice, a duplicate webhook, a 429 with Retry-After, an
order the ERP rejects, its fix and replay) runs twice, each against its own sandbox: once in this
process on the embedded default, once through real ``celery -A worker worker`` processes with
state in a real redis-server. Run records, dead letters, replay audit and downstream effects
must match.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from engine.app import App
from engine.executor import EmbeddedExecutor
from engine.sandbox import Sandbox
from engine.settings import Settings
from engine.store.base import DeadLetterFilter
from tests.integration.conftest import ROOT, STORES, Cluster, wait_until

pytestmark = pytest.mark.integration


def scenario(app: App, sandbox: Sandbox) -> dict[str, Any]:
    samples = ROOT / "flows" / "samples"
    shopify = json.loads((samples / "shopify-order.json").read_text())
    marketplace = json.loads((samples / "marketplace-order.json").read_text())
    flows = app.flows.flows
    delivery = {"x-shopify-webhook-id": "delivery-1", "x-shopify-topic": "orders/create"}
    first = app.accept(flows["shopify-order-intake"], shopify, delivery, trigger="webhook")
    again = app.accept(flows["shopify-order-intake"], shopify, delivery, trigger="webhook")
    second = app.accept(flows["marketplace-order-intake"], marketplace,
                        {"x-marketplace-event-id": "evt-1"}, trigger="webhook")
    broken = copy.deepcopy(shopify)
    broken["id"], broken["order_number"] = broken["id"] + 1, broken["order_number"] + 1
    broken["line_items"][1]["sku"] = "DISCONTINUED-HP-59A"
    third = app.accept(flows["shopify-order-intake"], broken,
                       {"x-shopify-webhook-id": "delivery-2"}, trigger="webhook")
    # each channel run hands its canonical order to canonical-order-to-erp: compare both
    trees = [app.wait_for(a.run_id, timeout=40) for a in (first, second, third)]
    runs = [s for tree in trees for s in tree]
    assert all(s.done for s in runs), [(s.flow_id, s.status, s.steps) for s in runs]

    entries = app.store.list_dead_letters(DeadLetterFilter(flow="canonical-order-to-erp"))
    assert len(entries) == 1
    fixed = copy.deepcopy(entries[0].envelope["body"])
    for line in fixed["lines"]:
        if line["sku"].startswith("DISCONTINUED"):
            line["sku"] = "TONER-HP-59X"
    replay = app.replay(entries[0].id, start_from="failed-step", body=fixed, edited=True,
                        who="test")
    replayed = app.wait_for(replay.run_id, timeout=30)[0]

    def entry_settled() -> bool:
        entry = app.store.get_dead_letter(entries[0].id)
        return entry is not None and entry.status != "replaying"

    wait_until(entry_settled, 10, "the replay to be recorded on the dead-letter entry")
    entry = app.store.get_dead_letter(entries[0].id)
    assert entry is not None
    return {
        "duplicate": (again.duplicate, again.run_id == first.run_id),
        "runs": [summary(s, sandbox) for s in (*runs, replayed)],
        "dead_letter": (entry.step, entry.status, [a["action"] for a in entry.audit],
                        entry.audit[-1].get("result")),
        "effects": len(sandbox.state.effects),
        "requests": sorted((r["path"], r["idempotency_key"] is not None)
                           for r in sandbox.state.requests),
        "runs_recorded": sum(app.store.count_runs().values()),
    }


def summary(state: Any, sandbox: Sandbox) -> dict[str, Any]:
    body = state.envelope["body"]
    response = state.envelope["vars"].get("erp_response") or {}
    # the ERP's answer without what differs per server: its Date header and the order number
    # each sandbox hands out in arrival order
    answer = dict(response.get("body") or {})
    answer.pop("erp_order_id", None)
    erp = {"status": response.get("status"), "body": answer}
    return {"flow": state.flow_id, "key": state.key, "trigger": state.trigger,
            "status": state.status,
            "error": str((state.error or {}).get("message")).replace(sandbox.url, "SANDBOX"),
            "steps": [(s["id"], s["status"], s["attempts"]) for s in state.steps],
            # what the worker recorded of each step's output (engine/step_snapshots): a new
            # body held by the envelope, no change, or a snapshot and where it went
            "outputs": [_output_kind(s.get("output")) for s in state.steps],
            "body": body, "erp": erp}


def _output_kind(output: dict[str, Any] | None) -> str | None:
    if output is None:
        return None
    if output.get("ref") or output.get("unchanged"):
        return "ref" if output.get("ref") else "unchanged"
    assert output["json"] and output["size"] > 0
    return f"snapshot to {output['to']}"


@pytest.mark.parametrize("cluster", STORES, indirect=True)
def test_shipped_flows_same_results_on_celery_as_embedded(
        cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for flow in (ROOT / "flows").glob("*.yaml"):
        shutil.copy(flow, cluster.flows / flow.name)
    # the SFTP flows name connections/supplier_nordic_sftp.yaml, found above the flows folder
    shutil.copytree(ROOT / "connections", cluster.flows.parent / "connections",
                    dirs_exist_ok=True)

    with Sandbox() as remote, Sandbox() as local:
        cluster.env.update(remote.env())
        for name in ("one", "two"):
            cluster.start_worker(name)
        for name, value in local.env().items():
            monkeypatch.setenv(name, value)
        embedded = App(Settings(home=tmp_path / "embedded", flows=cluster.flows,
                                schemas=ROOT / "schemas"))
        assert isinstance(embedded.executor, EmbeddedExecutor)
        embedded.executor.start(resume=False)
        try:
            expected = scenario(embedded, local)
        finally:
            embedded.executor.stop()

        for worker in cluster.workers:
            worker.wait_ready()
        distributed = cluster.app()
        got = scenario(distributed, remote)

    assert [(r["flow"], r["status"]) for r in expected["runs"]] == [
        ("shopify-order-intake", "handed_off"), ("canonical-order-to-erp", "succeeded"),
        ("marketplace-order-intake", "handed_off"), ("canonical-order-to-erp", "succeeded"),
        ("shopify-order-intake", "handed_off"), ("canonical-order-to-erp", "dead_lettered"),
        ("canonical-order-to-erp", "succeeded")]
    assert got == expected
    kinds = {k for r in got["runs"] for k in r["outputs"]}
    assert {"ref", "unchanged", "snapshot to vars.erp_response"} <= kinds, kinds
