"""Byte-exact parse → render round trips and delimiter handling of connectors.x12."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.x12 import X12Error, parse, render

SAMPLES = Path(__file__).parent / "samples"
ALL = sorted(p.name for p in SAMPLES.glob("*.edi"))


def load(name: str) -> str:
    # newline="" keeps \r\n as written: the round trip is about exact bytes.
    with open(SAMPLES / name, encoding="ascii", newline="") as fh:
        return fh.read()


def test_at_least_three_samples_per_set() -> None:
    counts: dict[str, int] = {}
    for name in ALL:
        doc = parse(load(name))
        sets = {tx["set"] for g in doc["groups"] for tx in g["transactions"]}
        for set_id in sets:
            counts[set_id] = counts.get(set_id, 0) + 1
    assert {k: v >= 3 for k, v in counts.items()} == dict.fromkeys(
        ["810", "846", "850", "855", "856", "860", "940", "945", "997"], True
    )


@pytest.mark.parametrize("name", ALL)
def test_parse_render_is_byte_exact(name: str) -> None:
    text = load(name)
    doc = parse(text)
    assert render(doc) == text


@pytest.mark.parametrize("name", ALL)
def test_document_survives_json_and_renders_the_same(name: str) -> None:
    text = load(name)
    doc = json.loads(json.dumps(parse(text)))
    assert render(doc) == text
    assert parse(render(doc)) == doc


@pytest.mark.parametrize("name", ALL)
def test_samples_have_no_errors_when_parsed_leniently(name: str) -> None:
    assert parse(load(name), strict=False)["errors"] == []


# name → (element, component, repetition, segment terminator, suffix, trailing)
DELIMITERS = {
    "850_single.edi": ("*", ">", None, "~", "\n", "\n"),
    "850_multi_st_pipe.edi": ("|", ">", None, "~", "", ""),
    "850_multi_gs_5010_crlf.edi": ("*", ":", "^", "~", "\r\n", "\r\n"),
    "855_multi_st.edi": ("*", ">", None, "~", "\n", ""),
    "855_gs_separators_5010.edi": ("\x1d", "\x1f", "\x1e", "\x1c", "", ""),
    "856_multi_st_pipe.edi": ("|", "\\", None, "~", "\r\n", "\r\n"),
    "856_soi_caret.edi": ("^", "\\", None, "~", "", ""),
    "810_multi_st_caret.edi": ("^", "\\", None, "~", "\n", ""),
    "810_5010_ctrl_chars.edi": ("\x1d", "\x1f", "\x1e", "\x1c", "\n", "\n"),
    "997_rejected.edi": ("*", ">", None, "~", "", "\n"),
    "997_multi_5010_pipe.edi": ("|", ":", "^", "~", "\r\n", "\r\n"),
}


@pytest.mark.parametrize("name", sorted(DELIMITERS))
def test_delimiters_are_read_from_isa(name: str) -> None:
    interchange = parse(load(name))["interchange"]
    element, component, repetition, segment, suffix, trailing = DELIMITERS[name]
    assert interchange["delimiters"] == {
        "element": element,
        "component": component,
        "repetition": repetition,
        "segment": segment,
        "suffix": suffix,
    }
    assert interchange["trailing"] == trailing


def test_multi_gs_multi_st_structure() -> None:
    doc = parse(load("850_multi_gs_5010_crlf.edi"))
    groups = doc["groups"]
    assert [(g["sender"], g["control_number"]) for g in groups] == [
        ("NORTHSTARGROC", "88"),
        ("NORTHSTARHDWE", "89"),
    ]
    assert [[tx["control_number"] for tx in g["transactions"]] for g in groups] == [
        ["880001", "880002"],
        ["890001"],
    ]
    assert doc["interchange"]["version"] == "00501"
    assert doc["interchange"]["usage_indicator"] == "T"


def test_mixed_functional_groups_keep_their_sets() -> None:
    doc = parse(load("mixed_outbound.edi"))
    assert [(g["functional_id"], [t["set"] for t in g["transactions"]]) for g in doc["groups"]] == [
        ("PR", ["855"]),
        ("SH", ["856"]),
        ("IN", ["810"]),
    ]


def test_interchange_named_fields() -> None:
    interchange = parse(load("856_sopi.edi"))["interchange"]
    named = {k: v for k, v in interchange.items() if k not in ("isa", "iea", "delimiters")}
    assert named == {
        "auth_qualifier": "00",
        "auth_info": "",
        "security_qualifier": "00",
        "security_info": "",
        "sender_qualifier": "ZZ",
        "sender_id": "ACMEDIST",
        "receiver_qualifier": "01",
        "receiver_id": "078742000000",
        "date": "240318",
        "time": "1425",
        "standards_id": "U",
        "version": "00401",
        "control_number": "000009301",
        "ack_requested": True,
        "usage_indicator": "P",
        "trailing": "\n",
    }
    assert interchange["iea"] == ["IEA", "1", "000009301"]


def test_group_named_fields() -> None:
    group = parse(load("810_single.edi"))["groups"][0]
    named = {k: v for k, v in group.items() if k not in ("gs", "ge", "transactions")}
    assert named == {
        "functional_id": "IN",
        "sender": "ACMEDIST",
        "receiver": "078742000000",
        "date": "20240320",
        "time": "1700",
        "control_number": "6601",
        "agency": "X",
        "version": "004010",
    }
    assert group["ge"] == ["GE", "1", "6601"]


def test_components_are_lists_in_generic_segments() -> None:
    doc = parse(load("850_multi_st_pipe.edi"))
    segments = doc["groups"][0]["transactions"][2]["segments"]
    ref = next(s for s in segments if s[0] == "REF" and s[1] == "CT")
    assert ref == ["REF", "CT", "CNTR-2024-07", "", ["VN", "884210"]]


def test_ctrl_char_delimiters_split_components() -> None:
    doc = parse(load("855_gs_separators_5010.edi"))
    segments = doc["groups"][0]["transactions"][0]["segments"]
    assert segments[2] == ["REF", "CO", "NS-77120", "", ["PO", "NS-77120"]]
    # ISA11 and ISA16 are the separators themselves and stay unsplit.
    assert doc["interchange"]["isa"][11] == "\x1e"
    assert doc["interchange"]["isa"][16] == "\x1f"


REPEATS = (
    "ISA*00*          *00*          *ZZ*ACMEDIST       *ZZ*PARTNER        *240101*1200*^*00501"
    "*000000001*0*P*:~\n"
    "GS*SH*ACMEDIST*PARTNER*20240101*1200*1*X*005010~\n"
    "ST*856*0001~\n"
    "BSN*00*S1*20240101*1200~\n"
    "HL*1**S~\n"
    "REF*ZZ*A^B:C^~\n"
    "REF*ZZ*X:~\n"
    "REF*ZZ*^~\n"
    "SE*7*0001~\n"
    "GE*1*1~\n"
    "IEA*1*000000001~\n"
)


def test_repetitions_and_empty_components_round_trip() -> None:
    # REF02 does not repeat, so the split is reported (a warning when lenient, an error
    # when strict); the generic segments keep it so that rendering is still exact.
    doc = parse(REPEATS, strict=False)
    assert [w["value"] for w in doc["warnings"]] == ["A^B:C^", "^"]
    segments = doc["groups"][0]["transactions"][0]["segments"]
    assert segments[3] == ["REF", "ZZ", {"repeat": ["A", ["B", "C"], ""]}]
    assert segments[4] == ["REF", "ZZ", ["X", ""]]
    assert segments[5] == ["REF", "ZZ", {"repeat": ["", ""]}]
    assert render(doc) == REPEATS


def test_version_00401_has_no_repetition_separator() -> None:
    text = REPEATS.replace("*^*00501*", "*U*00401*")
    doc = parse(text)
    assert doc["interchange"]["delimiters"]["repetition"] is None
    assert doc["interchange"]["standards_id"] == "U"
    # "^" is ordinary data before 00402; ":" still separates components.
    assert doc["groups"][0]["transactions"][0]["segments"][3] == ["REF", "ZZ", ["A^B", "C^"]]
    assert render(doc) == text


def test_editing_delimiters_redelimits_the_document() -> None:
    text = load("850_single.edi")
    doc = parse(text)
    doc["interchange"]["delimiters"] = {
        "element": "|",
        "component": "\\",
        "repetition": None,
        "segment": "\x1c",
        "suffix": "",
    }
    doc["interchange"]["trailing"] = ""
    out = render(doc)
    assert out.startswith("ISA|00|          |00|")
    assert out[103:106] == "|\\\x1c"
    assert "\n" not in out
    again = parse(out)
    assert again["groups"] == parse(text)["groups"]


def test_render_refuses_a_value_containing_a_delimiter() -> None:
    doc = parse(load("850_single.edi"))
    segments = doc["groups"][0]["transactions"][0]["segments"]
    segments[1][3] = "PO*123"  # BEG03, segment 4 of the interchange
    with pytest.raises(X12Error) as info:
        render(doc)
    assert str(info.value) == (
        "segment 4 (BEG), element BEG03: value 'PO*123' contains the delimiter '*'"
    )


def test_render_recount_fixes_counts_after_editing() -> None:
    text = load("850_single.edi")
    doc = parse(text)
    tx = doc["groups"][0]["transactions"][0]
    tx["segments"].insert(-1, ["AMT", "TT", "4079.64"])
    with pytest.raises(X12Error) as info:
        parse(render(doc))
    assert str(info.value) == (
        "interchange 000004501, segment 30 (SE), element SE01: SE01 says '27' segments, "
        "transaction set has 28"
    )
    fixed = parse(render(doc, recount=True))
    assert fixed["groups"][0]["transactions"][0]["segments"][-1] == ["SE", "28", "0001"]


def test_render_pads_isa_fields_edited_without_padding() -> None:
    doc = parse(load("850_single.edi"))
    doc["interchange"]["isa"][8] = "NEWPARTNER"  # ISA08, 15 wide
    out = render(doc)
    assert out[51:70] == "ZZ*NEWPARTNER     *"
    assert len(out.split("~", 1)[0]) + 1 == 106
