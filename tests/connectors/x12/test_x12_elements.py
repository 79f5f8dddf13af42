"""The element dictionary: mandatory elements, lengths, types and element counts of the typed
sets, per version, raised when strict, collected for the 997 when lenient."""

from __future__ import annotations

import pytest

from connectors.x12 import MemoryControlNumbers, X12Error, build_interchange, generate_997, parse
from connectors.x12.elements import dictionary

BODY_940 = ["W05*N*D-1", "N1*ST*SHOP*92*S1", "LX*1", "W01*1*EA**VN*A", "W76*1"]


def interchange(body: list[str], version: str = "004010", set_id: str = "940",
                fid: str = "OW") -> str:
    isa_version = "00501" if version >= "005010" else version[:5]
    lines = [
        "ISA*00*          *00*          *ZZ*PARTNER        *ZZ*ACMEDIST       *261207*1200*"
        f"{'^' if version >= '005010' else 'U'}*{isa_version}*000000902*0*P*>",
        f"GS*{fid}*PARTNER*ACMEDIST*20261207*1200*902*X*{version}",
        f"ST*{set_id}*0001", *body, f"SE*{len(body) + 2}*0001", "GE*1*902", "IEA*1*000000902"]
    return "~\n".join(lines) + "~\n"


def with_segment(old: str, new: str, body: list[str] = BODY_940) -> list[str]:
    return [new if line == old else line for line in body]


@pytest.mark.parametrize(("old", "new", "element", "code", "words"), [
    ("W05*N*D-1", "W05*N", "W0502", "1", "mandatory element missing"),
    ("W05*N*D-1", "W05*N*" + "D" * 23, "W0502", "5", "at most 22 characters, found 23"),
    ("N1*ST*SHOP*92*S1", "N1*ST*SHOP*92*S", "N104", "4", "at least 2 characters, found 1"),
    ("W01*1*EA**VN*A", "W01*1*EACH**VN*A", "W0102", "5", "at most 2 characters, found 4"),
    ("W01*1*EA**VN*A", "W01*ONE*EA**VN*A", "W0101", "6", "expected a decimal number"),
    ("W76*1", "W76*1.234567890123456", "W7601", "5", "at most 15 characters, found 16"),
    ("LX*1", "LX*1*2", "LX02", "3", "LX has 1 elements, found 2"),
])
def test_an_element_that_breaks_the_dictionary_fails_a_strict_parse_located(
        old: str, new: str, element: str, code: str, words: str) -> None:
    with pytest.raises(X12Error) as info:
        parse(interchange(with_segment(old, new)))
    assert f"element {element}: {words}" in str(info.value)
    assert (info.value.level, info.value.code) == ("element", code)


def test_dates_times_and_implied_decimals_are_checked_by_type() -> None:
    body = ["W06*F*D-1*2026-12-07", "LX*1", "W12*CC*1*1**EA**VN*A", "W03*1"]
    with pytest.raises(X12Error, match="W0603: expected a date CCYYMMDD") as info:
        parse(interchange(body, set_id="945", fid="SW"))
    assert info.value.code == "8"
    body = ["W05*N*D-1", "W66*PP*M*******1O.00", "LX*1", "W01*1*EA**VN*A", "W76*1"]
    with pytest.raises(X12Error, match=r"W6609: expected a whole number \(2 implied decimals\)"):
        parse(interchange(body))


def test_a_lenient_parse_collects_each_bad_element_once_and_the_997_rejects_with_ak4() -> None:
    body = with_segment("W01*1*EA**VN*A", "W01*ONE*EACH**VN*A")
    doc = parse(interchange(body), strict=False)
    # W0101 is reported once, though both the dictionary and the typed view read it
    assert [(e["segment_id"], e["element_index"], e["code"]) for e in doc["errors"]] == [
        ("W01", 1, "6"), ("W01", 2, "5")]
    ack = parse(generate_997(doc, MemoryControlNumbers()))
    (ack_tx,) = ack["groups"][0]["transactions"]
    assert (ack_tx["ak9"]["status"], ack_tx["ak2"][0]["ak5"]["status"]) == ("R", "R")
    (ak3,) = ack_tx["ak2"][0]["ak3"]
    assert (ak3["segment_id"], ak3["position"]) == ("W01", 5)
    assert [(a["position"], a["code"], a["value"]) for a in ak3["ak4"]] == [
        (1, "6", "ONE"), (2, "5", "EACH")]


def test_005010_allows_the_longer_reference_ids_004010_does_not() -> None:
    body = list(BODY_940)
    body.insert(2, "N9*CO*" + "R" * 40)
    parse(interchange(body, "005010"))
    with pytest.raises(X12Error, match="N902: at most 30 characters, found 40"):
        parse(interchange(body, "004010"))
    with pytest.raises(X12Error, match="N902: at most 30 characters"):
        parse(interchange(body, "004030"))  # 004030 is checked with the 004010 table


def test_check_elements_false_and_older_versions_skip_the_dictionary() -> None:
    body = with_segment("W05*N*D-1", "W05*N*" + "D" * 23)
    tx = parse(interchange(body), check_elements=False)["groups"][0]["transactions"][0]
    assert tx["w05"]["order_number"] == "D" * 23
    assert dictionary("003060") is None and dictionary("004010") is not None
    parse(interchange(body, "003060"))


def test_every_typed_segment_has_a_sane_definition() -> None:
    table = dictionary("005010VICS")
    assert table is not None and {"W05", "W12", "BIA", "POC", "BEG", "AK4"} <= set(table)
    for seg, elements in table.items():
        for n, element in enumerate(elements, 1):
            assert element.requirement in ("M", "O", "X"), (seg, n)
            if element.kind != "C":
                assert 0 <= element.min_length <= element.max_length, (seg, n)
    assert table["REF"][1].max_length == 50 and dictionary("004010")["REF"][1].max_length == 30


def test_a_view_too_long_for_the_standard_is_refused_before_it_is_sent() -> None:
    view = {"set": "940", "w05": {"status": "N", "order_number": "DELIVERY-" + "9" * 20},
            "lx": [{"items": [{"qty": 1, "uom": "EA", "product_ids": {"VN": "A"}}]}]}
    with pytest.raises(X12Error, match="W0502: at most 22 characters, found 29"):
        build_interchange([view], sender="ZZ:A", receiver="ZZ:B",
                          control_numbers=MemoryControlNumbers())


# -- syntax notes: the conditional (X) elements, checked together --------------------------

@pytest.mark.parametrize(("old", "new", "element", "code", "words"), [
    # R0203: a party needs a name or an id
    ("N1*ST*SHOP*92*S1", "N1*ST", "N102", "2",
     "at least one of N102 or N103 is required (R0203)"),
    # P0304: an id qualifier without the id
    ("N1*ST*SHOP*92*S1", "N1*ST*SHOP*92", "N104", "2",
     "N103 and N104 go together (P0304): N104 is missing"),
    # P0304 the other way: an id without its qualifier
    ("N1*ST*SHOP*92*S1", "N1*ST*SHOP**S1", "N103", "2",
     "N103 and N104 go together (P0304): N103 is missing"),
    # P0304 of G62: a time qualifier without the time
    ("W76*1", "G62*10*20261207*8~W76*1", "G6204", "2",
     "G6203 and G6204 go together (P0304): G6204 is missing"),
])
def test_a_broken_syntax_note_fails_a_strict_parse_at_the_element_it_misses(
        old: str, new: str, element: str, code: str, words: str) -> None:
    body = [part for line in with_segment(old, new) for part in line.split("~")]
    with pytest.raises(X12Error) as info:
        parse(interchange(body))
    assert f"element {element}: {words}" in str(info.value)
    assert (info.value.level, info.value.code) == ("element", code)


def test_an_exclusion_is_reported_at_the_second_element_with_ak403_10() -> None:
    body = ["BIA*00*SI*INV-1*20261207", "LIN**VN*A", "QTY*33*5*EA*FIVE"]
    with pytest.raises(X12Error) as info:
        parse(interchange(body, set_id="846", fid="IB"))
    assert "element QTY04: only one of QTY02 or QTY04 may be present (E0204)" in str(info.value)
    assert info.value.code == "10"
    doc = parse(interchange(["BIA*00*SI*INV-1*20261207", "LIN**VN*A", "QTY*33"],
                            set_id="846", fid="IB"), strict=False)
    assert [(e["segment_id"], e["element_index"], e["code"]) for e in doc["errors"]] == [
        ("QTY", 2, "2")]


def test_syntax_notes_that_hold_pass_and_a_lenient_997_rejects_with_one_ak4_per_note() -> None:
    good = with_segment("W76*1", "G62*10*20261207~N9*LI*10~N9*CO**CHANNEL ORDER~W76*1")
    parse(interchange([p for line in good for p in line.split("~")]))
    bad = with_segment("N1*ST*SHOP*92*S1", "N1*ST*SHOP*92~N9*LI")
    doc = parse(interchange([p for line in bad for p in line.split("~")]), strict=False)
    assert [(e["segment_id"], e["element_index"], e["code"]) for e in doc["errors"]] == [
        ("N1", 4, "2"), ("N9", 2, "2")]
    ack = parse(generate_997(doc, MemoryControlNumbers()))
    (ack_tx,) = ack["groups"][0]["transactions"]
    assert ack_tx["ak2"][0]["ak5"]["status"] == "R"
    assert [(a["segment_id"], [(k["position"], k["code"]) for k in a["ak4"]])
            for a in ack_tx["ak2"][0]["ak3"]] == [("N1", [(4, "2")]), ("N9", [(2, "2")])]
