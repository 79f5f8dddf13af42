"""render_csv and the parse -> render round trip."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from connectors.csv import ColumnSpec, FlatFileErrors, parse_csv, render_csv


def test_plain_columns_header_crlf_and_minimal_quoting() -> None:
    rows: list[dict[str, Any]] = [
        {"sku": "A-1", "name": "Bolt, M6", "qty": 2, "note": 'say "hi"'},
        {"sku": "B-2", "name": "Nut\nlarge", "qty": None, "note": ""},
    ]
    assert render_csv(rows, columns=["sku", "name", "qty", "note"]) == (
        'sku,name,qty,note\r\nA-1,"Bolt, M6",2,"say ""hi"""\r\nB-2,"Nut\nlarge",,\r\n'
    )


def test_columns_select_and_order_output_and_missing_keys_are_empty() -> None:
    rows = [{"b": 1, "a": 2, "ignored": 3}, {"a": 4}]
    assert render_csv(rows, columns=["a", "b"], header=False, line_terminator="\n") == "2,1\n4,\n"


def test_untyped_values_use_natural_text_forms() -> None:
    row = {
        "flag": True,
        "amount": Decimal("19.90"),
        "ratio": 0.1,
        "day": date(2024, 5, 17),
        "at": datetime(2024, 5, 17, 14, 30, tzinfo=UTC),
    }
    assert render_csv([row], columns=list(row), header=False) == (
        "true,19.90,0.1,2024-05-17,2024-05-17T14:30:00+00:00\r\n"
    )


def test_semicolon_and_tab_dialects_quote_only_when_needed() -> None:
    rows = [{"sku": "A;1", "name": "x,y"}]
    assert render_csv(rows, columns=["sku", "name"], delimiter=";", header=False) == (
        '"A;1";x,y\r\n'
    )
    assert render_csv(rows, columns=["sku", "name"], delimiter="\t", header=False) == (
        "A;1\tx,y\r\n"
    )


def test_typed_columns_apply_formats() -> None:
    columns = [
        ColumnSpec(name="qty", type="integer"),
        ColumnSpec(name="price", type="decimal", format=","),
        ColumnSpec(name="day", type="date", format="%d.%m.%Y"),
        ColumnSpec(name="active", type="boolean", format="J/N"),
        ColumnSpec(name="at", type="datetime", format="%Y%m%d%H%M"),
    ]
    rows: list[dict[str, Any]] = [
        {
            "qty": "3",
            "price": "12.5",
            "day": "2024-05-17",
            "active": True,
            "at": "2024-05-17T08:05:00",
        },
        {
            "qty": 4.0,
            "price": 0.1,
            "day": date(2024, 1, 2),
            "active": "n",
            "at": datetime(2024, 1, 2, 3, 4),
        },
    ]
    assert render_csv(rows, columns=columns, delimiter=";", header=False) == (
        "3;12,5;17.05.2024;J;202405170805\r\n4;0,1;02.01.2024;N;202401020304\r\n"
    )


def test_render_errors_are_collected_with_row_and_column() -> None:
    columns = [
        ColumnSpec(name="sku", required=True),
        ColumnSpec(name="qty", type="integer"),
        ColumnSpec(name="day", type="date"),
    ]
    rows: list[dict[str, Any]] = [
        {"sku": "A", "qty": 1, "day": "2024-05-17"},
        {"sku": None, "qty": 1.5, "day": "17.05.2024"},
        {"sku": "C", "qty": True, "day": datetime(2024, 5, 17, 1, 2)},
    ]
    with pytest.raises(FlatFileErrors) as excinfo:
        render_csv(rows, columns=columns)
    assert [(e.row, e.column) for e in excinfo.value.errors] == [
        (3, "sku"),
        (3, "qty"),
        (3, "day"),
        (4, "qty"),
        (4, "day"),
    ]


def test_nested_values_are_rejected_for_plain_columns() -> None:
    with pytest.raises(FlatFileErrors) as excinfo:
        render_csv([{"sku": "A", "lines": [1, 2]}], columns=["sku", "lines"], header=False)
    assert [(e.row, e.column) for e in excinfo.value.errors] == [(1, "lines")]
    assert "cannot write a list" in excinfo.value.errors[0].message


def test_non_mapping_row_is_an_error() -> None:
    with pytest.raises(FlatFileErrors) as excinfo:
        render_csv([{"a": 1}, ["a"]], columns=["a"])  # type: ignore[list-item]
    assert [(e.row, e.column) for e in excinfo.value.errors] == [(3, None)]


def test_render_configuration_errors() -> None:
    with pytest.raises(ValueError, match="at least one column"):
        render_csv([], columns=[])
    with pytest.raises(ValueError, match="duplicate"):
        render_csv([], columns=["a", ColumnSpec(name="a")])


ROUND_TRIP_COLUMNS = [
    ColumnSpec(name="order_id", required=True),
    ColumnSpec(name="sku", required=True),
    ColumnSpec(name="description"),
    ColumnSpec(name="qty", type="integer", required=True),
    ColumnSpec(name="unit_price", type="decimal"),
    ColumnSpec(name="ship_date", type="date"),
    ColumnSpec(name="created_at", type="datetime"),
    ColumnSpec(name="gift", type="boolean"),
]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_round_trip_parse_render_parse(delimiter: str) -> None:
    rows: list[dict[str, Any]] = [
        {
            "order_id": "5698823442601",
            "sku": "TSHIRT-BLK-M",
            "description": 'T-shirt "Classic", black;\nsize M',
            "qty": 2,
            "unit_price": "19.90",
            "ship_date": "2024-05-17",
            "created_at": "2024-05-14T09:31:07+02:00",
            "gift": True,
        },
        {
            "order_id": "0042",
            "sku": "MUG|WHT",
            "description": None,
            "qty": -1,
            "unit_price": "0",
            "ship_date": None,
            "created_at": None,
            "gift": False,
        },
    ]
    text = render_csv(rows, columns=ROUND_TRIP_COLUMNS, delimiter=delimiter)
    parsed = parse_csv(text, delimiter=delimiter, columns=ROUND_TRIP_COLUMNS)
    assert parsed == rows
    assert render_csv(parsed, columns=ROUND_TRIP_COLUMNS, delimiter=delimiter) == text


def test_round_trip_of_a_raw_file_is_byte_identical() -> None:
    text = 'sku,name,qty\r\nA,"Smith, John",1\r\nB,"multi\r\nline",2\r\nC,,3\r\n'
    rows = parse_csv(text)
    assert render_csv(rows, columns=["sku", "name", "qty"]) == text
