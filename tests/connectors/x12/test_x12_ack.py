"""997 generation for received interchanges and correlation of received 997s."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from connectors.x12 import (
    MemoryControlNumbers,
    X12Error,
    correlate_997,
    generate_997,
    parse,
)

SAMPLES = Path(__file__).parent / "samples"
NOW = datetime(2024, 3, 12, 7, 0)


def load(name: str) -> str:
    with open(SAMPLES / name, encoding="ascii", newline="") as fh:
        return fh.read()


# Three 850s in one group, pipe-delimited, no line breaks: set 1 starts at
# segment 3, set 2 at segment 26, set 3 at segment 51.
SENT = load("850_multi_st_pipe.edi")


def lines(text: str) -> list[str]:
    return text.split("~")[:-1]


def test_clean_interchange_gets_an_all_accepted_997_per_group() -> None:
    received = parse(load("850_multi_gs_5010_crlf.edi"))
    out = generate_997(received, MemoryControlNumbers(start=40), now=NOW)
    assert out == (
        "ISA*00*          *00*          *ZZ*ACMEDIST       *08*9252710000     *240312*0700*^*00501"
        "*000000040*0*T*:~\r\n"
        "GS*FA*ACMEDIST*NORTHSTARGROC*20240312*0700*40*X*005010~\r\n"
        "ST*997*0040~\r\n"
        "AK1*PO*88*005010~\r\n"
        "AK2*850*880001~\r\nAK5*A~\r\n"
        "AK2*850*880002~\r\nAK5*A~\r\n"
        "AK9*A*2*2*2~\r\n"
        "SE*8*0040~\r\n"
        "ST*997*0041~\r\n"
        "AK1*PO*89*005010~\r\n"
        "AK2*850*890001~\r\nAK5*A~\r\n"
        "AK9*A*1*1*1~\r\n"
        "SE*6*0041~\r\n"
        "GE*2*40~\r\n"
        "IEA*1*000000040~\r\n"
    )


def test_element_and_count_errors_become_ak3_ak4_ak5_and_partial_ak9() -> None:
    bad = SENT.replace("PO1|2|120|", "PO1|2|12O|", 1).replace("SE|23|0002", "SE|22|0002")
    received = parse(bad, strict=False)
    out = generate_997(received, MemoryControlNumbers(), now=NOW)
    assert lines(out)[2:-2] == [
        "ST|997|0001",
        "AK1|PO|4502",
        "AK2|850|0001",
        "AK3|PO1|20||8",  # PO1 is the 20th segment of set 0001 (ST = 1)
        "AK4|2||6|12O",  # PO102, invalid character, copy of the bad data
        "AK5|R|5",
        "AK2|850|0002",
        "AK5|R|4",  # number of included segments does not match
        "AK2|850|0003",
        "AK5|A",
        "AK9|P|3|3|1",
        "SE|12|0001",
    ]
    # The 997 goes back with the roles swapped and the partner's delimiters.
    ack = parse(out)
    assert (ack["interchange"]["sender_id"], ack["interchange"]["receiver_id"]) == (
        "ACMEDIST",
        "078742000000",
    )
    assert ack["interchange"]["delimiters"]["element"] == "|"


def test_unknown_segment_missing_se_and_group_errors() -> None:
    bad = (
        SENT.replace("FOB|PP~", "FOB|PP~ZZZ|1~", 1)
        .replace("SE|23|0001~", "SE|24|0001~")
        .replace("SE|24|0003~", "")
        .replace("GE|3|4502", "GE|4|4502")
    )
    received = parse(bad, strict=False)
    out = generate_997(received, MemoryControlNumbers(), now=NOW)
    assert lines(out)[3:-3] == [
        "AK1|PO|4502",
        "AK2|850|0001",
        "AK3|ZZZ|8||6",  # segment not in defined transaction set
        "AK5|R|5",
        "AK2|850|0002",
        "AK5|A",
        "AK2|850|0003",
        "AK5|R|2",  # transaction set trailer missing
        "AK9|R|4|3|1|5",  # group rejected: GE01 does not match the set count
    ]


def test_include_accepted_false_lists_only_rejected_sets() -> None:
    bad = SENT.replace("SE|23|0002", "SE|23|0009")
    received = parse(bad, strict=False)
    out = generate_997(received, MemoryControlNumbers(), now=NOW, include_accepted=False)
    assert lines(out)[3:-3] == ["AK1|PO|4502", "AK2|850|0002", "AK5|R|3", "AK9|P|3|3|2"]


def test_bad_data_containing_an_outbound_delimiter_is_not_copied() -> None:
    bad = SENT.replace("PO1|2|120|", "PO1|2|1*0|", 1)
    received = parse(bad, strict=False)
    out = generate_997(received, MemoryControlNumbers(), now=NOW, delimiters={"element": "*"})
    assert "AK4*2**6~" in out.replace("\n", "")


def test_997_groups_are_never_acknowledged() -> None:
    with pytest.raises(X12Error, match="nothing to acknowledge"):
        generate_997(parse(load("997_accepted.edi")), MemoryControlNumbers())


def test_mixed_interchange_gets_one_997_per_group() -> None:
    received = parse(load("mixed_outbound.edi"))
    ack = parse(generate_997(received, MemoryControlNumbers(), now=NOW))
    (group,) = ack["groups"]
    assert group["functional_id"] == "FA"
    assert [
        (t["ak1"]["functional_id"], t["ak1"]["group_control_number"], t["ak9"]["status"])
        for t in group["transactions"]
    ] == [("PR", "7703", "A"), ("SH", "9303", "A"), ("IN", "6603", "A")]


def test_correlate_received_997_with_errors() -> None:
    (result,) = correlate_997(parse(load("997_rejected.edi")))
    assert {k: v for k, v in result.items() if k != "sets"} == {
        "functional_id": "IN",
        "group_control_number": "6602",
        "status": "partially_accepted",
        "code": "P",
        "accepted": False,
        "codes": [],
        "partner": "01:078742000000",
        "ack_control_number": "0001",
    }
    assert [
        (s["control_number"], s["status"], s["accepted"], s["codes"]) for s in result["sets"]
    ] == [("0001", "accepted", True, []), ("0002", "rejected", False, ["5"])]
    assert [e["segment_id"] for e in result["sets"][1]["errors"]] == ["IT1", "ZZZ"]


def test_correlate_multi_997_fills_unlisted_sets_from_what_we_sent() -> None:
    sent_invoices = parse(load("810_multi_st_caret.edi"))
    # Pretend the invoices went to Northstar as group 6605 (third 997 in the sample).
    sent_invoices["interchange"]["receiver_qualifier"] = "08"
    sent_invoices["interchange"]["receiver_id"] = "9252710000"
    sent_invoices["groups"][0]["control_number"] = "6605"
    results = correlate_997(parse(load("997_multi_5010_pipe.edi")), sent=[sent_invoices])
    assert [
        (r["functional_id"], r["group_control_number"], r["status"], r["matched"]) for r in results
    ] == [
        ("PR", "5120", "accepted", False),
        ("SH", "5133", "rejected", False),
        ("IN", "6605", "rejected", True),
    ]
    assert results[1]["sets"][0]["errors"][0]["ak4"] == [
        {"position": 2, "component": 1, "code": "7", "value": "9"}
    ]
    assert [(s["control_number"], s["status"], s["implicit"]) for s in results[2]["sets"]] == [
        ("0001", "rejected", True),
        ("0002", "rejected", True),
    ]


def test_generated_997_correlates_back_to_what_was_sent() -> None:
    sent = parse(SENT)
    received = parse(SENT.replace("PO1|2|120|", "PO1|2|12O|", 1), strict=False)
    ack = parse(generate_997(received, MemoryControlNumbers(), now=NOW))
    (result,) = correlate_997(ack, sent=[sent])
    assert result["matched"] is True
    assert result["partner"] == "ZZ:ACMEDIST"
    assert [(s["control_number"], s["accepted"]) for s in result["sets"]] == [
        ("0001", False),
        ("0002", True),
        ("0003", True),
    ]


def test_accepted_997_without_ak2_implies_every_sent_set_accepted() -> None:
    sent = parse(SENT)
    ack = parse(generate_997(parse(SENT), MemoryControlNumbers(), now=NOW, include_accepted=False))
    assert [s[0] for s in ack["groups"][0]["transactions"][0]["segments"]] == [
        "ST",
        "AK1",
        "AK9",
        "SE",
    ]
    (result,) = correlate_997(ack, sent=[sent])
    assert result["status"] == "accepted"
    assert [(s["control_number"], s["accepted"], s["implicit"]) for s in result["sets"]] == [
        ("0001", True, True),
        ("0002", True, True),
        ("0003", True, True),
    ]


def test_correlation_ignores_interchanges_sent_to_other_partners() -> None:
    sent = parse(SENT)
    sent["interchange"]["receiver_id"] = "SOMEONEELSE"
    ack = parse(generate_997(parse(SENT), MemoryControlNumbers(), now=NOW))
    (result,) = correlate_997(ack, sent=[sent])
    assert result["matched"] is False
