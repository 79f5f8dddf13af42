"""Malformed interchanges: each error names the segment number and element exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.x12 import X12Error, parse

SAMPLES = Path(__file__).parent / "samples"


def load(name: str) -> str:
    with open(SAMPLES / name, encoding="ascii", newline="") as fh:
        return fh.read()


# 850_single.edi: ISA=1, GS=2, ST=3, BEG=4, …, FOB=9, PO1 line 2 = 22, CTT=28,
# SE=29 (SE01 = 27), GE=30, IEA=31.
PO = load("850_single.edi")


def mutate(old: str, new: str, text: str = PO) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


CASES = {
    "se_count": (
        mutate("SE*27*0001", "SE*26*0001"),
        "segment 29 (SE), element SE01: SE01 says '26' segments, transaction set has 27",
        (29, "SE", 1),
    ),
    "se_control": (
        mutate("SE*27*0001", "SE*27*0002"),
        "segment 29 (SE), element SE02: SE02 '0002' does not match ST02 '0001'",
        (29, "SE", 2),
    ),
    "ge_count": (
        mutate("GE*1*4501", "GE*2*4501"),
        "segment 30 (GE), element GE01: GE01 says '2' transaction sets, group has 1",
        (30, "GE", 1),
    ),
    "ge_control": (
        mutate("GE*1*4501", "GE*1*4502"),
        "segment 30 (GE), element GE02: GE02 '4502' does not match GS06 '4501'",
        (30, "GE", 2),
    ),
    "iea_count": (
        mutate("IEA*1*", "IEA*2*"),
        "segment 31 (IEA), element IEA01: IEA01 says '2' groups, interchange has 1",
        (31, "IEA", 1),
    ),
    "iea_control": (
        mutate("IEA*1*000004501", "IEA*1*000004502"),
        "segment 31 (IEA), element IEA02: IEA02 '000004502' does not match ISA13 '000004501'",
        (31, "IEA", 2),
    ),
    "no_iea": (
        PO[: PO.index("IEA")],
        "segment 31 (IEA): IEA missing: interchange truncated after segment 30",
        (31, "IEA", None),
    ),
    "cut_inside_last_segment": (
        PO[: PO.index("IEA") + 6],
        "segment 31 (IEA): segment is not terminated by '~' (interchange truncated)",
        (31, "IEA", None),
    ),
    "isa_element_too_short": (
        mutate("ACMEDIST       *", "ACMEDIST      *"),
        "segment 1 (ISA), element ISA08: ISA08 must be 15 characters, found 14 characters; "
        "ISA must be 106 characters",
        (1, "ISA", 8),
    ),
    "isa_element_too_long": (
        mutate("*240311*0815*", "*20240311*0815*"),
        "segment 1 (ISA), element ISA09: ISA09 must be 6 characters, found 8 characters; "
        "ISA must be 106 characters",
        (1, "ISA", 9),
    ),
    "isa_truncated": (
        PO[:80],
        "segment 1 (ISA): ISA is 80 characters, expected 106 (interchange truncated)",
        (1, "ISA", None),
    ),
    "not_isa": (
        "GS*" + PO[3:],
        "segment 1 (ISA): interchange must start with ISA, found 'GS*'",
        (1, "ISA", None),
    ),
    "isa_control_not_numeric": (
        mutate("*000004501*0*P*>", "*00000450A*0*P*>"),
        "segment 1 (ISA), element ISA13: must be numeric, found '00000450A'",
        (1, "ISA", 13),
    ),
    "unknown_segment": (
        mutate("FOB*PP~\n", "FOB*PP~\nZZZ*1~\n").replace("SE*27*", "SE*28*"),
        "segment 10 (ZZZ): segment ZZZ is not defined for transaction set 850",
        (10, "ZZZ", None),
    ),
    "invalid_segment_id": (
        mutate("FOB*PP", "fob*PP"),
        "segment 9 (fob): unrecognized segment id 'fob'",
        (9, "fob", None),
    ),
    "non_numeric_quantity": (
        mutate("PO1*2*120*", "PO1*2*12O*"),
        "segment 22 (PO1), element PO102: expected a decimal number, found '12O'",
        (22, "PO1", 2),
    ),
    "non_numeric_price": (
        mutate("*3.15*PE*", "*3,15*PE*"),
        "segment 22 (PO1), element PO104: expected a decimal number, found '3,15'",
        (22, "PO1", 4),
    ),
    "non_numeric_ctt_count": (
        mutate("CTT*4*214", "CTT*4X*214"),
        "segment 28 (CTT), element CTT01: expected a whole number, found '4X'",
        (28, "CTT", 1),
    ),
    "invalid_date": (
        mutate("BEG*00*SA*4500012345**20240311", "BEG*00*SA*4500012345**2024031"),
        "segment 4 (BEG), element BEG05: expected a date CCYYMMDD or YYMMDD, found '2024031'",
        (4, "BEG", 5),
    ),
    "non_numeric_terms_days": (
        mutate("ITD*01*3*2**10**30", "ITD*01*3*2**10**NET30"),
        "segment 10 (ITD), element ITD07: expected a whole number, found 'NET30'",
        (10, "ITD", 7),
    ),
    "missing_se": (
        mutate("SE*27*0001~\n", ""),
        "segment 29 (SE): SE missing for transaction set '0001' that starts at segment 3",
        (29, "SE", None),
    ),
    "missing_ge": (
        mutate("GE*1*4501~\n", ""),
        "segment 30 (GE): GE missing for group '4501' that starts at segment 2",
        (30, "GE", None),
    ),
    "segment_after_iea": (
        PO + "GS*PO~\n",
        "segment 32 (GS): segment after IEA",
        (32, "GS", None),
    ),
    "segment_outside_set": (
        mutate("ST*850*0001~\n", ""),
        "segment 3 (BEG): segment outside a transaction set",
        (3, "BEG", None),
    ),
    "group_control_not_numeric": (
        mutate("*0815*4501*X*", "*0815*45O1*X*").replace("GE*1*4501", "GE*1*45O1"),
        "segment 2 (GS), element GS06: group control number must be numeric, found '45O1'",
        (2, "GS", 6),
    ),
}


#: Every message starts by naming the interchange: its ISA13, or its place in the file
#: (#1) when its ISA is too broken to read ISA13 from.
INTERCHANGE = {"isa_truncated": "#1", "not_isa": "#1", "isa_control_not_numeric": "00000450A"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_strict_parse_names_segment_and_element(case: str) -> None:
    text, message, (index, seg_id, element) = CASES[case]
    with pytest.raises(X12Error) as info:
        parse(text)
    err = info.value
    assert str(err) == f"interchange {INTERCHANGE.get(case, '000004501')}, {message}"
    assert (err.segment_index, err.segment_id, err.element_index) == (index, seg_id, element)


def test_missing_se_between_two_sets_points_at_the_next_st() -> None:
    text = load("850_multi_st_pipe.edi").replace("SE|23|0001~", "")
    with pytest.raises(X12Error) as info:
        parse(text)
    assert str(info.value) == (
        "interchange 000004502, segment 25 (SE): SE missing for transaction set '0001' that "
        "starts at segment 3"
    )


def test_missing_isa16_is_not_guessed_around() -> None:
    text = load("850_multi_st_pipe.edi").replace("|P|>~", "|P|~", 1)
    with pytest.raises(X12Error) as info:
        parse(text)
    assert str(info.value) == (
        "interchange 000004502, segment 1 (ISA), element ISA16: ISA16 (component separator) is "
        "missing: found '~' where ISA16 belongs and 'G' where the segment terminator belongs; "
        "the ISA is 105 characters, ISA must be 106 characters"
    )


def test_delimiter_collision_in_isa_is_rejected() -> None:
    text = PO.replace("*P*>~", "*P***", 1)
    with pytest.raises(X12Error) as info:
        parse(text)
    assert info.value.segment_index == 1
    assert info.value.element_index == 16
    assert "delimiters must be single distinct characters" in str(info.value)


def test_lenient_parse_collects_every_error_with_its_location() -> None:
    text = mutate("PO1*2*120*", "PO1*2*12O*")
    text = text.replace("FOB*PP~\n", "FOB*PP~\nZZZ*1~\n").replace("GE*1*4501", "GE*3*4501")
    doc = parse(text, strict=False)
    got = [
        (
            e["message"],
            e["level"],
            e["code"],
            e["group_index"],
            e["transaction_index"],
            e["set_position"],
        )
        for e in doc["errors"]
    ]
    assert got == [
        (
            "interchange 000004501, segment 10 (ZZZ): segment ZZZ is not defined for "
            "transaction set 850",
            "segment",
            "6",
            0,
            0,
            8,
        ),
        (
            "interchange 000004501, segment 30 (SE), element SE01: SE01 says '27' segments, "
            "transaction set has 28",
            "set",
            "4",
            0,
            0,
            28,
        ),
        (
            "interchange 000004501, segment 23 (PO1), element PO102: expected a decimal "
            "number, found '12O'",
            "element",
            "6",
            0,
            0,
            21,
        ),
        (
            "interchange 000004501, segment 31 (GE), element GE01: GE01 says '3' transaction "
            "sets, group has 1",
            "group",
            "5",
            0,
            None,
            None,
        ),
    ]
    # The bad value is kept as text so nothing is lost; the rest still parses.
    lines = doc["groups"][0]["transactions"][0]["lines"]
    assert [line["qty"] for line in lines] == ["48", "12O", "36", "10"]


def test_unknown_segment_strictness_is_configurable() -> None:
    text = mutate("FOB*PP~\n", "FOB*PP~\nZZZ*1~\n").replace("SE*27*", "SE*28*")
    with pytest.raises(X12Error):
        parse(text)
    widened = parse(text, extra_segments={"850": ["ZZZ"]})
    assert ["ZZZ", "1"] in widened["groups"][0]["transactions"][0]["segments"]
    unchecked = parse(text, check_segments=False)
    assert unchecked["groups"] == widened["groups"]


def test_sets_without_typed_view_are_not_dictionary_checked() -> None:
    text = PO.replace("ST*850*0001", "ST*943*0001")
    doc = parse(text)
    tx = doc["groups"][0]["transactions"][0]
    assert tx["set"] == "943"
    assert set(tx) == {"set", "control_number", "segments"}


def test_x12error_to_dict_is_json_ready() -> None:
    with pytest.raises(X12Error) as info:
        parse(mutate("SE*27*0001", "SE*26*0001"))
    assert info.value.to_dict() == {
        "message": "interchange 000004501, segment 29 (SE), element SE01: SE01 says '26' "
        "segments, transaction set has 27",
        "segment_index": 29,
        "segment_id": "SE",
        "element_index": 1,
        "component_index": None,
        "level": "set",
        "code": "4",
        "value": "26",
        "group_index": 0,
        "transaction_index": 0,
        "set_position": 27,
        "interchange": "000004501",
    }
