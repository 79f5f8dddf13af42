"""The shipped 3PL and supplier-inventory flows end to end: the SFTP sandbox plays the 3PL's
and the supplier's SFTP servers, a loopback HTTP server the ERP and the sales channels.

``erp-order-to-3pl-940``, ``warehouse-945-shipping-advice`` and ``supplier-846-inventory`` are
loaded as shipped, with the shipped connection files; an `App` runs them on the embedded
executor. A delivery goes in through intake and comes out as a 940 on the 3PL's server; the
3PL's 945 and the supplier's 846 are dropped in their folders and found by the scheduler. The
checks are the effects: the files on the server, the 997, the archive, the requests received.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from connectors.x12 import parse
from engine.app import App
from engine.records import RunState
from engine.sandbox_sftp import SftpSandbox
from engine.scheduler import Scheduler
from engine.settings import Settings
from engine.store.base import RunFilter
from tests.integration.test_sftp_flows import Downstream

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "flows" / "samples"
FLOWS = ("erp-order-to-3pl-940", "warehouse-945-shipping-advice", "supplier-846-inventory")


@dataclass
class World:
    app: App
    sftp: SftpSandbox
    http: Downstream

    def settled(self, flow: str) -> list[RunState]:
        """Every run of *flow*: the runs the poll started, with the runs they split into,
        each waited for until done."""
        runs = self.app.store.list_runs(RunFilter(flow=flow, limit=100))
        trees = [self.app.wait_for(r.run_id, timeout=60) for r in runs if r.trigger != "split"]
        return list({s.run_id: s for tree in trees for s in tree}.values())

    def poll(self) -> None:
        """Two scheduler ticks 30 s apart: the files are seen, then taken once stable."""
        now = [1_800_000_000.0]
        scheduler = Scheduler(self.app, clock=lambda: now[0], inline=True, start_executor=False)
        try:
            scheduler.tick()
            now[0] += 30
            scheduler.tick()
        finally:
            scheduler.close()


@pytest.fixture
def world(tmp_path: Path, httpserver: HTTPServer,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    (tmp_path / "flows").mkdir()
    for name in FLOWS:
        shutil.copy(ROOT / "flows" / f"{name}.yaml", tmp_path / "flows")
    with SftpSandbox(tmp_path / "sftp") as box:
        box.make_shipped_folders()
        shutil.copytree(ROOT / "connections", tmp_path / "connections")
        env = {**box.env(), "ERP_US_URL": httpserver.url_for("/erp/us"),
               "CHANNEL_URL": httpserver.url_for("/channel"),
               "FLOWRUN_HOME": str(tmp_path / "home")}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        http = Downstream(httpserver)
        app = App(Settings(home=tmp_path / "home", flows=tmp_path / "flows",
                           schemas=ROOT / "schemas"))
        assert app.flows.ok, [str(p) for p in app.flows.problems.errors]
        app.executor.start(resume=False)
        try:
            yield World(app, box, http)
        finally:
            app.executor.stop()


def test_a_delivery_goes_to_the_3pl_as_a_940_and_its_945_posts_the_goods_issue(
        world: World) -> None:
    delivery = json.loads((SAMPLES / "erp-delivery-release.json").read_text("utf-8"))
    flow = world.app.flows.flows["erp-order-to-3pl-940"]
    accepted = world.app.accept(flow, delivery, {}, trigger="webhook")
    (sent_run,) = world.app.wait_for(accepted.run_id, timeout=60)
    assert sent_run.status == "succeeded", sent_run.error
    inbound = world.sftp.root / "inbound"
    (order_file,) = inbound.iterdir()
    order = parse(order_file.read_text("utf-8"))
    assert order_file.name == f"WSO_80004711_{order['interchange']['control_number']}.edi"
    (tx,) = order["groups"][0]["transactions"]
    assert (tx["set"], tx["w05"]["order_number"], tx["w76"]["qty"]) == ("940", "80004711", "52")
    assert [loop["items"][0]["product_ids"]["VN"] for loop in tx["lx"]] == [
        "PAPER-A4-80G-5", "TONER-HP-59A"]
    ((path, recorded),) = world.http.posts("/erp/us/deliveries/80004711/edi-transmissions")
    assert recorded["interchange_control_number"] == order["interchange"]["control_number"]

    # the 3PL ships (the toner two short) and drops its 945 beside a file that is no EDI
    outbox = world.sftp.root / "outbound" / "945"
    shutil.copy(SAMPLES / "3pl-945-shipping-advice.edi", outbox / "SW_0004417.edi")
    (outbox / "SW_0004418.edi").write_text("not an interchange\n", "utf-8")
    world.poll()
    states = world.settled("warehouse-945-shipping-advice")
    assert sorted((s.key, s.status) for s in states) == [
        ("80004711", "succeeded"), ("SW_0004417.edi", "split"), ("SW_0004418.edi", "dead_lettered")]
    ((path, issue),) = world.http.posts("/erp/us/deliveries/")[1:]
    assert path == "/erp/us/deliveries/80004711/goods-issue"
    assert issue["complete"] is False and issue["file"] == "SW_0004417.edi"
    assert issue["short_shipped"] == [{"line_number": "20", "sku": "TONER-HP-59A",
                                       "ordered": "12", "shipped": "10", "uom": "EA"}]
    packs = issue["shipment"]["orders"][0]["packs"]
    assert [p["sscc"] for p in packs] == ["003712345600044170", "003712345600044187"]
    # the 3PL gets its 997 for the interchange, the file is archived
    ack = parse((inbound / "FA_SW_0004417.edi").read_text("utf-8"))
    (ack_tx,) = ack["groups"][0]["transactions"]
    assert ack["interchange"]["receiver_id"] == "NORTHPOINT3PL"
    assert (ack_tx["set"], ack_tx["ak1"]["group_control_number"]) == ("997", "4417")
    # both files were taken: the one that is no EDI waits in the dead-letter queue, with no 997
    assert sorted(p.name for p in (outbox / "archive").iterdir()) == [
        "SW_0004417.edi", "SW_0004418.edi"]
    (stray,) = [s for s in states if s.status == "dead_lettered"]
    assert stray.error is not None and stray.error["step"] == "parse"
    assert not (inbound / "FA_SW_0004418.edi").exists()


def test_a_supplier_846_sets_the_stock_on_the_marketplace_and_per_item_on_shopify(
        world: World) -> None:
    drop = world.sftp.root / "out" / "inventory"
    shutil.copy(SAMPLES / "supplier-846-inventory.edi", drop / "INV_20261207_0600.edi")
    world.poll()
    states = world.settled("supplier-846-inventory")
    assert sorted((s.key, s.status) for s in states) == [
        ("INV-20261207-0600", "split"), ("INV_20261207_0600.edi", "split"),
        ("SCARF-GRY", "succeeded"), ("TSHIRT-BLK-L", "succeeded"),
        ("TSHIRT-BLK-M", "succeeded")]
    ((_, stock),) = world.http.posts("/channel/marketplace/offers/stock")
    assert stock["stock"] == [
        {"sellerSku": "TSHIRT-BLK-M", "quantity": 240, "restockDate": "2026-12-21"},
        {"sellerSku": "TSHIRT-BLK-L", "quantity": 0, "restockDate": "2026-12-14"},
        {"sellerSku": "SCARF-GRY", "quantity": 36}]
    levels = sorted((b["sku"], b["available"], b["location_id"])
                    for _, b in world.http.posts("/channel/shopify/inventory_levels/set"))
    assert levels == [("SCARF-GRY", 36, "DS-NORDIC"), ("TSHIRT-BLK-L", 0, "DS-NORDIC"),
                      ("TSHIRT-BLK-M", 240, "DS-NORDIC")]
    assert sorted(p.name for p in (drop / "archive").iterdir()) == ["INV_20261207_0600.edi"]
