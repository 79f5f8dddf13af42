"""Building outbound interchanges from typed views, and parsing them back."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.x12 import (
    MemoryControlNumbers,
    X12Error,
    build_document,
    build_interchange,
    parse,
)

SAMPLES = Path(__file__).parent / "samples"
NOW = datetime(2024, 5, 1, 9, 30)


def load(name: str) -> str:
    with open(SAMPLES / name, encoding="ascii", newline="") as fh:
        return fh.read()


# What an analyst's JSONata mapping of a canonical purchase order produces.
PO_VIEW: dict[str, Any] = {
    "set": "850",
    "beg": {"purpose": "00", "type": "SA", "po_number": "PO-7781", "po_date": "20240501"},
    "refs": [{"qualifier": "DP", "value": "042"}],
    "dates": [{"qualifier": "002", "date": "20240510"}],
    "n1": {
        "ST": {
            "name": "CORNER HARDWARE #2",
            "id_qualifier": "92",
            "id": "CH002",
            "address": ["88 MILL ST", "DOCK B"],
            "city": "ASHEVILLE",
            "state": "NC",
            "postal_code": "28801",
            "country": "US",
        }
    },
    "lines": [
        {
            "qty": "6",
            "uom": "EA",
            "unit_price": "54.00",
            "price_basis": "PE",
            "product_ids": {"VP": "SV-5GAL", "UP": "048004001029"},
            "description": "SHOP VAC 5 GAL",
        },
        {"qty": 3, "uom": "BX", "unit_price": "11.25", "product_ids": {"VP": "GL-NIT-L"}},
    ],
}

PO_EXPECTED = (
    "ISA*00*          *00*          *ZZ*ACMEDIST       *ZZ*CORNERHW       *240501*0930*U*00401"
    "*000000001*0*P*>~\n"
    "GS*PO*ACMEDIST*CORNERHW*20240501*0930*1*X*004010~\n"
    "ST*850*0001~\n"
    "BEG*00*SA*PO-7781**20240501~\n"
    "REF*DP*042~\n"
    "DTM*002*20240510~\n"
    "N1*ST*CORNER HARDWARE #2*92*CH002~\n"
    "N3*88 MILL ST*DOCK B~\n"
    "N4*ASHEVILLE*NC*28801*US~\n"
    "PO1*1*6*EA*54.00*PE*VP*SV-5GAL*UP*048004001029~\n"
    "PID*F****SHOP VAC 5 GAL~\n"
    "PO1*2*3*BX*11.25**VP*GL-NIT-L~\n"
    "CTT*2*9~\n"
    "SE*12*0001~\n"
    "GE*1*1~\n"
    "IEA*1*000000001~\n"
)


def test_850_from_typed_view_is_exact() -> None:
    out = build_interchange(
        [PO_VIEW],
        sender="ZZ:ACMEDIST",
        receiver="ZZ:CORNERHW",
        control_numbers=MemoryControlNumbers(),
        now=NOW,
    )
    assert out == PO_EXPECTED


def test_850_built_then_parsed_gives_the_view_back() -> None:
    out = build_interchange(
        [PO_VIEW],
        sender="ACMEDIST",
        receiver="CORNERHW",
        control_numbers=MemoryControlNumbers(),
        now=NOW,
    )
    po = parse(out)["groups"][0]["transactions"][0]
    assert po["beg"] == PO_VIEW["beg"]
    assert po["n1"] == PO_VIEW["n1"]
    assert [ln["line_number"] for ln in po["lines"]] == ["1", "2"]
    assert po["lines"][1] == {
        "line_number": "2",
        "qty": "3",
        "uom": "BX",
        "unit_price": "11.25",
        "product_ids": {"VP": "GL-NIT-L"},
    }
    assert po["ctt"] == {"line_count": 2, "hash_total": "9"}


TYPED_SETS = ("850", "855", "856", "810")


def _typed_transactions() -> list[tuple[str, int, int]]:
    found = []
    for path in sorted(SAMPLES.glob("*.edi")):
        doc = parse(load(path.name))
        for gi, group in enumerate(doc["groups"]):
            for ti, tx in enumerate(group["transactions"]):
                if tx["set"] in TYPED_SETS:
                    found.append((path.name, gi, ti))
    return found


@pytest.mark.parametrize(("name", "gi", "ti"), _typed_transactions())
def test_every_sample_view_rebuilds_to_the_same_view(name: str, gi: int, ti: int) -> None:
    tx = parse(load(name))["groups"][gi]["transactions"][ti]
    view = {k: v for k, v in tx.items() if k not in ("segments", "control_number")}
    out = build_interchange(
        [view],
        sender="ZZ:ACMEDIST",
        receiver="ZZ:PARTNER",
        control_numbers=MemoryControlNumbers(),
        now=NOW,
    )
    back = parse(out)["groups"][0]["transactions"][0]
    assert {k: v for k, v in back.items() if k not in ("segments", "control_number")} == view


def test_856_hierarchy_is_numbered_and_counted() -> None:
    asn = {
        "set": "856",
        "bsn": {"purpose": "00", "shipment_id": "SH-1", "date": "20240501", "time": "0930"},
        "shipment": {
            "td5": [{"id_qualifier": "2", "carrier_code": "UPSN", "transport_method": "U"}],
            "orders": [
                {
                    "prf": {"po_number": "PO-1"},
                    "packs": [
                        {
                            "man": [{"qualifier": "GM", "number": "000061414190000010"}],
                            "items": [
                                {
                                    "lin": {"product_ids": {"UP": "012345004124"}},
                                    "sn1": {"qty": 5, "uom": "EA"},
                                },
                                {
                                    "lin": {"product_ids": {"UP": "012345010019"}},
                                    "sn1": {"qty": "7", "uom": "EA"},
                                },
                            ],
                        },
                    ],
                },
                {
                    "prf": {"po_number": "PO-2"},
                    "items": [
                        {
                            "lin": {"product_ids": {"UP": "012345033407"}},
                            "sn1": {"qty": "1.5", "uom": "CA"},
                        }
                    ],
                },
            ],
        },
    }
    out = build_interchange(
        [asn],
        sender="ACMEDIST",
        receiver="BIGMART",
        control_numbers=MemoryControlNumbers(),
        now=NOW,
    )
    segments = parse(out)["groups"][0]["transactions"][0]["segments"]
    hls = [s[1:] for s in segments if s[0] == "HL"]
    assert hls == [
        ["1", "", "S", "1"],
        ["2", "1", "O", "1"],
        ["3", "2", "P", "1"],
        ["4", "3", "I", "0"],
        ["5", "3", "I", "0"],
        ["6", "1", "O", "1"],
        ["7", "6", "I", "0"],
    ]
    assert segments[-2] == ["CTT", "7", "13.5"]
    assert segments[-1] == ["SE", str(len(segments)), "0001"]


def test_810_total_is_computed_in_cents_when_missing() -> None:
    invoice = {
        "set": "810",
        "big": {"invoice_date": "20240501", "invoice_number": "INV-1", "po_number": "PO-7781"},
        "lines": [
            {"qty": "6", "uom": "EA", "unit_price": "54.00"},
            {"qty": "3", "uom": "BX", "unit_price": "11.255"},
        ],
        "sac": [
            {"indicator": "C", "code": "D240", "amount": "12.50"},
            {"indicator": "A", "code": "C310", "amount": "5"},
        ],
        "txi": [{"type": "ST", "amount": "18.6"}],
        "ctt": {"line_count": 0},  # keys choose what to send, values are recomputed
    }
    out = build_interchange(
        [invoice],
        sender="ACMEDIST",
        receiver="CORNERHW",
        control_numbers=MemoryControlNumbers(),
        now=NOW,
    )
    inv = parse(out)["groups"][0]["transactions"][0]
    # 324 + 33.765 + 12.50 - 5 + 18.6 = 383.865 → half-up to 383.87
    assert inv["tds"] == {"total": "383.87"}
    assert inv["ctt"] == {"line_count": 2}
    assert [s[0] for s in inv["segments"]] == [
        "ST",
        "BIG",
        "IT1",
        "IT1",
        "TDS",
        "TXI",
        "SAC",
        "SAC",
        "CTT",
        "SE",
    ]


def test_given_tds_is_encoded_with_implied_decimals() -> None:
    invoice = {
        "set": "810",
        "big": {"invoice_date": "20240501", "invoice_number": "INV-2"},
        "lines": [],
        "tds": {"total": "1515.48", "subject_to_discount": 1000},
        "ctt": None,
    }
    out = build_interchange(
        [invoice],
        sender="ACMEDIST",
        receiver="CORNERHW",
        control_numbers=MemoryControlNumbers(),
        now=NOW,
    )
    segments = parse(out)["groups"][0]["transactions"][0]["segments"]
    assert ["TDS", "151548", "100000"] in segments
    assert not any(s[0] == "CTT" for s in segments)


def test_sets_are_grouped_by_functional_id_with_fresh_control_numbers() -> None:
    numbers = MemoryControlNumbers()
    views = [
        {
            "set": "855",
            "bak": {"purpose": "00", "ack_type": "AC", "po_number": "PO-1", "po_date": "20240501"},
        },
        {"set": "810", "big": {"invoice_date": "20240501", "invoice_number": "I-1"}},
        {
            "set": "855",
            "bak": {"purpose": "00", "ack_type": "AC", "po_number": "PO-2", "po_date": "20240501"},
        },
    ]
    doc = parse(
        build_interchange(
            views, sender="ACMEDIST", receiver="01:078742000000", control_numbers=numbers, now=NOW
        )
    )
    assert [
        (g["functional_id"], g["control_number"], [t["control_number"] for t in g["transactions"]])
        for g in doc["groups"]
    ] == [
        ("PR", "1", ["0001", "0002"]),
        ("IN", "2", ["0003"]),
    ]
    assert doc["interchange"]["receiver_qualifier"] == "01"
    # The same partner's next interchange continues the sequences.
    again = parse(
        build_interchange(
            views[:1],
            sender="ACMEDIST",
            receiver="01:078742000000",
            control_numbers=numbers,
            now=NOW,
        )
    )
    assert again["interchange"]["control_number"] == "000000002"
    assert again["groups"][0]["control_number"] == "3"
    assert again["groups"][0]["transactions"][0]["control_number"] == "0004"
    # Another partner has its own sequences.
    other = parse(
        build_interchange(
            views[:1], sender="ACMEDIST", receiver="ZZ:CORNERHW", control_numbers=numbers, now=NOW
        )
    )
    assert other["interchange"]["control_number"] == "000000001"


def test_5010_options_delimiters_and_ack_request() -> None:
    out = build_interchange(
        [PO_VIEW],
        sender={"qualifier": "01", "id": "884210000", "application_id": "ACME-EDI"},
        receiver="ZZ:CORNERHW",
        control_numbers=MemoryControlNumbers(),
        now=NOW,
        version="00501",
        usage_indicator="T",
        ack_requested=True,
        delimiters={
            "element": "|",
            "component": ":",
            "repetition": "^",
            "segment": "~",
            "suffix": "\r\n",
        },
    )
    assert out.startswith(
        "ISA|00|          |00|          |01|884210000      |ZZ|CORNERHW       |240501|0930|^|00501"
        "|000000001|1|T|:~\r\nGS|PO|ACME-EDI|CORNERHW|20240501|0930|1|X|005010~\r\n"
    )
    doc = parse(out)
    assert doc["interchange"]["ack_requested"] is True
    assert doc["interchange"]["delimiters"]["repetition"] == "^"


def test_generic_segments_pass_through_for_sets_without_a_typed_view() -> None:
    inventory = {
        "set": "846",
        "functional_id": "IB",
        "segments": [
            ["BIA", "00", "MM", "INV-20240501", "20240501"],
            ["LIN", "", "UP", "012345004124"],
            ["QTY", "33", "480", "EA"],
        ],
    }
    doc = parse(
        build_interchange(
            [inventory],
            sender="ACMEDIST",
            receiver="BIGMART",
            control_numbers=MemoryControlNumbers(),
            now=NOW,
        )
    )
    group = doc["groups"][0]
    assert group["functional_id"] == "IB"
    assert group["transactions"][0]["segments"] == [
        ["ST", "846", "0001"],
        *inventory["segments"],
        ["SE", "5", "0001"],
    ]


def test_parsed_transaction_with_segments_is_resent_with_new_envelope() -> None:
    original = parse(load("850_single.edi"))["groups"][0]["transactions"][0]
    doc = build_document(
        [original],
        sender="ACMEDIST",
        receiver="BIGMART",
        control_numbers=MemoryControlNumbers(start=500),
        now=NOW,
    )
    tx = doc["groups"][0]["transactions"][0]
    assert tx["control_number"] == "0500"
    assert tx["segments"][1:-1] == original["segments"][1:-1]
    assert tx["segments"][-1] == ["SE", "27", "0500"]


def test_build_errors_are_located() -> None:
    numbers = MemoryControlNumbers()
    bad = {
        "set": "850",
        "beg": {"purpose": "00", "type": "SA", "po_number": "PO*1", "po_date": "20240501"},
    }
    with pytest.raises(X12Error) as info:
        build_interchange(
            [bad], sender="ACMEDIST", receiver="BIGMART", control_numbers=numbers, now=NOW
        )
    assert str(info.value) == (
        "segment 4 (BEG), element BEG03: value 'PO*1' contains the delimiter '*'"
    )
    with pytest.raises(X12Error, match="set '846' has no typed builder"):
        build_interchange([{"set": "846"}], sender="A", receiver="B", control_numbers=numbers)
    with pytest.raises(X12Error, match="id of 1-15 characters"):
        build_interchange(
            [PO_VIEW], sender="ZZ:ACME-DISTRIBUTION-CO", receiver="B", control_numbers=numbers
        )
    with pytest.raises(X12Error, match="at least one transaction set"):
        build_interchange([], sender="A", receiver="B", control_numbers=numbers)


def test_outbound_document_is_validated_and_returned_parsed() -> None:
    doc = build_document(
        [PO_VIEW],
        sender="ACMEDIST",
        receiver="01:078742000000",
        control_numbers=MemoryControlNumbers(),
        now=NOW,
    )
    assert doc["errors"] == []
    assert doc["interchange"]["receiver_qualifier"] == "01"
    assert doc["interchange"]["receiver_id"] == "078742000000"
    assert doc["groups"][0]["transactions"][0]["beg"]["po_number"] == "PO-7781"
    bad = {**PO_VIEW, "lines": [{"qty": "six", "uom": "EA", "unit_price": "54.00"}]}
    with pytest.raises(X12Error) as info:
        build_document(
            [bad],
            sender="ACMEDIST",
            receiver="CORNERHW",
            control_numbers=MemoryControlNumbers(),
            now=NOW,
        )
    assert str(info.value) == (
        "interchange 000000001, segment 10 (PO1), element PO102: expected a decimal "
        "number, found 'six'"
    )
