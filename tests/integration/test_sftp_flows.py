"""The shipped SFTP flows end to end: the SFTP sandbox and a loopback HTTP server play the
supplier's SFTP server, the ERP and the WMS.

``erp-po-to-supplier-850`` and ``asn-856-file-drop`` are loaded as shipped, with the shipped
connection file (only its port changed to the sandbox's); an `App` runs them on the embedded
executor. Flow 3 takes a PO release through intake; flow 5 is started by the scheduler polling
the sandbox's drop folder. The checks are the effects: the file on the SFTP server, the files
moved to archive/ and error/, the requests the ERP and the WMS received, the final run states.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from connectors.x12 import parse
from engine.app import App
from engine.records import RunState
from engine.sandbox_sftp import SftpSandbox
from engine.scheduler import Scheduler
from engine.settings import Settings
from engine.store.base import DeadLetterFilter, RunFilter

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ("erp-po-to-supplier-850", "asn-856-file-drop")


class Downstream:
    """The ERP and the WMS on one loopback server: records every request, answers 201, or the
    statuses queued in ``fail`` (per path prefix) first."""

    def __init__(self, server: HTTPServer):
        self.server = server
        self.seen: list[tuple[str, Any]] = []
        self.fail: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        server.expect_request(re.compile("^/"), method="POST").respond_with_handler(
            self._answer)

    def _answer(self, request: Request) -> Response:
        with self._lock:
            self.seen.append((request.path, json.loads(request.data or b"null")))
            for prefix, statuses in self.fail.items():
                if request.path.startswith(prefix) and statuses:
                    return Response(status=statuses.pop(0))
        return Response(json.dumps({"ok": True}), status=201, content_type="application/json")

    def posts(self, prefix: str) -> list[tuple[str, Any]]:
        with self._lock:
            return [(p, b) for p, b in self.seen if p.startswith(prefix)]


@dataclass
class World:
    app: App
    sftp: SftpSandbox
    http: Downstream

    def runs(self, flow: str) -> list[RunState]:
        return self.app.store.list_runs(RunFilter(flow=flow, limit=100))


@pytest.fixture
def world(tmp_path: Path, httpserver: HTTPServer,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    (tmp_path / "flows").mkdir()
    for name in FLOWS:
        shutil.copy(ROOT / "flows" / f"{name}.yaml", tmp_path / "flows")
    with SftpSandbox(tmp_path / "sftp") as box:
        box.make_shipped_folders()
        # the shipped connection file as it is: host, port and key come from the sandbox's env
        shutil.copytree(ROOT / "connections", tmp_path / "connections")
        env = {**box.env(), "ERP_EU_URL": httpserver.url_for("/erp/eu"),
               "WMS_URL": httpserver.url_for("/wms"), "FLOWRUN_HOME": str(tmp_path / "home")}
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


def po_release() -> Any:
    return json.loads((ROOT / "flows" / "samples" / "erp-po-release.json").read_text("utf-8"))


def send_po(world: World, body: Any) -> RunState:
    flow = world.app.flows.flows["erp-po-to-supplier-850"]
    accepted = world.app.accept(flow, body, {}, trigger="webhook")
    (state,) = world.app.wait_for(accepted.run_id, timeout=60)
    assert state.done, state.steps
    return state


def test_a_released_po_lands_on_the_supplier_server_as_an_850(world: World) -> None:
    world.http.fail["/erp/eu/purchase-orders"] = [503]  # the ERP hiccups once, after the put
    state = send_po(world, po_release())
    assert state.status == "succeeded", state.error
    inbox = world.sftp.root / "in"
    assert sorted(p.name for p in inbox.iterdir()) == ["PO_4500012345_0.edi"]
    sent = parse((inbox / "PO_4500012345_0.edi").read_text("utf-8"))
    assert sent["interchange"]["receiver_id"] == "NORDICTEX"
    (tx,) = sent["groups"][0]["transactions"]
    assert (tx["set"], tx["beg"]["po_number"], len(tx["lines"])) == ("850", "4500012345", 2)
    # the upload was never visible under its final name before it was complete
    assert world.sftp.writes and all(name.endswith(".part") and "PO_4500012345_0.edi" not in
                                     names for name, names in world.sftp.writes)
    recorded = world.http.posts("/erp/eu/purchase-orders/4500012345/edi-transmissions")
    assert len(recorded) == 2  # the 503, then the record: the file was put once
    assert len({n for n, _ in world.sftp.writes}) == 1
    assert recorded[-1][1]["interchange_control_number"] == \
        sent["interchange"]["control_number"]
    assert [s["attempts"] for s in state.steps if s["id"] == "record_sent"] == [2]


def test_a_refused_login_dead_letters_the_po_without_showing_the_password(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "wrong-password-4711"
    monkeypatch.setenv("FLOWRUN_SECRET_SFTP_SANDBOX_PASSWORD", wrong)
    state = send_po(world, po_release())
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["kind"] == "auth"
    assert "connection 'supplier_nordic_sftp'" in state.error["message"]
    (entry,) = world.app.store.list_dead_letters(DeadLetterFilter(flow="erp-po-to-supplier-850"))
    assert entry.step == "send_850" and entry.original["body"]["PurchaseOrder"] == "4500012345"
    assert wrong not in json.dumps(state.to_dict(), default=str)
    assert wrong not in json.dumps(dataclasses.asdict(entry), default=str)
    assert list((world.sftp.root / "in").iterdir()) == []
    assert world.http.posts("/erp") == []


def test_asn_files_dropped_by_the_supplier_reach_the_wms_and_the_erp(world: World) -> None:
    drop = world.sftp.root / "out" / "asn"
    samples = ROOT / "flows" / "samples"
    shutil.copy(samples / "asn-856-nordic.edi", drop / "ASN-0001987.edi")
    shutil.copy(samples / "asn-856-nordic-dropship.edi", drop / "ASN-0001990.edi")
    shutil.copy(samples / "asn-856-nordic-two-shipments.edi", drop / "ASN-BATCH-0740.edi")
    shutil.copy(samples / "asn-856-with-997.edi", drop / "ASN-0001990-FA.edi")
    shutil.copy(samples / "asn-856-nordic-two-pos.edi", drop / "ASN-0001995.edi")
    (drop / "ASN-0001991.edi").write_bytes(b"ISA*00*\xff\xfe")  # not text at all
    now = [1_800_000_000.0]
    scheduler = Scheduler(world.app, clock=lambda: now[0], inline=True, start_executor=False)
    try:
        assert [f.reason for f in scheduler.tick()] == ["slot"]  # first look: settling
        assert world.runs("asn-856-file-drop") == []
        now[0] += 30  # unchanged for stable_for: complete
        assert [f.reason for f in scheduler.tick()] == ["recheck"]
    finally:
        scheduler.close()
    files = [r for r in world.runs("asn-856-file-drop") if r.trigger != "split"]
    states = [s for r in files for s in world.app.wait_for(r.run_id, timeout=60)]
    # each file's run splits it; each transaction set is a run of its own, found by its
    # shipment id, which splits it again into one booking per PO, found by the PO number; the
    # 997 beside an 856 is dead-lettered on its own (found by its file)
    assert sorted((s.key, s.status) for s in states) == [
        ("4500012345", "succeeded"), ("4500012345", "succeeded"), ("4500012346", "succeeded"),
        ("4500012399", "succeeded"), ("4500012399", "succeeded"), ("4500012401", "succeeded"),
        ("4500012402", "succeeded"),
        ("ASN-0001987", "split"), ("ASN-0001987.edi", "split"),
        ("ASN-0001990", "split"), ("ASN-0001990", "split"),
        ("ASN-0001990-FA.edi", "dead_lettered"), ("ASN-0001990-FA.edi", "split"),
        ("ASN-0001990.edi", "split"), ("ASN-0001995", "split"), ("ASN-0001995.edi", "split"),
        ("ASN-0002001", "split"), ("ASN-0002002", "split"), ("ASN-BATCH-0740.edi", "split")]
    (stray,) = [s for s in states if s.status == "dead_lettered"]
    assert stray.envelope["body"]["set"] == "997"
    assert "other than an 856" in stray.error["message"]
    wms = sorted(body["shipment_id"] for _, body in world.http.posts("/wms/inbound-shipments"))
    assert wms == ["ASN-0001987", "ASN-0001995", "ASN-0002001"]
    (hamburg,) = [b for _, b in world.http.posts("/wms/") if b["shipment_id"] == "ASN-0001987"]
    assert [p["sscc"] for p in hamburg["orders"][0]["packs"]] == [
        "373123450000000017", "373123450000000024"]
    erp = sorted((path, body["shipment_id"], body["drop_ship"], body["file"],
                  [line["sku"] for line in body["lines"]])
                 for path, body in world.http.posts("/erp/eu/purchase-orders/"))
    assert erp == [
        ("/erp/eu/purchase-orders/4500012345/ship-notices", "ASN-0001987", False,
         "ASN-0001987.edi", ["TSHIRT-BLK-M", "YARN-WOOL"]),
        ("/erp/eu/purchase-orders/4500012345/ship-notices", "ASN-0001995", False,
         "ASN-0001995.edi", ["TSHIRT-BLK-M"]),
        ("/erp/eu/purchase-orders/4500012346/ship-notices", "ASN-0001995", False,
         "ASN-0001995.edi", ["YARN-WOOL"]),
        ("/erp/eu/purchase-orders/4500012399/ship-notices", "ASN-0001990", True,
         "ASN-0001990-FA.edi", ["TSHIRT-BLK-M", "YARN-WOOL"]),
        ("/erp/eu/purchase-orders/4500012399/ship-notices", "ASN-0001990", True,
         "ASN-0001990.edi", ["TSHIRT-BLK-M", "YARN-WOOL"]),
        ("/erp/eu/purchase-orders/4500012401/ship-notices", "ASN-0002001", False,
         "ASN-BATCH-0740.edi", ["TSHIRT-BLK-M", "YARN-WOOL"]),
        ("/erp/eu/purchase-orders/4500012402/ship-notices", "ASN-0002002", True,
         "ASN-BATCH-0740.edi", ["TSHIRT-BLK-M", "YARN-WOOL"])]
    assert sorted(p.name for p in (drop / "archive").iterdir()) == [
        "ASN-0001987.edi", "ASN-0001990-FA.edi", "ASN-0001990.edi", "ASN-0001995.edi",
        "ASN-BATCH-0740.edi"]
    reason = (drop / "error" / "ASN-0001991.edi.reason.txt").read_text("utf-8")
    assert reason.startswith("ASN-0001991.edi: the file is not UTF-8 text")
    assert sorted(p.name for p in drop.iterdir()) == ["archive", "error"]
