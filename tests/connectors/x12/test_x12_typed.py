"""Typed views of parsed 850/855/856/810/997 transaction sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonata

from connectors.x12 import MemoryControlNumbers, build_interchange, parse

SAMPLES = Path(__file__).parent / "samples"


def load(name: str) -> str:
    with open(SAMPLES / name, encoding="ascii", newline="") as fh:
        return fh.read()


def tx(name: str, group: int = 0, index: int = 0) -> dict[str, Any]:
    return parse(load(name))["groups"][group]["transactions"][index]


# --- 850 -------------------------------------------------------------------


def test_850_header() -> None:
    po = tx("850_single.edi")
    assert po["set"] == "850"
    assert po["control_number"] == "0001"
    assert po["beg"] == {
        "purpose": "00",
        "type": "SA",
        "po_number": "4500012345",
        "po_date": "20240311",
    }
    assert po["currency"] == {"entity": "BY", "currency": "USD"}
    assert po["refs"] == [
        {"qualifier": "DP", "value": "0042"},
        {"qualifier": "IA", "value": "558812"},
    ]
    assert po["contacts"] == [
        {
            "function": "BD",
            "name": "DANA WHITFIELD",
            "comm": {"TE": "4795550143", "EM": "DWHITFIELD@BIGMART.EXAMPLE"},
        }
    ]
    assert po["terms"] == [
        {
            "type": "01",
            "basis_date": "3",
            "discount_percent": "2",
            "discount_days": 10,
            "net_days": 30,
        }
    ]
    assert po["dates"] == [{"qualifier": "002", "date": "20240320"}]


def test_850_parties_by_qualifier() -> None:
    po = tx("850_single.edi")
    assert list(po["n1"]) == ["BT", "ST", "VN"]
    assert po["n1"]["ST"] == {
        "name": "BIGMART DC 6094",
        "id_qualifier": "92",
        "id": "6094",
        "address": ["2100 INDUSTRIAL PKWY"],
        "city": "SEARCY",
        "state": "AR",
        "postal_code": "72143",
    }
    assert po["n1"]["BT"]["country"] == "US"


def test_850_lines_and_totals() -> None:
    po = tx("850_single.edi")
    assert len(po["lines"]) == 4
    assert po["lines"][0] == {
        "line_number": "1",
        "qty": "48",
        "uom": "CA",
        "unit_price": "23.76",
        "price_basis": "PE",
        "product_ids": {"BP": "100234", "VP": "ACM-PT-0412", "UP": "012345004124"},
        "description": "PAPER TOWEL 2-PLY 12 ROLL",
    }
    assert [line["unit_price"] for line in po["lines"]] == ["23.76", "3.15", "41.5", "18"]
    assert po["ctt"] == {"line_count": 4, "hash_total": "214"}


def test_850_sku_qualifier_and_5010_store_parties() -> None:
    po = tx("850_multi_gs_5010_crlf.edi", 0, 0)
    assert po["lines"][0]["product_ids"] == {"UP": "070038001126", "SK": "88120011"}
    assert po["n1"]["ST"]["id"] == "04120000001"
    assert po["dates"] == [{"qualifier": "010", "date": "20240409", "time": "0800"}]
    hardware = tx("850_multi_gs_5010_crlf.edi", 1, 0)
    assert hardware["beg"]["po_number"] == "NS-H-2201"
    assert hardware["lines"][0]["description"] == "SHOP VAC 5 GAL"


def test_850_typed_view_maps_with_jsonata() -> None:
    doc = parse(load("850_multi_st_pipe.edi"))
    expr = jsonata.Jsonata(
        "groups.transactions[set='850'].{"
        "'po': beg.po_number, 'ship_to': n1.ST.id, "
        "'skus': lines.product_ids.VP}"
    )
    assert expr.evaluate(doc) == [
        {"po": "4500012391", "ship_to": "6094", "skus": ["ACM-PT-0412", "ACM-DS-1001"]},
        {"po": "4500012392", "ship_to": "7035", "skus": ["ACM-TB-3340", "ACM-NP-0075"]},
        {"po": "4500012393", "ship_to": "6094", "skus": ["ACM-DS-1001", "ACM-TB-3340"]},
    ]


# --- 855 -------------------------------------------------------------------


def test_855_header_and_line_acks() -> None:
    ack = tx("855_single.edi")
    assert ack["bak"] == {
        "purpose": "00",
        "ack_type": "AC",
        "po_number": "4500012345",
        "po_date": "20240311",
        "reference_id": "778812",
        "ack_date": "20240312",
    }
    assert [line["line_number"] for line in ack["lines"]] == ["1", "2", "3"]
    assert ack["lines"][1]["acks"] == [
        {"status": "IA", "qty": "100", "uom": "EA", "date_qualifier": "068", "date": "20240318"},
        {"status": "IB", "qty": "20", "uom": "EA", "date_qualifier": "068", "date": "20240401"},
    ]
    assert ack["lines"][2]["acks"] == [{"status": "IR", "qty": "36", "uom": "CA"}]
    assert ack["ctt"] == {"line_count": 3, "hash_total": "204"}


def test_855_rejection_and_ctrl_char_delimiters() -> None:
    rejected = tx("855_multi_st.edi", 0, 1)
    assert rejected["bak"]["ack_type"] == "RJ"
    assert {a["status"] for line in rejected["lines"] for a in line["acks"]} == {"IR"}
    ack = tx("855_gs_separators_5010.edi")
    assert ack["bak"]["ack_type"] == "AD"
    assert ack["refs"] == [{"qualifier": "CO", "value": "NS-77120"}]
    assert ack["lines"][1]["acks"][0]["status"] == "IP"


# --- 856 -------------------------------------------------------------------


def test_856_sopi_hierarchy_is_nested() -> None:
    asn = tx("856_sopi.edi")
    assert asn["bsn"] == {
        "purpose": "00",
        "shipment_id": "SHP240318001",
        "date": "20240318",
        "time": "1422",
        "structure_code": "0001",
    }
    shipment = asn["shipment"]
    assert (shipment["hl"], shipment["level"]) == ("1", "S")
    assert shipment["td1"] == [
        {
            "packaging_code": "CTN25",
            "lading_qty": 2,
            "weight_qualifier": "G",
            "weight": "795",
            "weight_uom": "LB",
        }
    ]
    assert shipment["td5"] == [
        {
            "routing_sequence": "B",
            "id_qualifier": "2",
            "carrier_code": "RDWY",
            "transport_method": "M",
            "routing": "YRC FREIGHT",
        }
    ]
    assert shipment["td3"] == [
        {"equipment_code": "TL", "equipment_number": "TRL40112", "seal_number": "SL88213"}
    ]
    assert [r["qualifier"] for r in shipment["refs"]] == ["BM", "CN"]
    assert shipment["dates"] == [
        {"qualifier": "011", "date": "20240318"},
        {"qualifier": "017", "date": "20240321"},
    ]
    assert list(shipment["n1"]) == ["SF", "ST"]
    (order,) = shipment["orders"]
    assert order["prf"] == {"po_number": "4500012345", "po_date": "20240311"}
    assert order["n1"]["BY"]["id"] == "0001"
    assert [p["man"] for p in order["packs"]] == [
        [{"qualifier": "GM", "number": "00006141419000001012"}],
        [{"qualifier": "GM", "number": "00006141419000001029"}],
    ]
    second = order["packs"][1]
    assert second["po4"]["gross_weight"] == "35"
    assert [i["hl"] for i in second["items"]] == ["6", "7"]
    item = second["items"][1]
    assert item["lin"] == {"line_number": "2", "product_ids": {"UP": "012345010019", "BP": "200"}}
    assert item["sn1"] == {
        "qty": "100",
        "uom": "EA",
        "qty_ordered": "100",
        "ordered_uom": "EA",
        "status": "AC",
    }
    assert item["description"] == "DISH SOAP LEMON 24OZ"
    assert asn["ctt"] == {"line_count": 7, "hash_total": "148"}


def test_856_soi_structure_puts_items_under_orders() -> None:
    asn = tx("856_soi_caret.edi")
    orders = asn["shipment"]["orders"]
    assert [o["prf"]["po_number"] for o in orders] == ["NS-77120", "NS-77121"]
    assert [[i["lin"]["product_ids"]["UP"] for i in o["items"]] for o in orders] == [
        ["070038001126", "070038005308"],
        ["070038001126"],
    ]
    assert "packs" not in orders[0]
    assert orders[0]["items"][0]["po4"] == {"pack": 12, "size": "14.5", "size_uom": "OZ"}


def test_856_sscc_query_with_jsonata() -> None:
    doc = parse(load("856_multi_st_pipe.edi"))
    expr = jsonata.Jsonata("groups.transactions.shipment.orders.packs.man[qualifier='GM'].number")
    assert expr.evaluate(doc) == ["00006141419000001012", "00006141419000001173"]


# --- 810 -------------------------------------------------------------------


def test_810_invoice() -> None:
    inv = tx("810_single.edi")
    assert inv["big"] == {
        "invoice_date": "20240320",
        "invoice_number": "INV-240320-01",
        "po_date": "20240311",
        "po_number": "4500012345",
    }
    assert list(inv["n1"]) == ["RE", "ST", "BT"]
    assert inv["n1"]["RE"]["address"] == ["PO BOX 4410"]
    assert inv["terms"][0]["net_days"] == 30
    assert inv["dates"] == [{"qualifier": "011", "date": "20240318"}]
    assert [(ln["qty"], ln["unit_price"], ln["product_ids"]["UP"]) for ln in inv["lines"]] == [
        ("48", "23.76", "012345004124"),
        ("100", "3.15", "012345010019"),
    ]
    # TDS01 is N2: "151548" on the wire is 1515.48.
    assert inv["tds"] == {"total": "1515.48"}
    assert inv["sac"] == [
        {"indicator": "C", "code": "D240", "amount": "85.00", "description": "FREIGHT"},
        {
            "indicator": "A",
            "code": "C310",
            "amount": "25.00",
            "description": "PROMOTIONAL ALLOWANCE",
        },
    ]
    assert inv["ctt"] == {"line_count": 2}


def test_810_taxes_terms_and_dates() -> None:
    inv = tx("810_5010_ctrl_chars.edi")
    assert inv["terms"] == [
        {
            "type": "01",
            "basis_date": "3",
            "discount_percent": "1.5",
            "discount_days": 15,
            "net_days": 45,
        }
    ]
    assert inv["tds"] == {"total": "357.75"}
    assert inv["txi"] == [{"type": "ST", "amount": "18.6", "percent": "5.5"}]
    second = tx("810_multi_st_caret.edi", 0, 1)
    assert second["terms"] == [
        {"type": "05", "basis_date": "3", "net_due_date": "20240420", "net_days": 30}
    ]
    assert second["tds"] == {"total": "1614.00"}


# --- 997 -------------------------------------------------------------------


def test_997_accepted() -> None:
    ack = tx("997_accepted.edi")
    assert ack["ak1"] == {"functional_id": "SH", "group_control_number": "9301"}
    assert ack["ak2"] == [
        {"set": "856", "control_number": "0001", "ak5": {"status": "A", "codes": []}}
    ]
    assert ack["ak9"] == {"status": "A", "included": 1, "received": 1, "accepted": 1, "codes": []}


def test_997_rejected_with_segment_and_element_errors() -> None:
    ack = tx("997_rejected.edi")
    assert ack["ak2"][1] == {
        "set": "810",
        "control_number": "0002",
        "ak3": [
            {
                "segment_id": "IT1",
                "position": 6,
                "code": "8",
                "ak4": [
                    {"position": 2, "code": "6", "value": "3O"},
                    {"position": 4, "code": "6", "value": "41,5"},
                ],
            },
            {"segment_id": "ZZZ", "position": 9, "code": "6"},
        ],
        "ak5": {"status": "R", "codes": ["5"]},
    }
    assert ack["ak9"] == {"status": "P", "included": 2, "received": 2, "accepted": 1, "codes": []}


def test_997_5010_version_composite_position_and_group_codes() -> None:
    second = tx("997_multi_5010_pipe.edi", 0, 1)
    assert second["ak1"] == {
        "functional_id": "SH",
        "group_control_number": "5133",
        "version": "004010",
    }
    assert second["ak2"][0]["ak3"][0]["ak4"] == [
        {"position": 2, "component": 1, "code": "7", "value": "9"}
    ]
    third = tx("997_multi_5010_pipe.edi", 0, 2)
    assert "ak2" not in third
    assert third["ak9"] == {
        "status": "R",
        "included": 3,
        "received": 2,
        "accepted": 0,
        "codes": ["5"],
    }


SDQ_STYLE_850 = (
    "ISA*00*          *00*          *ZZ*BIGMART        *ZZ*ACMEDIST       *240501*0930*U*00401"
    "*000000311*0*P*>~"
    "GS*PO*BIGMART*ACMEDIST*20240501*0930*311*X*004010~"
    "ST*850*0001~"
    "BEG*00*DS*PO-DS-1**20240501~"
    "N1*ST*STORE 12*92*0012~"
    "REF*ST*DOCK 4~"
    "PER*RE*RECEIVING*TE*5555550100~"
    "N1*ST*STORE 14*92*0014~"
    "DTM*002*20240510~"
    "PO1**2*EA*9.99**UP*012345004124~"
    "DTM*002*20240512~"
    "REF*PO*X1~"
    "N1*ST*STORE 12*92*0012~"
    "N3*1 MAIN ST~"
    "REF*DP*042~"
    "PID*F****PAPER TOWEL~"
    "CTT*1*2~"
    "SE*16*0001~"
    "GE*1*311~"
    "IEA*1*000000311~"
)


def test_n1_loops_duplicate_parties_and_line_level_structures() -> None:
    po = parse(SDQ_STYLE_850)["groups"][0]["transactions"][0]
    assert po["n1"] == {
        "ST": {
            "name": "STORE 12",
            "id_qualifier": "92",
            "id": "0012",
            "refs": [{"qualifier": "ST", "value": "DOCK 4"}],
            "contacts": [{"function": "RE", "name": "RECEIVING", "comm": {"TE": "5555550100"}}],
        },
        # A repeated qualifier keeps its data under a numbered key.
        "ST_2": {"name": "STORE 14", "id_qualifier": "92", "id": "0014"},
    }
    # DTM after the N1 loop closes it and belongs to the header again.
    assert po["dates"] == [{"qualifier": "002", "date": "20240510"}]
    (line,) = po["lines"]
    assert "line_number" not in line
    assert line["dates"] == [{"qualifier": "002", "date": "20240512"}]
    assert line["refs"] == [{"qualifier": "PO", "value": "X1"}]
    assert line["n1"] == {
        "ST": {
            "name": "STORE 12",
            "id_qualifier": "92",
            "id": "0012",
            "address": ["1 MAIN ST"],
            "refs": [{"qualifier": "DP", "value": "042"}],
        }
    }
    # A PID after the line's N1 loop is still the line's description.
    assert line["description"] == "PAPER TOWEL"


def test_duplicate_party_keys_build_back_to_repeated_n1() -> None:
    po = parse(SDQ_STYLE_850)["groups"][0]["transactions"][0]
    view = {k: v for k, v in po.items() if k not in ("segments", "control_number")}
    out = build_interchange(
        [view], sender="ACMEDIST", receiver="BIGMART", control_numbers=MemoryControlNumbers()
    )
    back = parse(out)["groups"][0]["transactions"][0]
    assert [s[:2] for s in back["segments"] if s[0] == "N1"] == [["N1", "ST"]] * 3
    # Rebuilt lines are numbered; everything else comes back as it was.
    assert back["lines"][0].pop("line_number") == "1"
    assert {k: v for k, v in back.items() if k not in ("segments", "control_number")} == view
