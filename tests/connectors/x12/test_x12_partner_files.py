"""Interchanges as real partners send them (samples/partners/): padded counts, the 004030
segment list, several interchanges in one file, whitespace between segments, a missing ISA16,
the repetition separator inside values, wrapped lines, newline terminators and Latin-1."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.x12 import MemoryControlNumbers, X12Error, generate_997, parse, render

PARTNERS = Path(__file__).parent / "samples" / "partners"
NOW = datetime(2025, 2, 10, 9, 0)


def load(name: str, encoding: str = "ascii") -> str:
    with open(PARTNERS / name, encoding=encoding, newline="") as fh:
        return fh.read()


def first_tx(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["groups"][0]["transactions"][0]


def strict_error(text: str, **options: Any) -> str:
    with pytest.raises(X12Error) as info:
        parse(text, **options)
    return str(info.value)


# --- zero-padded counts and control numbers ----------------------------------------

PADDED = load("850_004030_mtx_padded_counts.edi")


def test_zero_padded_counts_and_control_numbers_are_numbers() -> None:
    doc = parse(PADDED)
    assert doc["errors"] == []
    tx = first_tx(doc)
    assert tx["segments"][-1] == ["SE", "0000000018", "0001"]
    assert doc["groups"][0]["control_number"] == "000000317"
    assert doc["groups"][0]["ge"] == ["GE", "000001", "317"]
    assert doc["interchange"]["iea"] == ["IEA", "00001", "000000317"]
    assert tx["beg"]["po_number"] == "PO-88213"
    assert [(ln["qty"], ln["unit_price"]) for ln in tx["lines"]] == [("24", "18.45"),
                                                                     ("10", "32.1")]
    assert render(doc) == PADDED


def test_a_padded_count_that_is_wrong_is_still_an_error() -> None:
    assert strict_error(PADDED.replace("SE*0000000018", "SE*0000000017")) == (
        "interchange 000000317, segment 20 (SE), element SE01: SE01 says '0000000017' "
        "segments, transaction set has 18"
    )
    assert strict_error(PADDED.replace("GE*000001*317", "GE*000001*318")) == (
        "interchange 000000317, segment 21 (GE), element GE02: GE02 '318' does not match "
        "GS06 '000000317'"
    )


def test_the_997_for_a_padded_interchange_accepts_it() -> None:
    ack = generate_997(parse(PADDED, strict=False), MemoryControlNumbers(start=5), now=NOW)
    assert "AK2*850*0001~\r\nAK5*A~\r\nAK9*A*1*1*1~" in ack
    assert "AK5*R" not in ack


# --- the segment list follows GS08; partners' extra segments ------------------------


def test_mtx_is_an_850_segment_from_004030_on() -> None:
    tx = first_tx(parse(PADDED))
    notes = [seg[2] for seg in tx["segments"] if seg[0] == "MTX"]
    assert notes == ["DELIVER TO DOCK 4 BETWEEN 0600 AND 1400",
                     "CALL 24 HOURS AHEAD FOR APPOINTMENT", "KEEP DRY"]
    assert parse(PADDED.replace("*X*004030~", "*X*005010~"))["errors"] == []
    assert strict_error(PADDED.replace("*X*004030~", "*X*004010~")) == (
        "interchange 000000317, segment 9 (MTX): segment MTX is not defined for transaction "
        "set 850"
    )


def test_extra_segments_widen_one_set_or_every_set() -> None:
    older = PADDED.replace("*X*004030~", "*X*004010~")
    for extra in ({"850": ["MTX"]}, {"*": ["MTX"]}):
        assert first_tx(parse(older, extra_segments=extra))["beg"]["po_number"] == "PO-88213"
    with pytest.raises(X12Error):
        parse(older, extra_segments={"855": ["MTX"]})


# --- several interchanges in one file ------------------------------------------------

VAN = load("van_three_interchanges.edi")


def test_every_interchange_of_a_van_file_is_read_with_its_own_delimiters() -> None:
    doc = parse(VAN)
    assert doc["errors"] == [] and doc["warnings"] == []
    ones = doc["interchanges"]
    assert [one["interchange"]["control_number"] for one in ones] == [
        "000000905", "000000906", "000000907"]
    assert [one["interchange"]["sender_id"] for one in ones] == [
        "043218888", "NORDICTEXTILES", "GREENLEAFFARMS"]
    assert [(d["element"], d["segment"], d["suffix"]) for d in
            (one["interchange"]["delimiters"] for one in ones)] == [
        ("*", "~", "\n"), ("|", "~", "\r\n"), ("\x1d", "\x1c", "")]
    po, asn, invoice = (first_tx(one) for one in ones)
    assert po["beg"]["po_number"] == "7731-4410"
    assert po["lines"][0]["product_ids"] == {"UP": "012345678905"}
    assert asn["bsn"]["shipment_id"] == "SH-55120"
    assert asn["shipment"]["refs"] == [{"qualifier": "BM", "value": "BOL55120"}]
    assert asn["shipment"]["orders"][0]["prf"] == {"po_number": "PO-88213"}
    assert invoice["big"]["invoice_number"] == "GF-2207"
    assert invoice["tds"]["total"] == "382.50"
    assert render(doc) == VAN


def test_a_single_interchange_keeps_its_shape() -> None:
    doc = parse(PADDED)
    assert set(doc) == {"interchange", "groups", "errors", "warnings"}


def test_a_997_per_interchange_acknowledges_every_group_read() -> None:
    ack = parse(generate_997(parse(VAN, strict=False), MemoryControlNumbers(start=60), now=NOW))
    answers = ack["interchanges"]
    # each 997 goes back to the sender of the interchange it acknowledges
    assert [a["interchange"]["receiver_id"] for a in answers] == [
        "043218888", "NORDICTEXTILES", "GREENLEAFFARMS"]
    assert [first_tx(a)["ak1"]["group_control_number"] for a in answers] == ["905", "906", "907"]
    assert [first_tx(a)["ak9"]["status"] for a in answers] == ["A", "A", "A"]


def test_an_error_in_the_second_interchange_is_named_and_rejected_there_only() -> None:
    bad = VAN.replace("SN1||40|EA", "SN1||4O|EA")
    assert strict_error(bad) == (
        "interchange 000000906, segment 13 (SN1), element SN102: expected a decimal number, "
        "found '4O'"
    )
    answers = parse(generate_997(parse(bad, strict=False), MemoryControlNumbers(), now=NOW))
    statuses = [first_tx(a)["ak2"][0]["ak5"]["status"] for a in answers["interchanges"]]
    assert statuses == ["A", "R", "A"]


def test_an_interchange_without_iea_before_the_next_isa_fails_the_file() -> None:
    cut = VAN.replace("IEA*1*000000905~\n", "")
    message = strict_error(cut, strict=False)
    assert message == (
        "interchange 000000905, segment 11 (IEA): IEA missing: interchange truncated after "
        "segment 10"
    )


# --- whitespace between segments, a missing ISA16 -------------------------------------

SPACED = load("850_whitespace_between_segments.edi")


def test_spaces_tabs_and_blank_lines_between_segments_are_not_data() -> None:
    doc = parse(SPACED)
    assert doc["errors"] == []
    assert doc["groups"][0]["gs"][:2] == ["GS", "PO"]
    tx = first_tx(doc)
    assert tx["beg"]["po_number"] == "CH-5521"
    assert tx["n1"]["ST"]["name"] == "CORNER HARDWARE 3"
    assert [ln["line_number"] for ln in tx["lines"]] == ["1", "2"]
    assert tx["ctt"] == {"line_count": 2, "hash_total": "7"}


@pytest.mark.parametrize(("text", "message"), [
    (PADDED.replace("*P*:~", "*P*~", 1),
     "ISA16 (component separator) is missing: found '~', which also ends the next segment, "
     "then a line break; the ISA is 105 characters, ISA must be 106 characters"),
    (load("855_newline_terminated_caret.edi").replace("^P^>\n", "^P^\n", 1),
     "ISA16 (component separator) is missing: the ISA ends with a line break after 104 "
     "characters; ISA must be 106 characters"),
    (load("850_wrapped_80_columns.edi").replace("\r\n", "").replace("*P*>~", "*P*~", 1),
     "ISA16 (component separator) is missing: found '~' where ISA16 belongs and 'G' where the "
     "segment terminator belongs; the ISA is 105 characters, ISA must be 106 characters"),
], ids=["tilde_then_crlf", "newline_terminator", "tilde_then_gs"])
def test_a_missing_isa16_is_reported_at_the_isa(text: str, message: str) -> None:
    with pytest.raises(X12Error) as info:
        parse(text, strict=False)
    assert (info.value.segment_index, info.value.segment_id, info.value.element_index) == (
        1, "ISA", 16)
    assert str(info.value).endswith(f"segment 1 (ISA), element ISA16: {message}")


# --- repetition separator inside values -------------------------------------------------

DASHES = load("856_00406_repetition_in_values.edi")


def test_a_repetition_separator_in_a_value_is_an_error_when_strict() -> None:
    assert strict_error(DASHES) == (
        "interchange 000000412, segment 7 (REF), element REF02: '999999-001' holds the "
        "repetition separator '-' (ISA11) but REF02 does not repeat; the whole text is kept as "
        "its value"
    )


def test_a_repetition_separator_in_a_value_keeps_the_whole_value_when_lenient() -> None:
    doc = parse(DASHES, strict=False)
    assert doc["errors"] == []
    assert [(w["segment_id"], w["element_index"], w["value"]) for w in doc["warnings"]] == [
        ("REF", 2, "999999-001"), ("N4", 3, "31139-0020"), ("PRF", 1, "PO-88213"),
        ("LIN", 3, "PS-4410")]
    shipment = first_tx(doc)["shipment"]
    assert shipment["refs"] == [{"qualifier": "BM", "value": "999999-001"}]
    assert shipment["n1"]["SF"]["postal_code"] == "31139-0020"
    order = shipment["orders"][0]
    assert order["prf"]["po_number"] == "PO-88213"
    assert order["items"][0]["lin"]["product_ids"] == {"VP": "PS-4410"}
    assert render(doc) == DASHES  # the generic segments still render the file as it was


# --- wrapped lines -------------------------------------------------------------------------

WRAPPED = load("850_wrapped_80_columns.edi")


def test_a_wrapped_file_fails_at_its_isa_with_a_hint() -> None:
    assert strict_error(WRAPPED) == (
        "interchange 000000051, segment 1 (ISA): ISA is broken by a line break after 80 "
        "characters (wrapped at 80 columns?); ISA must be 106 characters on one line: set "
        "unwrap: true on the x12 step to join wrapped lines"
    )


def test_unwrap_joins_a_file_wrapped_at_80_columns() -> None:
    doc = parse(WRAPPED, unwrap=True)
    assert doc["groups"] == parse(WRAPPED.replace("\r\n", ""))["groups"]
    tx = first_tx(doc)
    assert tx["beg"]["po_number"] == "4500099120"
    assert tx["n1"]["ST"]["id"] == "6094"  # "*92" / "*6094" straddle a line break
    assert [ln["product_ids"]["VP"] for ln in tx["lines"]] == ["ACM-PT-0412", "ACM-DS-1001"]
    # files that are not wrapped are read exactly as without the option
    for text in (PADDED, VAN, SPACED):
        assert parse(text, unwrap=True) == parse(text)


def test_unwrap_joins_an_isa_broken_over_two_lines() -> None:
    doc = parse(load("810_isa_over_two_lines.edi"), unwrap=True)
    assert doc["interchange"]["receiver_id"] == "CORNERHW"
    assert doc["interchange"]["delimiters"]["suffix"] == "\n"
    assert first_tx(doc)["big"]["invoice_number"] == "INV-40117"


# --- newline terminators, Latin-1 ----------------------------------------------------------


def test_newline_as_segment_terminator_with_caret_elements() -> None:
    text = load("855_newline_terminated_caret.edi")
    doc = parse(text)
    assert doc["interchange"]["delimiters"] == {
        "element": "^", "component": ">", "repetition": None, "segment": "\n", "suffix": ""}
    tx = first_tx(doc)
    assert (tx["bak"]["po_number"], tx["bak"]["reference_id"]) == ("7731-4410", "SO-20931")
    assert [ln["acks"][0]["status"] for ln in tx["lines"]] == ["IA", "IB"]
    assert render(doc) == text


def test_latin1_names_read_right() -> None:
    tx = first_tx(parse(load("850_latin1_accented.edi", encoding="latin-1")))
    assert tx["contacts"][0]["name"] == "HÉLÈNE CÔTÉ"
    assert tx["n1"]["ST"]["name"] == "ÉPICERIE FINE GÉRARD"
    assert tx["n1"]["ST"]["city"] == "MONTRÉAL"
    assert [ln["description"] for ln in tx["lines"]] == ["CAFÉ MOULU 1 KG",
                                                         "CRÈME BRÛLÉE 120 G"]


def test_a_component_separator_in_a_simple_element_is_part_of_the_value() -> None:
    text = PADDED.replace("PAPER TOWELS 6 ROLL", "PAPER TOWELS: 6 ROLL").replace(
        "N1*ST*RIVERBEND GROCERY DC 12", "N1*ST*RIVERBEND: DC 12")
    doc = parse(text)
    tx = first_tx(doc)
    assert tx["lines"][0]["description"] == "PAPER TOWELS: 6 ROLL"
    assert tx["n1"]["ST"]["name"] == "RIVERBEND: DC 12"
    assert ["PID", "F", "", "", "", ["PAPER TOWELS", " 6 ROLL"]] in tx["segments"]
    assert render(doc) == text


# --- TA1 interchange acknowledgments ---------------------------------------------------------

TA1_ONLY = (
    "ISA*00*          *00*          *ZZ*HILLTOPSUPPLY  *12*8005551234     *250114*0935*U*00403"
    "*000000318*0*P*:~\r\n"
    "TA1*000000317*250114*0932*A*000~\r\n"
    "IEA*0*000000318~\r\n"
)


def test_ta1_acknowledgments_are_kept_at_interchange_level() -> None:
    doc = parse(TA1_ONLY + PADDED)
    alone, with_groups = doc["interchanges"]
    assert alone["interchange"]["ta1"] == [["TA1", "000000317", "250114", "0932", "A", "000"]]
    assert alone["groups"] == [] and doc["errors"] == []
    assert "ta1" not in with_groups["interchange"]
    assert render(doc) == TA1_ONLY + PADDED
    # only the interchange with a group gets a 997
    ack = parse(generate_997(doc, MemoryControlNumbers(), now=NOW))
    assert first_tx(ack)["ak1"]["group_control_number"] == "000000317"


def test_the_855_856_and_810_segment_lists_follow_the_standard_too() -> None:
    ack = load("855_newline_terminated_caret.edi").replace(
        "ACK^IA^12^EA^068^20250210\n", "ACK^IA^12^EA^068^20250210\nMTX^^SHIPS FROM DALLAS\n"
    ).replace("SE^8^0001", "SE^9^0001")
    assert strict_error(ack) == (
        "interchange 000004120, segment 7 (MTX): segment MTX is not defined for transaction "
        "set 855")
    assert parse(ack.replace("^X^004010\n", "^X^004030\n"))["errors"] == []
    invoice = VAN.replace("TDS\x1d38250\x1c", "TDS\x1d38250\x1cAMT\x1dN\x1d382.5\x1c").replace(
        "SE\x1d6\x1d0907", "SE\x1d7\x1d0907")  # AMT after TDS is an 004010 810 segment
    assert parse(invoice)["errors"] == []


def test_a_file_wrapped_wider_than_the_isa_is_not_read_with_line_breaks_in_values() -> None:
    flat = WRAPPED.replace("\r\n", "")
    wide = "\n".join(flat[i : i + 128] for i in range(0, len(flat), 128)) + "\n"
    message = strict_error(wide)
    assert message.startswith("interchange 000000051, segment ")
    assert message.endswith(": a line break inside the segment (the file wrapped at a fixed "
                            "width?): set unwrap: true on the x12 step to join wrapped lines")
    assert parse(wide, unwrap=True)["groups"] == parse(flat)["groups"]


def test_crlf_lines_in_a_file_whose_isa_ends_with_a_bare_lf() -> None:
    text = load("855_newline_terminated_caret.edi")
    head, rest = text.split("\n", 1)
    doc = parse(head + "\n" + rest.replace("\n", "\r\n"))
    assert doc["errors"] == []
    assert first_tx(doc)["bak"]["ack_date"] == "20250204"


def test_interchanges_terminated_by_newlines_follow_each_other() -> None:
    caret = load("855_newline_terminated_caret.edi")
    twice = caret + "\r\n" + caret.replace("000004120", "000004121")
    doc = parse(twice)
    assert [one["interchange"]["control_number"] for one in doc["interchanges"]] == [
        "000004120", "000004121"]
    assert doc["interchanges"][0]["interchange"]["trailing"] == "\r\n"
    assert render(doc) == twice


def test_values_padded_with_spaces_read_without_the_padding() -> None:
    text = PADDED.replace("PO1*1*24*CA*18.45*PE*", "PO1*1*  24*CA *18.45 *PE*").replace(
        "N1*ST*RIVERBEND GROCERY DC 12*92*0012", "N1*ST*RIVERBEND GROCERY DC 12   *92*0012")
    tx = first_tx(parse(text))
    assert {k: tx["lines"][0][k] for k in ("qty", "uom", "unit_price")} == {
        "qty": "24", "uom": "CA", "unit_price": "18.45"}
    assert tx["n1"]["ST"]["name"] == "RIVERBEND GROCERY DC 12"
    assert ["N1", "ST", "RIVERBEND GROCERY DC 12   ", "92", "0012"] in tx["segments"]
