"""Fixed-width records: single layout, header/detail/trailer dispatch, padding, truncation."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from connectors.csv import FixedField, FlatFileErrors, parse_fixed_width, render_fixed_width

# A supplier price/stock file: header (H), detail lines (D), trailer (T) with a record count.
LAYOUTS = {
    "H": [
        FixedField(name="record_code", start=1, length=1),
        FixedField(name="sender", start=2, length=10, required=True),
        FixedField(name="file_date", start=12, length=8, type="date", format="%Y%m%d"),
    ],
    "D": [
        FixedField(name="sku", start=2, length=12, required=True),
        FixedField(name="qty", start=14, length=6, type="integer", pad="0"),
        FixedField(name="price", start=20, length=9, type="decimal", pad="0", implied_decimals=2),
        FixedField(name="uom", start=29, length=3),
        FixedField(name="active", start=32, length=1, type="boolean", format="Y/N"),
    ],
    "T": [
        FixedField(name="record_count", start=2, length=6, type="integer", pad="0", required=True),
    ],
}

PARTNER_FILE = (
    "HNORDICTEX 20240517\r\n"
    "DTSHIRT-BLK-M000240000001999EA Y\r\n"
    "DYARN-WOOL   000012000003120KGMN\r\n"
    "T000002\r\n"
)

PARSED: list[dict[str, Any]] = [
    {"record_type": "H", "record_code": "H", "sender": "NORDICTEX", "file_date": "2024-05-17"},
    {
        "record_type": "D",
        "sku": "TSHIRT-BLK-M",
        "qty": 240,
        "price": "19.99",
        "uom": "EA",
        "active": True,
    },
    {
        "record_type": "D",
        "sku": "YARN-WOOL",
        "qty": 12,
        "price": "31.20",
        "uom": "KGM",
        "active": False,
    },
    {"record_type": "T", "record_count": 2},
]


def test_parse_header_detail_trailer_by_record_type() -> None:
    assert parse_fixed_width(PARTNER_FILE, layouts=LAYOUTS) == PARSED


def test_render_header_detail_trailer_reproduces_the_partner_file() -> None:
    assert render_fixed_width(PARSED, layouts=LAYOUTS) == PARTNER_FILE


def test_round_trip_from_bytes_with_lf_line_endings() -> None:
    data = PARTNER_FILE.replace("\r\n", "\n").encode("latin-1")
    rows = parse_fixed_width(data, layouts=LAYOUTS, encoding="latin-1")
    assert rows == PARSED
    assert render_fixed_width(rows, layouts=LAYOUTS, line_terminator="\n") == data.decode()


def test_record_type_is_written_even_without_a_field_for_it() -> None:
    out = render_fixed_width([{"record_type": "T", "record_count": 7}], layouts=LAYOUTS)
    assert out == "T000007\r\n"


def test_record_type_field_must_match_the_code() -> None:
    with pytest.raises(FlatFileErrors) as excinfo:
        render_fixed_width(
            [{"record_type": "H", "record_code": "X", "sender": "ACME"}], layouts=LAYOUTS
        )
    assert excinfo.value.errors[0].row == 1
    assert "expected 'H'" in excinfo.value.errors[0].message


def test_unknown_record_type_is_reported_per_line() -> None:
    text = "HNORDICTEX 20240517\nX garbage\nT000000\nZ\n"
    with pytest.raises(FlatFileErrors) as excinfo:
        parse_fixed_width(text, layouts=LAYOUTS)
    assert [(e.row, e.message) for e in excinfo.value.errors] == [
        (2, "unknown record type 'X'"),
        (4, "unknown record type 'Z'"),
    ]


def test_field_errors_are_collected_with_line_and_field() -> None:
    text = (
        "HNORDICTEX 20241301\n"
        "D            0000x2000000100EA Y\n"
        "DOK          000001000000100EA Q\n"
        "T\n"
    )
    with pytest.raises(FlatFileErrors) as excinfo:
        parse_fixed_width(text, layouts=LAYOUTS)
    assert [(e.row, e.column) for e in excinfo.value.errors] == [
        (1, "file_date"),
        (2, "sku"),
        (2, "qty"),
        (3, "active"),
        (4, "record_count"),
    ]


def test_short_lines_are_padded_and_long_lines_rejected() -> None:
    fields = [FixedField(name="sku", start=1, length=5), FixedField(name="name", start=6, length=5)]
    assert parse_fixed_width("AB\nCDE  xy\n", fields) == [
        {"sku": "AB", "name": None},
        {"sku": "CDE", "name": "xy"},
    ]
    assert parse_fixed_width("AB        \n", fields) == [{"sku": "AB", "name": None}]
    with pytest.raises(FlatFileErrors) as excinfo:
        parse_fixed_width("ABCDEFGHIJK\n", fields)
    assert excinfo.value.errors[0].message == "line has 11 characters, the layout ends at 10"


def test_alignment_and_padding_rules() -> None:
    fields = [
        FixedField(name="code", start=1, length=6),  # string: left, space padded
        FixedField(name="ref", start=7, length=6, align="right", pad="0"),  # zero-filled string
        FixedField(name="qty", start=13, length=5, type="integer"),  # number: right, spaces
        FixedField(name="delta", start=18, length=5, type="integer", pad="0"),
        FixedField(name="amount", start=23, length=8, type="decimal", pad="0"),
        FixedField(name="label", start=31, length=5, align="right"),
    ]
    row = {
        "code": "AB",
        "ref": "123",
        "qty": 42,
        "delta": -12,
        "amount": Decimal("-3.5"),
        "label": "x",
    }
    line = render_fixed_width([row], fields, line_terminator="\n")
    assert line == "AB    000123   42-0012-00003.5    x\n"
    assert parse_fixed_width(line, fields) == [
        {"code": "AB", "ref": "123", "qty": 42, "delta": -12, "amount": "-3.5", "label": "x"}
    ]


def test_gaps_between_fields_are_spaces_and_lines_have_full_width() -> None:
    fields = [FixedField(name="a", start=3, length=2), FixedField(name="b", start=8, length=3)]
    assert render_fixed_width([{"a": "X"}], fields, line_terminator="\n") == "  X" + " " * 7 + "\n"


def test_zero_filled_zero_is_zero_not_blank() -> None:
    fields = [
        FixedField(name="qty", start=1, length=4, type="integer", pad="0"),
        FixedField(name="price", start=5, length=6, type="decimal", pad="0", implied_decimals=2),
    ]
    assert parse_fixed_width("0000000000\n", fields) == [{"qty": 0, "price": "0.00"}]
    blank = parse_fixed_width("          \n", fields, skip_blank_lines=False)
    assert blank == [{"qty": None, "price": None}]
    assert render_fixed_width([{"qty": 0, "price": "0"}], fields, line_terminator="\n") == (
        "0000000000\n"
    )


def test_truncation_is_an_error_not_silent() -> None:
    fields = [
        FixedField(name="sku", start=1, length=5),
        FixedField(name="qty", start=6, length=3, type="integer", pad="0"),
        FixedField(name="price", start=9, length=5, type="decimal", implied_decimals=2),
    ]
    rows: list[dict[str, Any]] = [
        {"sku": "SHORT", "qty": 999, "price": "999.99"},
        {"sku": "TOOLONG", "qty": 1000, "price": "1000.00"},
        {"sku": "OK", "qty": 1, "price": "1.005"},
    ]
    with pytest.raises(FlatFileErrors) as excinfo:
        render_fixed_width(rows, fields)
    assert [(e.row, e.column, e.message) for e in excinfo.value.errors] == [
        (2, "sku", "value 'TOOLONG' is 7 characters, the field holds 5"),
        (2, "qty", "value '1000' is 4 characters, the field holds 3"),
        (2, "price", "value '100000' is 6 characters, the field holds 5"),
        (3, "price", "'1.005' has more than 2 decimal places"),
    ]


def test_render_required_and_type_errors_are_collected() -> None:
    rows: list[dict[str, Any]] = [
        {"record_type": "D", "sku": None, "qty": "many", "price": "1.00", "active": "maybe"},
        {"record_type": "Q"},
        {"record_type": "T", "record_count": None},
    ]
    with pytest.raises(FlatFileErrors) as excinfo:
        render_fixed_width(rows, layouts=LAYOUTS)
    assert [(e.row, e.column) for e in excinfo.value.errors] == [
        (1, "sku"),
        (1, "qty"),
        (1, "active"),
        (2, "record_type"),
        (3, "record_count"),
    ]


def test_single_layout_without_record_type_key() -> None:
    fields = [
        FixedField(name="sku", start=1, length=4),
        FixedField(name="qty", start=5, length=3, type="integer"),
    ]
    rows = parse_fixed_width("AB    7\nCD   12\n", fields)
    assert rows == [{"sku": "AB", "qty": 7}, {"sku": "CD", "qty": 12}]
    assert "record_type" not in rows[0]


def test_custom_record_type_key_and_multi_character_codes() -> None:
    layouts = {
        "HDR": [FixedField(name="batch", start=4, length=3, type="integer", pad="0")],
        "DTL": [FixedField(name="sku", start=4, length=4)],
    }
    rows = parse_fixed_width("HDR007\nDTLA1\n", layouts=layouts, record_type_key="kind")
    assert rows == [{"kind": "HDR", "batch": 7}, {"kind": "DTL", "sku": "A1"}]
    assert (
        render_fixed_width(rows, layouts=layouts, record_type_key="kind", line_terminator="\n")
        == "HDR007\nDTLA1  \n"
    )


def test_form_feed_inside_a_record_does_not_split_it() -> None:
    fields = [FixedField(name="text", start=1, length=5)]
    assert parse_fixed_width("a\x0cb  \n", fields) == [{"text": "a\x0cb"}]


@pytest.mark.parametrize(
    "fields, message",
    [
        (
            [FixedField(name="a", start=1, length=3), FixedField(name="b", start=3, length=2)],
            "overlap",
        ),
        (
            [FixedField(name="a", start=1, length=1), FixedField(name="a", start=2, length=1)],
            "duplicate",
        ),
        ([], "at least one field"),
    ],
)
def test_invalid_layouts_are_configuration_errors(fields: list[FixedField], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fixed_width("x\n", fields)


def test_layout_codes_must_have_equal_length_and_arguments_are_exclusive() -> None:
    field = FixedField(name="a", start=3, length=1)
    with pytest.raises(ValueError, match="same length"):
        parse_fixed_width("x\n", layouts={"H": [field], "DD": [field]})
    with pytest.raises(ValueError, match="exactly one"):
        parse_fixed_width("x\n", [field], layouts={"H": [field]})
    with pytest.raises(ValueError, match="exactly one"):
        render_fixed_width([])


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "a", "start": 0, "length": 1},
        {"name": "a", "start": 1, "length": 0},
        {"name": "a", "start": 1, "length": 2, "pad": "00"},
        {"name": "a", "start": 1, "length": 2, "implied_decimals": 2},
        {
            "name": "a",
            "start": 1,
            "length": 2,
            "type": "decimal",
            "implied_decimals": 2,
            "format": ",",
        },
        {"name": "a", "start": 1, "length": 2, "offset": 3},
    ],
)
def test_invalid_fixed_fields_are_rejected(spec: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FixedField(**spec)  # type: ignore[arg-type]
