"""Files that end every line with the delimiter (``A;1;``), read and written.

Reading needs no option: an empty last field beyond the declared columns, and a nameless last
header column, carry no data and are dropped. A value there, or a nameless column in the
middle, stays an error, so a column never shifts silently. Writing such a file is
``trailing_delimiter: true``.
"""

from __future__ import annotations

import pytest
import yaml

from connectors.csv import (
    ColumnSpec,
    CsvParseConfig,
    CsvRenderConfig,
    FlatFileErrors,
    parse_csv,
    render_csv,
)

COLUMNS = [ColumnSpec(name="sku", required=True), ColumnSpec(name="qty", type="integer")]


def messages(excinfo: pytest.ExceptionInfo[FlatFileErrors]) -> list[tuple[int | None, str]]:
    return [(error.row, error.message) for error in excinfo.value.errors]


def test_no_header_every_line_ending_with_the_delimiter_needs_no_phantom_column() -> None:
    text = "A-1;3;\r\nB-2;;\r\nC-3;7;\r\n"
    assert parse_csv(text, delimiter=";", header=False, columns=COLUMNS) == [
        {"sku": "A-1", "qty": 3},
        {"sku": "B-2", "qty": None},  # the real last column empty, then the trailing one
        {"sku": "C-3", "qty": 7},
    ]


def test_no_header_a_value_after_the_last_column_is_an_error_not_a_shift() -> None:
    with pytest.raises(FlatFileErrors) as excinfo:
        parse_csv("A-1;3;\r\nB-2;4;late\r\n", delimiter=";", header=False, columns=COLUMNS)
    assert messages(excinfo) == [(2, "expected 2 fields, found 3")]


def test_header_ending_with_the_delimiter_names_no_column() -> None:
    text = "sku;qty;\r\nA-1;3;\r\nB-2;4;\r\n"
    assert parse_csv(text, delimiter=";") == [
        {"sku": "A-1", "qty": "3"},
        {"sku": "B-2", "qty": "4"},
    ]
    assert parse_csv(text, delimiter=";", columns=COLUMNS) == [
        {"sku": "A-1", "qty": 3},
        {"sku": "B-2", "qty": 4},
    ]


def test_header_with_a_trailing_delimiter_still_rejects_data_in_that_column() -> None:
    with pytest.raises(FlatFileErrors) as excinfo:
        parse_csv("sku;qty;\r\nA-1;3;\r\nB-2;4;x\r\n", delimiter=";", columns=COLUMNS)
    assert messages(excinfo) == [(3, "expected 2 fields, found 3")]


def test_a_nameless_header_column_in_the_middle_stays_an_error() -> None:
    with pytest.raises(FlatFileErrors) as excinfo:
        parse_csv("sku;;qty\r\nA-1;x;3\r\n", delimiter=";")
    assert messages(excinfo) == [(1, "header column 2 has no name")]


def test_render_with_trailing_delimiter_ends_every_line_header_included() -> None:
    rows = [{"sku": "A-1", "qty": 3}, {"sku": "B-2", "qty": None}]
    assert render_csv(rows, columns=["sku", "qty"], delimiter=";", trailing_delimiter=True) == (
        "sku;qty;\r\nA-1;3;\r\nB-2;;\r\n"
    )
    assert render_csv(rows, columns=["sku"], header=False, trailing_delimiter=True,
                      line_terminator="\n") == "A-1,\nB-2,\n"


def test_render_without_the_option_writes_no_trailing_delimiter() -> None:
    rows = [{"sku": "A-1", "qty": 3}]
    assert render_csv(rows, columns=["sku", "qty"], header=False) == "A-1,3\r\n"


def test_trailing_delimiter_round_trips_through_the_yaml_config() -> None:
    render = CsvRenderConfig.model_validate(yaml.safe_load(
        "{delimiter: pipe, header: false, trailing_delimiter: true, columns: [sku, qty]}"))
    parse = CsvParseConfig.model_validate(yaml.safe_load(
        "{delimiter: pipe, header: false, columns: [{name: sku}, {name: qty, type: integer}]}"))
    text = render.render([{"sku": "A-1", "qty": 3}, {"sku": "B|2", "qty": 4}])
    assert text == 'A-1|3|\r\n"B|2"|4|\r\n'
    assert parse.parse(text) == [{"sku": "A-1", "qty": 3}, {"sku": "B|2", "qty": 4}]
