"""Step configuration models: what the YAML under ``csv: {parse|render: ...}`` accepts."""

from __future__ import annotations

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from connectors.csv import (
    ColumnSpec,
    CsvParseConfig,
    CsvRenderConfig,
    FixedField,
    FixedWidthConfig,
    FlatFileErrors,
)

PARSE_YAML = """
delimiter: semicolon
encoding: cp1252
columns:
  - {name: sku, required: true}
  - {name: qty, type: integer, required: true}
  - {name: price, type: decimal, format: ","}
  - {name: delivery, type: date, format: "%d.%m.%Y"}
"""

FIXED_YAML = """
layouts:
  H:
    - {name: sender, start: 2, length: 10, required: true}
  D:
    - {name: sku, start: 2, length: 8, required: true}
    - {name: qty, start: 10, length: 5, type: integer, pad: "0"}
  T:
    - {name: count, start: 2, length: 4, type: integer, pad: "0"}
line_terminator: lf
"""


@pytest.mark.parametrize(
    "model", [CsvParseConfig, CsvRenderConfig, FixedWidthConfig, ColumnSpec, FixedField]
)
def test_every_config_field_is_documented(model: type[BaseModel]) -> None:
    undocumented = [name for name, f in model.model_fields.items() if not f.description]
    assert undocumented == []
    assert model.model_config.get("extra") == "forbid"


def test_parse_config_from_yaml_parses_a_cp1252_file() -> None:
    config = CsvParseConfig.model_validate(yaml.safe_load(PARSE_YAML))
    assert config.delimiter == ";"
    assert config.columns is not None and config.columns[1].type == "integer"
    data = "sku;qty;price;delivery\r\nKÄSE-1;3;4,99;20.05.2024\r\n".encode("cp1252")
    assert config.parse(data) == [
        {"sku": "KÄSE-1", "qty": 3, "price": "4.99", "delivery": "2024-05-20"}
    ]


def test_parse_config_reports_file_errors_like_the_function() -> None:
    config = CsvParseConfig.model_validate(yaml.safe_load(PARSE_YAML))
    with pytest.raises(FlatFileErrors) as excinfo:
        config.parse("sku;qty;price;delivery\n;x;1.5;\n")
    assert [(e.row, e.column) for e in excinfo.value.errors] == [
        (2, "sku"),
        (2, "qty"),
        (2, "price"),
    ]


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"delimeter": ";"}, "Extra inputs are not permitted"),
        ({"columns": [{"name": "a", "typ": "integer"}]}, "Extra inputs are not permitted"),
        ({"delimiter": ";;"}, "at most 1 character"),
        ({"delimiter": '"'}, "must differ"),
        ({"header": False}, "columns are required"),
        ({"encoding": "utf-9"}, "unknown encoding"),
        ({"columns": [{"name": "a"}, {"name": "a"}]}, "duplicate column names: a"),
        ({"columns": [{"name": "a", "type": "money"}]}, "Input should be"),
        ({"max_errors": 0}, "greater than or equal to 1"),
    ],
)
def test_parse_config_rejects_bad_yaml(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        CsvParseConfig.model_validate(data)
    assert fragment in str(excinfo.value)


@pytest.mark.parametrize("alias, char", [("tab", "\t"), ("\t", "\t"), ("pipe", "|"), (",", ",")])
def test_delimiter_aliases(alias: str, char: str) -> None:
    assert CsvParseConfig.model_validate({"delimiter": alias}).delimiter == char


def test_render_config_mixes_plain_names_and_specs_and_encodes() -> None:
    config = CsvRenderConfig.model_validate(
        {
            "columns": ["sku", {"name": "price", "type": "decimal", "format": ","}],
            "delimiter": ";",
            "line_terminator": "lf",
            "encoding": "cp1252",
        }
    )
    assert config.line_terminator == "\n"
    rows = [{"sku": "KÄSE", "price": "4.5"}]
    assert config.render(rows) == "sku;price\nKÄSE;4,5\n"
    assert config.render_bytes(rows) == "sku;price\nKÄSE;4,5\n".encode("cp1252")


def test_render_bytes_reports_unencodable_characters_with_row() -> None:
    config = CsvRenderConfig.model_validate({"columns": ["name"], "encoding": "latin-1"})
    with pytest.raises(FlatFileErrors) as excinfo:
        config.render_bytes([{"name": "ok"}, {"name": "20 €"}])
    assert excinfo.value.errors[0].row == 3
    assert "'€'" in excinfo.value.errors[0].message


def test_render_config_requires_columns() -> None:
    with pytest.raises(ValidationError):
        CsvRenderConfig.model_validate({"columns": []})
    with pytest.raises(ValidationError, match="Input should be"):
        CsvRenderConfig.model_validate({"columns": ["a"], "line_terminator": "\r"})


def test_fixed_width_config_from_yaml_round_trips() -> None:
    config = FixedWidthConfig.model_validate(yaml.safe_load(FIXED_YAML))
    text = "HACME      \nDSKU-1   00012\nDSKU-2   00003\nT0002\n"
    rows = config.parse(text)
    assert rows == [
        {"record_type": "H", "sender": "ACME"},
        {"record_type": "D", "sku": "SKU-1", "qty": 12},
        {"record_type": "D", "sku": "SKU-2", "qty": 3},
        {"record_type": "T", "count": 2},
    ]
    assert config.render(rows) == text
    assert config.render_bytes(rows) == text.encode()


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({}, "exactly one of fields or layouts"),
        (
            {
                "fields": [{"name": "a", "start": 1, "length": 1}],
                "layouts": {"H": [{"name": "a", "start": 2, "length": 1}]},
            },
            "exactly one of fields or layouts",
        ),
        (
            {
                "fields": [
                    {"name": "a", "start": 1, "length": 3},
                    {"name": "b", "start": 2, "length": 3},
                ]
            },
            "overlap",
        ),
        (
            {
                "layouts": {
                    "H": [{"name": "a", "start": 2, "length": 1}],
                    "DT": [{"name": "b", "start": 3, "length": 1}],
                }
            },
            "same length",
        ),
        ({"layouts": {"H": [{"name": "record_type", "start": 2, "length": 1}]}}, "collides"),
        ({"fields": [{"name": "a", "start": 1, "length": 1, "width": 2}]}, "Extra inputs"),
    ],
)
def test_fixed_width_config_rejects_bad_layouts(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        FixedWidthConfig.model_validate(data)
    assert fragment in str(excinfo.value)


def test_configs_are_json_schema_exportable_for_flow_linting() -> None:
    # The flow loader can publish these schemas for editor completion.
    schema = CsvParseConfig.model_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["properties"]["delimiter"]["description"]
    assert "ColumnSpec" in schema["$defs"]
