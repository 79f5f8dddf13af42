"""parse_csv: dialects, header handling, typed columns, collected errors, encodings."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.csv import ColumnSpec, FlatFileError, FlatFileErrors, parse_csv

ORDER_COLUMNS = [
    ColumnSpec(name="order_id", required=True),
    ColumnSpec(name="sku", required=True),
    ColumnSpec(name="qty", type="integer", required=True),
    ColumnSpec(name="unit_price", type="decimal"),
    ColumnSpec(name="order_date", type="date"),
    ColumnSpec(name="gift", type="boolean"),
]


def errors_of(excinfo: pytest.ExceptionInfo[FlatFileErrors]) -> list[tuple[int | None, str | None]]:
    return [(error.row, error.column) for error in excinfo.value.errors]


# --- dialects ----------------------------------------------------------------------------------


def test_comma_header_gives_raw_strings() -> None:
    text = "order_id,sku,qty\r\n1001,ABC-1,2\r\n1002,XYZ,10\r\n"
    assert parse_csv(text) == [
        {"order_id": "1001", "sku": "ABC-1", "qty": "2"},
        {"order_id": "1002", "sku": "XYZ", "qty": "10"},
    ]


def test_semicolon_dialect_with_decimal_comma() -> None:
    text = "Artikel;Menge;Preis\nA-1;3;12,50\nB-2;1;0,99\n"
    columns = [
        ColumnSpec(name="Artikel"),
        ColumnSpec(name="Menge", type="integer"),
        ColumnSpec(name="Preis", type="decimal", format=","),
    ]
    assert parse_csv(text, delimiter=";", columns=columns) == [
        {"Artikel": "A-1", "Menge": 3, "Preis": "12.50"},
        {"Artikel": "B-2", "Menge": 1, "Preis": "0.99"},
    ]


def test_tab_dialect_keeps_commas_and_semicolons_in_values() -> None:
    text = "sku\tdescription\nA-1\tBolt, M6; zinc\n"
    assert parse_csv(text, delimiter="\t") == [{"sku": "A-1", "description": "Bolt, M6; zinc"}]


def test_quoted_fields_with_embedded_delimiter_newline_and_quotes() -> None:
    text = (
        "sku,notes,qty\r\n"
        'A-1,"Leave at door, ring twice\r\nthen call","2"\r\n'
        'B-2,"He said ""fragile""",1\r\n'
    )
    rows = parse_csv(text)
    assert rows == [
        {"sku": "A-1", "notes": "Leave at door, ring twice\r\nthen call", "qty": "2"},
        {"sku": "B-2", "notes": 'He said "fragile"', "qty": "1"},
    ]


def test_row_numbers_count_records_not_physical_lines() -> None:
    # The multi-line value is one record (row 2); the broken qty is in row 3.
    text = 'sku,notes,qty\nA,"line one\nline two",1\nB,,x\n'
    with pytest.raises(FlatFileErrors) as excinfo:
        parse_csv(
            text,
            columns=[
                ColumnSpec(name="sku"),
                ColumnSpec(name="notes"),
                ColumnSpec(name="qty", type="integer"),
            ],
        )
    assert errors_of(excinfo) == [(3, "qty")]


def test_custom_quotechar() -> None:
    text = "sku|name\nA|'Smith|Jones'\n"
    assert parse_csv(text, delimiter="|", quotechar="'") == [{"sku": "A", "name": "Smith|Jones"}]


def test_malformed_quoting_is_reported_with_row_and_stops() -> None:
    text = 'sku,name\nA,"ok"\nB,"bad"quote\nC,never reached\n'
    with pytest.raises(FlatFileErrors) as excinfo:
        parse_csv(text)
    assert errors_of(excinfo) == [(3, None)]
    assert "malformed record" in excinfo.value.errors[0].message


def test_unterminated_quote_at_end_of_file() -> None:
    with pytest.raises(FlatFileErrors) as excinfo:
        parse_csv('sku,name\nA,"open\n')
    assert excinfo.value.errors[0].row == 2


@pytest.mark.parametrize(
    "kwargs",
    [{"delimiter": ";;"}, {"delimiter": '"'}, {"quotechar": ""}, {"delimiter": "\n"}],
)
def test_invalid_dialect_is_a_configuration_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_csv("a\n1\n", **kwargs)
    assert not isinstance(excinfo.value, FlatFileError)


# --- header vs declared columns ----------------------------------------------------------------


def test_declared_columns_are_matched_by_name_in_any_order_and_extras_ignored() -> None:
    text = "gift,qty,internal_flag,sku,order_id\nY,2,x,ABC,1001\n"
    rows = parse_csv(text, columns=ORDER_COLUMNS)
    assert rows == [
        {
            "order_id": "1001",
            "sku": "ABC",
            "qty": 2,
            "unit_price": None,
            "order_date": None,
            "gift": True,
        }
    ]
    assert list(rows[0]) == [spec.name for spec in ORDER_COLUMNS]  # declared order


def test_header_names_are_trimmed() -> None:
    assert parse_csv(" sku , qty \nA,1\n") == [{"sku": "A", "qty": "1"}]


def test_missing_required_column_in_header_is_reported_once_not_per_row() -> None:
    text = "order_id,qty\n1,1\n2,2\n3,3\n"
    with pytest.raises(FlatFileErrors) as excinfo:
        parse_csv(text, columns=ORDER_COLUMNS)
    assert errors_of(excinfo) == [(1, "sku")]
    assert excinfo.value.errors[0].message == "required column is missing from the header"


def test_duplicate_and_empty_header_names_are_errors() -> None:
    # (an empty name at the end is a trailing delimiter, see test_flatfile_csv_trailing_delimiter)
    with pytest.raises(FlatFileErrors) as excinfo:
        parse_csv("sku,,qty,sku\nA,x,1,B\n")
    assert errors_of(excinfo) == [(1, None), (1, "sku")]


def test_no_header_uses_declared_columns_by_position() -> None:
    columns = [ColumnSpec(name="sku"), ColumnSpec(name="qty", type="integer")]
    assert parse_csv("A,1\nB,2\n", header=False, columns=columns) == [
        {"sku": "A", "qty": 1},
        {"sku": "B", "qty": 2},
    ]


def test_no_header_row_numbers_start_at_one() -> None:
    columns = [ColumnSpec(name="sku"), ColumnSpec(name="qty", type="integer")]
    with pytest.raises(FlatFileErrors) as excinfo:
        parse_csv("A,x\nB,2\n", header=False, columns=columns)
    assert errors_of(excinfo) == [(1, "qty")]


def test_no_header_without_columns_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="columns are required"):
        parse_csv("A,1\n", header=False)


def test_wrong_field_count_is_an_error_but_trailing_empty_cells_are_tolerated() -> None:
    text = "sku,qty\nA,1,,\nB\nC,3,extra\nD,4\n"
    with pytest.raises(FlatFileErrors) as excinfo:
        parse_csv(text)
    assert errors_of(excinfo) == [(3, None), (4, None)]
    assert [e.message for e in excinfo.value.errors] == [
        "expected 2 fields, found 1",
        "expected 2 fields, found 3",
    ]


def test_blank_lines_are_skipped_but_counted_in_row_numbers() -> None:
    text = "\nsku,qty\n\nA,1\n , \nB,x\n"
    with pytest.raises(FlatFileErrors) as excinfo:
        parse_csv(text, columns=[ColumnSpec(name="sku"), ColumnSpec(name="qty", type="integer")])
    assert errors_of(excinfo) == [(6, "qty")]
    assert parse_csv("sku,qty\n\nA,1\n\n") == [{"sku": "A", "qty": "1"}]


def test_blank_lines_kept_when_not_skipping_trigger_required_checks() -> None:
    columns = [ColumnSpec(name="sku", required=True), ColumnSpec(name="qty", type="integer")]
    with pytest.raises(FlatFileErrors) as excinfo:
        parse_csv("sku,qty\nA,1\n\nB,2\n", columns=columns, skip_blank_lines=False)
    assert errors_of(excinfo) == [(3, "sku")]
    optional = [ColumnSpec(name="sku"), ColumnSpec(name="qty", type="integer")]
    assert parse_csv("sku,qty\nA,1\n\n", columns=optional, skip_blank_lines=False) == [
        {"sku": "A", "qty": 1},
        {"sku": None, "qty": None},
    ]


def test_empty_file_gives_no_rows() -> None:
    assert parse_csv("") == []
    assert parse_csv("sku,qty\r\n") == []


# --- typed columns -----------------------------------------------------------------------------


def test_typed_values_are_json_friendly() -> None:
    text = (
        "order_id,sku,qty,unit_price,order_date,gift\n"
        "00123,ABC,+3, 19.90 ,2024-05-17,no\n"
        "9007199254740993,XYZ,-1,.5,2024-02-29,1\n"
    )
    assert parse_csv(text, columns=ORDER_COLUMNS) == [
        {
            "order_id": "00123",
            "sku": "ABC",
            "qty": 3,
            "unit_price": "19.90",
            "order_date": "2024-05-17",
            "gift": False,
        },
        {
            "order_id": "9007199254740993",
            "sku": "XYZ",
            "qty": -1,
            "unit_price": "0.5",
            "order_date": "2024-02-29",
            "gift": True,
        },
    ]


def test_blank_optional_values_become_none() -> None:
    rows = parse_csv(
        "order_id,sku,qty,unit_price,order_date,gift\n1,A,1,, ,\n", columns=ORDER_COLUMNS
    )
    assert rows[0]["unit_price"] is None
    assert rows[0]["order_date"] is None
    assert rows[0]["gift"] is None


def test_formats_for_dates_datetimes_and_booleans() -> None:
    columns = [
        ColumnSpec(name="day", type="date", format="%d.%m.%Y"),
        ColumnSpec(name="at", type="datetime", format="%Y%m%d%H%M%S"),
        ColumnSpec(name="iso", type="datetime"),
        ColumnSpec(name="active", type="boolean", format="J/N"),
    ]
    text = "day,at,iso,active\n17.05.2024,20240517143005,2024-05-17T14:30:05Z,j\n"
    assert parse_csv(text, columns=columns) == [
        {
            "day": "2024-05-17",
            "at": "2024-05-17T14:30:05",
            "iso": "2024-05-17T14:30:05+00:00",
            "active": True,
        }
    ]


def test_all_type_errors_in_a_file_are_collected_with_row_and_column() -> None:
    text = (
        "order_id,sku,qty,unit_price,order_date,gift\n"
        "1,A,1,1.00,2024-05-17,yes\n"
        "2,,two,1.0.0,2024-13-01,maybe\n"
        "3,C,1.5,1e3,17.05.2024,y\n"
        ",D,0,$5,2024-05-17,n\n"
    )
    with pytest.raises(FlatFileErrors) as excinfo:
        parse_csv(text, columns=ORDER_COLUMNS)
    assert errors_of(excinfo) == [
        (3, "sku"),
        (3, "qty"),
        (3, "unit_price"),
        (3, "order_date"),
        (3, "gift"),
        (4, "qty"),
        (4, "unit_price"),
        (4, "order_date"),
        (5, "order_id"),
        (5, "unit_price"),
    ]
    messages = [error.message for error in excinfo.value.errors]
    assert messages[0] == "required value is missing"
    assert messages[1] == "not an integer: 'two'"
    assert messages[3] == "not a date (YYYY-MM-DD): '2024-13-01'"
    assert str(excinfo.value.errors[1]) == "row 3, column 'qty': not an integer: 'two'"
    assert str(excinfo.value) == "row 3, column 'sku': required value is missing (and 9 more)"
    assert excinfo.value.truncated is False


def test_error_collection_is_capped() -> None:
    lines = ["sku,qty"] + [f"A{i},x" for i in range(150)]
    with pytest.raises(FlatFileErrors) as excinfo:
        parse_csv(
            "\n".join(lines),
            columns=[ColumnSpec(name="sku"), ColumnSpec(name="qty", type="integer")],
        )
    assert len(excinfo.value.errors) == 100
    assert excinfo.value.errors[-1].row == 101
    assert excinfo.value.truncated is True
    assert str(excinfo.value).endswith("(and 99+ more)")


def test_custom_error_cap() -> None:
    with pytest.raises(FlatFileErrors) as excinfo:
        parse_csv("qty\nx\ny\nz\n", columns=[ColumnSpec(name="qty", type="integer")], max_errors=2)
    assert errors_of(excinfo) == [(2, "qty"), (3, "qty")]
    assert excinfo.value.truncated


def test_flatfileerrors_is_a_flatfileerror_and_serialisable() -> None:
    with pytest.raises(FlatFileError) as excinfo:
        parse_csv("qty\nx\n", columns=[ColumnSpec(name="qty", type="integer")])
    assert isinstance(excinfo.value, FlatFileErrors)
    assert (excinfo.value.row, excinfo.value.column) == (2, "qty")
    assert [e.to_dict() for e in excinfo.value.errors] == [
        {"message": "not an integer: 'x'", "row": 2, "column": "qty"}
    ]


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "qty", "type": "integer", "format": "%d"},
        {"name": "price", "type": "decimal", "format": "'"},
        {"name": "flag", "type": "boolean", "format": "Y"},
        {"name": "day", "type": "date", "format": "dd.mm.yyyy"},
        {"name": "x", "type": "float"},
        {"name": ""},
    ],
)
def test_invalid_column_specs_are_rejected(spec: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        ColumnSpec(**spec)  # type: ignore[arg-type]


def test_duplicate_declared_columns_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate column names: sku"):
        parse_csv("sku\nA\n", columns=[ColumnSpec(name="sku"), ColumnSpec(name="sku")])


# --- encodings and BOM -------------------------------------------------------------------------


def test_utf8_bom_is_removed_from_first_header_name() -> None:
    data = "\ufeffsku,name\nA,Müller\n".encode()
    assert parse_csv(data) == [{"sku": "A", "name": "Müller"}]
    assert parse_csv(data, encoding="utf-8-sig") == [{"sku": "A", "name": "Müller"}]


def test_bom_in_already_decoded_text_is_removed() -> None:
    assert parse_csv("\ufeffsku\nA\n") == [{"sku": "A"}]


def test_utf8_bom_wins_over_a_single_byte_encoding() -> None:
    data = "\ufeffsku,name\nA,Müller\n".encode()
    assert parse_csv(data, encoding="cp1252") == [{"sku": "A", "name": "Müller"}]


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-8", "utf-16"])
def test_encodings(encoding: str) -> None:
    text = "sku;name\nA;Größe Café\n"
    assert parse_csv(text.encode(encoding), delimiter=";", encoding=encoding) == [
        {"sku": "A", "name": "Größe Café"}
    ]


def test_cp1252_specific_characters() -> None:
    data = b"sku;price\nA;\x8020 \x93net\x94\n"
    assert parse_csv(data, delimiter=";", encoding="cp1252") == [
        {"sku": "A", "price": "€20 \u201cnet\u201d"}
    ]
    # The same bytes as latin-1 are C1 control characters, not an error.
    assert parse_csv(data, delimiter=";", encoding="latin-1")[0]["price"].startswith("\x80")


def test_undecodable_bytes_report_the_row() -> None:
    data = "sku,name\nA,ok\nB,Müller\n".encode("latin-1")
    with pytest.raises(FlatFileErrors) as excinfo:
        parse_csv(data)
    (error,) = excinfo.value.errors
    assert error.row == 3
    assert "0xFC" in error.message and "utf-8" in error.message


def test_unknown_encoding_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="unknown encoding"):
        parse_csv(b"a\n1\n", encoding="klingon")
