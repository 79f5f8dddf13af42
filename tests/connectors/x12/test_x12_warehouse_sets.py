"""The 940, 945, 846 and 860 typed views, their version-aware segment lists, and the 940
builder: files shaped like those a retailer, a 3PL and a supplier send."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.x12 import MemoryControlNumbers, X12Error, build_interchange, parse

SAMPLES = Path(__file__).parent / "samples"
FLOW_SAMPLES = Path(__file__).resolve().parents[3] / "flows" / "samples"


def load(path: Path) -> str:
    with open(path, encoding="ascii", newline="") as fh:
        return fh.read()


def sets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [tx for group in doc["groups"] for tx in group["transactions"]]


def envelope(set_id: str, fid: str, version: str, body: list[str]) -> str:
    """One interchange around *body*, counts right, for a version's segment dictionary."""
    isa_version = "00501" if version >= "005010" else version[:5]
    repetition = "^" if version >= "005010" else "U"
    lines = [
        f"ISA*00*          *00*          *ZZ*PARTNER        *ZZ*ACMEDIST       *261207*1200*"
        f"{repetition}*{isa_version}*000000901*0*P*>",
        f"GS*{fid}*PARTNER*ACMEDIST*20261207*1200*901*X*{version}",
        f"ST*{set_id}*0001", *body, f"SE*{len(body) + 2}*0001", "GE*1*901", "IEA*1*000000901"]
    return "~\n".join(lines) + "~\n"


# --- 940 ----------------------------------------------------------------------------------


def test_a_retailers_940_reads_order_parties_instructions_and_every_lx_loop() -> None:
    order, cancel = sets(parse(load(SAMPLES / "940_two_orders_4030.edi")))
    assert order["w05"] == {"status": "N", "order_number": "SO-778120",
                            "po_number": "PO-55120", "master_reference": "MR-3318"}
    ship_to = order["n1"]["ST"]
    assert (ship_to["name2"], ship_to["address"], ship_to["postal_code"]) == (
        "ATTN RECEIVING", ["4400 LAKE SHORE DR", "SUITE B"], "60611")
    assert ship_to["contacts"] == [{"function": "RE", "name": "DOCK OFFICE",
                                    "comm": {"TE": "3125550187"}}]
    assert list(order["n1"]) == ["ST", "SF", "DE"]
    assert order["refs"] == [{"qualifier": "CO", "value": "CUST-ORD-99812"},
                             {"qualifier": "IA", "value": "VND-4411"}]
    assert order["dates"] == [{"qualifier": "10", "date": "20261207"},
                              {"qualifier": "02", "date": "20261211"}]
    assert order["notes"] == [{"code": "WHI", "text": "CALL 30 MIN BEFORE DELIVERY"}]
    assert order["w66"] == {"payment_method": "CC", "transport_method": "M",
                            "routing": "FEDEX FREIGHT ECONOMY", "scac": "FXFE"}
    assert [loop["number"] for loop in order["lx"]] == [1, 2, 3]
    planter, hose, gloves = (loop["items"][0] for loop in order["lx"])
    assert planter == {"qty": "12", "uom": "CA", "upc_case_code": "012345678905",
                       "product_ids": {"VN": "GL-PLANTER-12", "UP": "012345678912"},
                       "description": "CERAMIC PLANTER 12IN WHITE",
                       "refs": [{"qualifier": "LI", "value": "1"}]}
    assert hose["product_ids"] == {"VN": "GL-HOSE-50"}
    assert gloves["lot_number"] == "L2611A"
    assert order["w76"] == {"qty": "46", "weight": "180.5", "weight_uom": "LB"}
    assert (cancel["w05"]["status"], cancel["w76"]) == ("C", {"qty": "6"})


def test_a_940_built_from_its_view_reads_back_to_the_same_view() -> None:
    first = sets(parse(load(SAMPLES / "940_two_orders_4030.edi")))[0]
    view = {k: v for k, v in first.items() if k not in ("control_number", "segments")}
    text = build_interchange([view], sender="ZZ:GLHG", receiver="ZZ:NORTHPOINT3PL",
                             control_numbers=MemoryControlNumbers())
    (again,) = sets(parse(text))
    assert {k: v for k, v in again.items() if k not in ("control_number", "segments")} == view
    assert parse(text)["groups"][0]["functional_id"] == "OW"


def test_a_940_without_w76_gets_the_total_quantity_and_one_with_null_none() -> None:
    view = {"set": "940", "w05": {"status": "N", "order_number": "D-1"},
            "lx": [{"items": [{"qty": "2.5", "uom": "KG", "product_ids": {"VN": "A"}}]},
                   {"items": [{"qty": 4, "uom": "EA", "product_ids": {"VN": "B"}}]}]}
    (tx,) = sets(parse(build_interchange([view], sender="ZZ:A", receiver="ZZ:B",
                                         control_numbers=MemoryControlNumbers())))
    assert tx["w76"] == {"qty": "6.5"}
    (tx,) = sets(parse(build_interchange([{**view, "w76": None}], sender="ZZ:A",
                                         receiver="ZZ:B", control_numbers=MemoryControlNumbers())))
    assert "w76" not in tx and tx["segments"][-2][0] == "W01"


def test_a_940_item_with_more_product_ids_than_w01_holds_is_refused() -> None:
    view = {"set": "940", "w05": {"status": "N", "order_number": "D-1"},
            "lx": [{"items": [{"qty": 1, "uom": "EA",
                               "product_ids": {"VN": "A", "UP": "1", "BP": "B", "SK": "C"}}]}]}
    with pytest.raises(X12Error, match="at most 3 product ids"):
        build_interchange([view], sender="ZZ:A", receiver="ZZ:B",
                          control_numbers=MemoryControlNumbers())


# --- 945 ----------------------------------------------------------------------------------


def test_a_3pl_945_reads_shipment_carrier_packages_and_shortages() -> None:
    (advice,) = sets(parse(load(FLOW_SAMPLES / "3pl-945-shipping-advice.edi")))
    assert advice["w06"] == {"reporting_code": "F", "order_number": "80004711",
                             "date": "20261208", "shipment_id": "SHP-0091542",
                             "po_number": "PO-77120"}
    assert advice["w27"] == {"transport_method": "M", "scac": "UPSN", "routing": "UPS GROUND",
                             "payment_method": "PP"}
    assert [r["qualifier"] for r in advice["refs"]] == ["BM", "CN", "SO", "CO", "OQ"]
    assert advice["dates"] == [{"qualifier": "11", "date": "20261208", "time_qualifier": "8",
                                "time": "1545"}]
    pallet, carton = advice["lx"]
    assert pallet["man"] == [{"qualifier": "GM", "number": "003712345600044170"}]
    assert carton["items"] == [{
        "status": "CP", "qty_ordered": "12", "qty": "10", "qty_difference": "2", "uom": "EA",
        "lot_number": "T2611-04", "weight": "40", "weight_qualifier": "G", "weight_uom": "L",
        "product_ids": {"VN": "TONER-HP-59A"}, "description": "TONER HP 59A BLACK",
        "refs": [{"qualifier": "LI", "value": "20"}]}]
    assert advice["w03"] == {"qty": "50", "weight": "412.6", "weight_uom": "LB",
                             "lading_qty": 2, "lading_uom": "CT"}


def test_a_945_item_before_any_lx_opens_a_loop_so_no_line_is_lost() -> None:
    text = envelope("945", "SW", "004010", [
        "W06*F*D-9*20261207", "N1*ST*SHOP*92*S1", "W12*CC*1*1**EA**VN*A", "N9*LI*10",
        "W12*CC*2*2**EA**VN*B", "W03*3"])
    (advice,) = sets(parse(text))
    assert [[i["product_ids"]["VN"] for i in loop["items"]] for loop in advice["lx"]] == [
        ["A", "B"]]
    assert advice["lx"][0]["items"][0]["refs"] == [{"qualifier": "LI", "value": "10"}]
    assert advice["w03"] == {"qty": "3"}


# --- 846 ----------------------------------------------------------------------------------


def test_a_supplier_846_reads_availability_stock_and_next_receipts_per_item() -> None:
    doc = parse(load(FLOW_SAMPLES / "supplier-846-inventory.edi"))
    assert doc["interchange"]["delimiters"]["repetition"] == "^"
    (advice,) = sets(doc)
    assert advice["bia"] == {"purpose": "00", "report_type": "DD",
                             "reference": "INV-20261207-0600", "date": "20261207",
                             "time": "0600"}
    assert advice["n1"]["WH"] == {"name": "NORDIC TEXTILES DC BORAS", "id_qualifier": "91",
                                  "id": "NT-BORAS"}
    first = advice["lines"][0]
    assert first["product_ids"] == {"VN": "NT-5512-M", "BP": "TSHIRT-BLK-M",
                                    "UP": "400638133393"}
    assert first["quantities"] == [{"qualifier": "33", "qty": "240", "uom": "EA"},
                                   {"qualifier": "17", "qty": "262", "uom": "EA"}]
    assert first["schedules"] == [{"qty": "500", "uom": "EA", "date_qualifier": "018",
                                   "date": "20261221"}]
    assert [line["line_number"] for line in advice["lines"]] == ["1", "2", "3", "4"]
    assert advice["ctt"] == {"line_count": 4, "hash_total": "361.5"}


# --- 860 ----------------------------------------------------------------------------------


def test_a_retailers_860_reads_each_line_change_with_its_schedule() -> None:
    (change,) = sets(parse(load(SAMPLES / "860_change.edi")))
    assert change["bch"] == {"purpose": "04", "type": "SA", "po_number": "4500098812",
                             "change_sequence": "1", "po_date": "20261120",
                             "change_date": "20261124"}
    assert change["n1"]["ST"]["address"] == ["4100 DISTRIBUTION PKWY"]
    increase, delete, add = change["lines"]
    assert increase == {"line_number": "1", "change": "QI", "qty": "60", "qty_left": "40",
                        "uom": "CA", "unit_price": "23.90", "price_basis": "PE",
                        "product_ids": {"BP": "PAPER-A4-80G-5", "UP": "040063813339"},
                        "description": "COPY PAPER A4 80G 5 REAMS",
                        "schedules": [{"qty": "60", "uom": "CA", "date_qualifier": "002",
                                       "date": "20261202"}]}
    assert (delete["change"], delete["qty"]) == ("DI", "0")
    assert (add["change"], add["product_ids"]["BP"]) == ("AI", "MUG-WHT")
    assert change["ctt"] == {"line_count": 3, "hash_total": "84"}


# --- segment lists by version -------------------------------------------------------------


@pytest.mark.parametrize(("set_id", "fid", "body", "segment", "since"), [
    ("940", "OW", ["W05*N*D-1", "TD3*TL**TRL4411", "LX*1", "W01*1*EA**VN*A", "W76*1"],
     "TD3", "005010"),
    ("945", "SW", ["W06*F*D-1*20261207", "TD1*CTN25*2", "LX*1", "W12*CC*1*1**EA**VN*A",
                   "W03*1"], "TD1", "005010"),
    ("860", "PC", ["BCH*04*SA*4500098812**1*20261120", "MTX**DOCK 4 ONLY",
                   "POC*1*QI*6**EA*1.00*PE*BP*A", "CTT*1"], "MTX", "004030"),
])
def test_a_segment_the_standard_added_later_is_refused_in_the_older_version(
        set_id: str, fid: str, body: list[str], segment: str, since: str) -> None:
    parse(envelope(set_id, fid, since, body))  # the version that has it: fine
    with pytest.raises(X12Error, match=f"segment {segment} is not defined for transaction set "
                                       f"{set_id}"):
        parse(envelope(set_id, fid, "004010", body))


def test_the_other_partner_shapes_read_as_analysts_expect() -> None:
    partial = sets(parse(load(SAMPLES / "945_partial_4010.edi")))[0]
    assert partial["w06"]["reporting_code"] == "P"
    assert [[i["status"] for i in loop["items"]] for loop in partial["lx"]] == [
        ["CC", "CP"], ["CC"]]
    first, second = sets(parse(load(SAMPLES / "945_two_sets_no_lx.edi")))
    assert [loop["items"][0]["product_ids"]["VN"] for loop in first["lx"] + second["lx"]] == [
        "TONER-HP-59A", "PAPER-A4-80G-5"]
    assert sets(parse(load(SAMPLES / "945_5010_td1.edi")))[0]["w03"]["lading_uom"] == "PL"
    mill = sets(parse(load(SAMPLES / "846_4030_pipe.edi")))[0]
    assert "line_number" not in mill["lines"][0]  # LIN01 left empty by the mill
    assert mill["lines"][0]["product_ids"]["BP"] == "PAPER-A4-80G-5"
    cancel = sets(parse(load(SAMPLES / "860_cancel_4030.edi")))[0]
    assert (cancel["bch"]["purpose"], "lines" in cancel) == ("01", False)
    price = sets(parse(load(SAMPLES / "860_5010_pipe.edi")))[0]
    assert [(line["change"], line["unit_price"]) for line in price["lines"]] == [
        ("PC", "22.90"), ("QD", "60.80")]
