"""Every shipped flow with HTTP endpoints, end to end against the real sandbox on loopback.

Each case loads the shipped flow files as they are, starts the sandbox (`engine.sandbox`) and
an `App` on the embedded executor, sends the flow's sample through intake (or lets the
scheduler poll), and checks two things: the final status of the run(s), and the effect the
sandbox saw — the requests it recorded and what its ERP now holds. Nothing of flowrunner is
mocked; the sandbox is a real HTTP server on 127.0.0.1.

The shipped flows that move files over SFTP (``erp-po-to-supplier-850``, ``asn-856-file-drop``,
the 3PL's 940/945 and the supplier's 846) are run end to end by their own tests against the SFTP
sandbox (`ELSEWHERE`);
`test_every_shipped_flow_is_run_end_to_end` fails when a shipped flow is covered by neither.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.x12 import parse
from engine.app import App
from engine.records import RunState
from engine.sandbox import Sandbox, SandboxState
from engine.scheduler import Scheduler
from engine.settings import Settings
from engine.store.base import RunFilter

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "flows"
#: shipped flows whose end-to-end test lives with the SFTP sandbox (test_sftp_flows.py,
#: test_partner_edi_flows.py)
ELSEWHERE = {"erp-po-to-supplier-850", "asn-856-file-drop", "erp-order-to-3pl-940",
             "warehouse-945-shipping-advice", "supplier-846-inventory"}
#: every flow this module runs; loaded together, since flows hand messages to each other
HTTP_FLOWS = ("shopify-order-intake", "marketplace-order-intake", "woocommerce-order-intake",
              "canonical-order-to-erp", "wms-shipment-event", "erp-inventory-fanout",
              "supplier-po-ack-poll", "invoice-810-to-partner", "partner-997-received")


def sample(name: str) -> Any:
    return json.loads((FLOWS / "samples" / name).read_text(encoding="utf-8"))


@dataclass
class World:
    app: App
    sandbox: Sandbox

    def run(self, flow: str, body: Any, headers: dict[str, Any] | None = None) -> list[RunState]:
        """One message through intake, as the webhook server sends it; the run and its spawn."""
        accepted = self.app.accept(self.app.flows.flows[flow], body, headers or {},
                                   trigger="webhook")
        tree = self.app.wait_for(accepted.run_id, timeout=60)
        assert all(s.done for s in tree), [(s.flow_id, s.status, s.steps) for s in tree]
        return tree

    def runs(self, flow: str) -> list[RunState]:
        return self.app.store.list_runs(RunFilter(flow=flow, limit=1000))


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    flows = tmp_path / "flows"
    flows.mkdir()
    for name in HTTP_FLOWS:
        shutil.copy(FLOWS / f"{name}.yaml", flows)
    # one failure of each kind is enough to see retries against a real server
    with Sandbox(state=SandboxState(eu_failures=1, us_rate_limits=1)) as sandbox:
        for name, value in sandbox.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("FLOWRUN_HOME", str(tmp_path / "home"))  # X12 control numbers
        app = App(Settings(home=tmp_path / "home", flows=flows, schemas=ROOT / "schemas"))
        assert app.flows.ok, [str(p) for p in app.flows.problems.errors]
        app.executor.start(resume=False)
        try:
            yield World(app, sandbox)
        finally:
            app.executor.stop()


SCENARIOS: dict[str, Callable[[World], None]] = {}


def scenario(flow: str) -> Callable[[Callable[[World], None]], Callable[[World], None]]:
    def register(fn: Callable[[World], None]) -> Callable[[World], None]:
        SCENARIOS[flow] = fn
        return fn
    return register


def booked(tree: list[RunState], channel: str) -> RunState:
    """The ERP run of a channel order: the channel run handed the canonical order over."""
    assert [(s.flow_id, s.status) for s in tree] == [
        (channel, "handed_off"), ("canonical-order-to-erp", "succeeded")], [
        (s.flow_id, s.status, s.error) for s in tree]
    assert tree[1].correlation_id == tree[0].correlation_id
    return tree[1]


@scenario("shopify-order-intake")
def shopify_order(world: World) -> None:
    order = sample("shopify-order.json")
    run = booked(world.run("shopify-order-intake", order, {"x-shopify-webhook-id": "e2e-1"}),
                 "shopify-order-intake")
    posts = world.sandbox.requests("/erp/eu/sales-orders")
    assert len(posts) == 2  # a 503, then the order: one effect, one Idempotency-Key
    assert len({p["idempotency_key"] for p in posts}) == 1
    assert posts[-1]["body"]["order_id"] == str(order["id"])
    assert posts[-1]["correlation_id"] == run.correlation_id
    assert run.envelope["vars"]["erp_response"]["body"]["erp_order_id"].startswith("SO-")
    assert world.sandbox.requests("/erp/us") == []


@scenario("marketplace-order-intake")
def marketplace_order(world: World) -> None:
    run = booked(world.run("marketplace-order-intake", sample("marketplace-order.json"),
                           {"x-marketplace-event-id": "e2e-2"}), "marketplace-order-intake")
    posts = world.sandbox.requests("/erp/us/sales-orders")
    assert len(posts) == 2  # a 429 with Retry-After, then the order
    assert posts[-1]["body"]["order_id"] == "MKT-2026-448812"
    assert [s["attempts"] for s in run.steps if s["id"] == "erp_us"] == [2]


@scenario("woocommerce-order-intake")
def woocommerce_order(world: World) -> None:
    run = booked(world.run("woocommerce-order-intake", sample("woocommerce-order.json"),
                           {"x-wc-webhook-delivery-id": "e2e-wc"}), "woocommerce-order-intake")
    posts = world.sandbox.requests("/erp/eu/sales-orders")
    assert len(posts) == 2  # a 503, then the order
    order = posts[-1]["body"]
    assert (order["order_id"], order["channel"], order["totals"]["grand_total"]) == (
        "727", "woocommerce", "57.22")
    assert [line["sku"] for line in order["lines"]] == ["PAPER-A4-80G-5", "MUG-WHT"]
    assert _nulls(order) == [] and _nulls(order, bad="") == []
    assert run.key == "727"


@scenario("canonical-order-to-erp")
def canonical_order(world: World) -> None:
    order = sample("canonical-order.json")
    broken = {**order, "order_id": "5890840712243081", "order_number": "10046",
              "lines": [{**order["lines"][0], "sku": "DISCONTINUED-HP-59A"}]}
    (accepted,) = world.run("canonical-order-to-erp", order)
    (rejected,) = world.run("canonical-order-to-erp", broken)
    assert (accepted.status, rejected.status) == ("succeeded", "dead_lettered")
    assert rejected.error is not None and rejected.error["step"] == "erp_eu"
    posts = world.sandbox.requests("/erp/eu/sales-orders")
    # the first order: a 503, then accepted; the second: refused once with 422, not retried
    assert [p["body"]["order_number"] for p in posts] == ["10045", "10045", "10046"]


@scenario("wms-shipment-event")
def wms_shipment(world: World) -> None:
    (run,) = world.run("wms-shipment-event", sample("wms-shipment-event.json"),
                       {"webhook-id": "e2e-3"})
    assert run.status == "succeeded"
    (fulfilment,) = world.sandbox.requests("/channel/shopify/orders/5890840712243080")
    assert fulfilment["body"]["fulfillment"]["tracking_number"] == "00340434161234567891"
    (mail,) = world.sandbox.requests("/crm/notifications")
    assert mail["body"]["to"] == "mara.keller@example.com"
    assert world.sandbox.requests("/channel/marketplace") == []


@scenario("erp-inventory-fanout")
def inventory_fanout(world: World) -> None:
    (run,) = world.run("erp-inventory-fanout", sample("erp-inventory-movement.json"))
    assert run.status == "succeeded"
    (shopify,) = world.sandbox.requests("/channel/shopify/inventory_levels/adjust")
    (marketplace,) = world.sandbox.requests("/channel/marketplace/offers/stock-deltas")
    (b2b,) = world.sandbox.requests("/channel/b2b/stock")
    assert shopify["body"]["adjustments"] == [
        {"sku": "PAPER-A4-80G-5", "available_adjustment": -3},
        {"sku": "TONER-HP-59A", "available_adjustment": -1}]
    assert marketplace["body"]["reference"] == "4900118877"
    assert (b2b["content_type"], b2b["body"]) == ("text/csv",
                                                  "PAPER-A4-80G-5;-3\nTONER-HP-59A;-1\n")


@scenario("supplier-po-ack-poll")
def supplier_po_acks(world: World) -> None:
    now = [(time.time() // 300) * 300 + 1]  # just after a five-minute slot: the poll is due
    scheduler = Scheduler(world.app, clock=lambda: now[0], inline=True, start_executor=False)
    try:
        assert [f.reason for f in scheduler.tick()] == ["slot"]
        pages = world.sandbox.requests("/supplier/po-acks")
        assert len(pages) == 2 and all(p["authorized"] for p in pages)  # 3 acks, 2 a page
        assert pages[0]["query"]["updated_since"] == "2026-01-01T00:00:00Z"
        assert pages[1]["query"]["page"] == "2"
        assert sorted(r.key for r in settled(world, "supplier-po-ack-poll", 3)) == [
            "4500012345", "4500012346", "4500012347"]
        held = world.sandbox.state.purchase_orders
        assert {po: [u["status"] for u in updates] for po, updates in held.items()} == {
            "4500012345": ["confirmed"], "4500012346": ["confirmed"],
            "4500012347": ["rejected"]}
        changed = held["4500012345"][0]["update"]
        assert changed["status"] == "accepted_with_changes"
        assert changed["lines"][0]["quantity"] == "18"
        assert held["4500012347"][0]["update"]["reason"] == "Article discontinued"

        # the supplier changes one acknowledgment; the next poll reads on from the cursor
        ack = next(a for a in world.sandbox.state.po_acks if a["ack_id"] == "ACK-77121")
        ack.update(state="CONFIRMED_WITH_CHANGES", updated_at="2026-11-22T10:02:00Z")
        ack["items"][0].update(confirmed=10, state="CHANGED")
        now[0] += 300
        assert [f.reason for f in scheduler.tick()] == ["slot"]
    finally:
        scheduler.close()
    since = world.sandbox.requests("/supplier/po-acks")[2]["query"]["updated_since"]
    # the cursor (the newest updated_at read) less the two minutes of lookback
    assert datetime.fromisoformat(since) == datetime(2026, 11, 22, 9, 29, 45, tzinfo=UTC)
    runs = settled(world, "supplier-po-ack-poll", 4)  # the unchanged ack re-read: no new run
    assert [r.key for r in runs].count("4500012346") == 2
    assert [u["update"]["status"] for u in held["4500012346"]] == [
        "accepted", "accepted_with_changes"]


def settled(world: World, flow: str, count: int) -> list[RunState]:
    """The flow's runs, once *count* of them exist and all have finished."""
    runs = world.runs(flow)
    assert len(runs) == count, [(r.key, r.status) for r in runs]
    done = [world.app.wait_for(r.run_id, timeout=60)[0] for r in runs]
    assert all(r.status == "succeeded" for r in done), [(r.key, r.status, r.error) for r in done]
    return done


@scenario("invoice-810-to-partner")
def invoice_810(world: World) -> None:
    runs = world.run("invoice-810-to-partner", sample("erp-invoice.json"))
    assert [(r.flow_id, r.status) for r in runs] == [
        ("invoice-810-to-partner", "handed_off"), ("partner-997-received", "succeeded")]
    (delivered,) = world.sandbox.requests("/partner/edi/inbound")
    assert delivered["content_type"] == "application/edi-x12"
    sent = parse(delivered["body"])
    group = sent["groups"][0]
    assert group["transactions"][0]["big"]["invoice_number"] == "90012877"
    assert group["transactions"][0]["tds"] == {"total": "1730.60"}
    (recorded,) = world.sandbox.state.transmissions
    assert recorded["edi"] == delivered["body"]  # recorded what was sent, before sending
    status = world.sandbox.state.invoice_status["90012877"]
    # the 997 was correlated to this very interchange by its group control number
    assert status["status"] == "accepted"
    assert int(status["group_control_number"]) == int(group["control_number"])


@scenario("partner-997-received")
def partner_997(world: World) -> None:
    world.sandbox.state.edi_ack_mode = "async"  # the partner sends its 997s later
    good = sample("erp-invoice.json")
    without_po = copy.deepcopy(good)
    without_po["BillingDocument"] = "90012878"
    del without_po["CustomerPO"]  # the partner's guideline makes BIG04 mandatory
    for invoice in (good, without_po):
        (run,) = world.run("invoice-810-to-partner", invoice)
        assert (run.status, run.steps[-1]["id"]) == ("succeeded", "awaiting_997")
    assert len(world.sandbox.state.outbox) == 2 and world.sandbox.state.invoice_status == {}

    for n, ack in enumerate(world.sandbox.state.outbox):  # the partner posts to the webhook
        (run,) = world.run("partner-997-received", ack, {"message-id": f"997-{n}"})
        assert run.status == "succeeded"
    status = world.sandbox.state.invoice_status
    assert status["90012877"]["status"] == "accepted"
    assert status["90012878"]["status"] == "rejected"
    (rejected_set,) = status["90012878"]["sets"]
    assert rejected_set["codes"] == ["5"]
    assert rejected_set["errors"][0]["segment_id"] == "BIG"
    assert rejected_set["errors"][0]["ak4"][0]["position"] == 4


def _nulls(value: Any, path: str = "$", bad: Any = None) -> list[str]:
    """Paths of the leaves equal to *bad* (null, or "" for a channel that writes that)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nulls(v, f"{path}.{k}", bad)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nulls(v, f"{path}[{i}]", bad)]
    return [path] if value == bad and type(value) is type(bad) else []


def test_real_shopify_payloads_reach_the_erp_with_exact_ids_and_no_nulls(world: World) -> None:
    """Shopify's own shapes (null for every empty field, ids beyond 2^53) through intake, the
    store, the runner and a real HTTP call: the ERP receives each order, every id digit for
    digit, and no null."""
    sent = {}
    for name, patch in (("shopify-test-notification.json", {"financial_status": "paid"}),
                        ("shopify-order-us-discount.json", {}),
                        ("shopify-order-digital.json", {})):
        raw = (FLOWS / "samples" / name).read_text(encoding="utf-8")
        order = {**json.loads(raw), **patch}  # as the webhook server reads the body
        booked(world.run("shopify-order-intake", order, {"x-shopify-webhook-id": name}),
               "shopify-order-intake")
        sent[str(order["id"])] = [str(line["id"]) for line in order["line_items"]]
    assert "820982911946154508" in sent and "5901234567890123456" in sent
    received = {p["body"]["order_id"]: p["body"]
                for p in world.sandbox.requests("/erp/") if p["path"].endswith("/sales-orders")}
    assert set(received) == set(sent)
    for order_id, body in received.items():
        assert [line["line_id"] for line in body["lines"]] == sent[order_id]
        assert _nulls(body) == []
    assert received["820982911946154508"]["customer"]["id"] == "115310627314723954"
    assert "shipping_address" not in received["5901234567890123456"]


@pytest.mark.parametrize("flow", sorted(SCENARIOS))
def test_shipped_flow_end_to_end(flow: str, world: World) -> None:
    SCENARIOS[flow](world)


def shipped_flow_files() -> list[Path]:
    """The flow files the project ships: those git tracks in a checkout, so that a flow of the
    user's own (the tutorial's hello-orders.yaml) is not taken for a shipped one; every file
    where there is no git."""
    files = [p for p in FLOWS.glob("*.yaml") if not p.name.endswith(".test.yaml")]
    try:
        listed = subprocess.run(["git", "ls-files", "--", "*.yaml"], cwd=FLOWS,
                                capture_output=True, text=True, timeout=30)
    except OSError:
        return files
    tracked = set(listed.stdout.split()) if listed.returncode == 0 else set()
    return [p for p in files if p.name in tracked] if tracked else files


def test_every_shipped_flow_is_run_end_to_end() -> None:
    shipped = {p.name.removesuffix(".yaml") for p in shipped_flow_files()}
    assert set(HTTP_FLOWS) == set(SCENARIOS)
    uncovered = shipped - set(SCENARIOS) - ELSEWHERE
    assert not uncovered, f"shipped flows without an end-to-end test: {sorted(uncovered)}"


def test_flowrun_demo_runs_the_shipped_flows_against_the_sandbox(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "engine.cli", "demo", "--flows", str(FLOWS),
                           "--home", str(tmp_path / "demo")], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    table = lines[lines.index("Runs") + 2:]
    rows = [line.split() for line in table[:table.index("")]]
    assert [(row[0], row[2], row[3]) for row in rows] == [
        ("canonical-order-to-erp", "handoff", "succeeded"),
        ("canonical-order-to-erp", "handoff", "succeeded"),
        ("canonical-order-to-erp", "handoff", "dead_lettered"),
        ("canonical-order-to-erp", "replay", "succeeded"),
        *[("supplier-po-ack-poll", "poll", "succeeded")] * 3,
        ("invoice-810-to-partner", "webhook", "handed_off"),
        ("partner-997-received", "handoff", "succeeded")]
    assert "997 accepted for group 1, matched to the 810 sent: True" in done.stdout
    # the story and the records agree: the EU ERP's two 503s are the first order's, the
    # rejected order meets only its 422
    assert "canonical-order-to-erp 10045: the ERP answered 503, 503, 201; succeeded" \
        in done.stdout
    assert "canonical-order-to-erp MKT-2026-448812: the ERP answered 429, 201; succeeded" \
        in done.stdout
    assert "canonical-order-to-erp 10046: the ERP answered 422; dead_lettered" in done.stdout
    attempts = {(row[0], row[1], row[2]): int(row[5]) for row in rows}
    # the ERP flow's four steps each; its call took three attempts for 10045, one for 10046
    assert attempts[("canonical-order-to-erp", "10045", "handoff")] == 6
    assert attempts[("canonical-order-to-erp", "10046", "handoff")] == 4
