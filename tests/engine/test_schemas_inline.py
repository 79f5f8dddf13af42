"""`$ref`s inlined when a validator is built: the same verdicts and violations as resolving them
per message, and schemas that cannot be inlined (recursion) left as they are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from engine.schemas import SchemaStore, violations

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = SchemaStore(ROOT / "schemas")
ODD_INSTANCES: list[Any] = [
    {}, [], "text", 5, None,
    {"order_id": 7, "channel": "", "lines": [{"sku": None, "qty": -1}], "extra": True},
    {"po_number": "PO-1", "lines": [{}], "currency": "euro", "total": "1,00"},
    {"id": "x", "party": {"name": 3}, "address": {"country_code": "Germany"}},
]


def _plain(store: SchemaStore, name: str) -> Draft202012Validator:
    """The validator as built before inlining: $refs resolved through the registry per use."""
    store.validator(name)  # builds the registry
    path = store.root / f"{name}.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema.setdefault("$id", path.resolve().as_uri())
    assert store._registry is not None
    return Draft202012Validator(schema, registry=store._registry, format_checker=FormatChecker())


@pytest.mark.parametrize("name", [n for n in SHIPPED.names() if n.startswith("canonical/")])
def test_shipped_schemas_inline_and_report_the_same_violations(name: str) -> None:
    inlined = SHIPPED.validator(name)
    assert '"$ref"' not in json.dumps(inlined.schema)
    plain = _plain(SHIPPED, name)
    for instance in ODD_INSTANCES:
        assert violations(inlined, instance) == violations(plain, instance), instance


def _store(tmp_path: Path, schema: dict[str, Any]) -> SchemaStore:
    (tmp_path / "thing.json").write_text(json.dumps(schema), encoding="utf-8")
    return SchemaStore(tmp_path)


def test_a_recursive_schema_keeps_its_refs_and_still_validates(tmp_path: Path) -> None:
    store = _store(tmp_path, {
        "$defs": {"node": {"type": "object", "required": ["name"],
                           "properties": {"name": {"type": "string"},
                                          "children": {"type": "array",
                                                       "items": {"$ref": "#/$defs/node"}}}}},
        "$ref": "#/$defs/node"})
    validator = store.validator("thing")
    assert '"$ref"' in json.dumps(validator.schema)
    tree = {"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}]}
    assert violations(validator, tree) == []
    broken = {"name": "a", "children": [{"children": []}]}
    assert violations(validator, broken) == [
        {"path": "$.children[0]", "message": "'name' is a required property"}]


def test_a_property_named_ref_is_a_property_not_a_reference(tmp_path: Path) -> None:
    store = _store(tmp_path, {"type": "object",
                              "properties": {"$ref": {"type": "string"}},
                              "enum": [{"$ref": "kept as data"}, {"$ref": 5}]})
    validator = store.validator("thing")
    assert violations(validator, {"$ref": "kept as data"}) == []
    assert [v["message"] for v in violations(validator, {"$ref": 5})] == [
        "5 is not of type 'string'"]


def test_a_ref_beside_other_assertions_keeps_both(tmp_path: Path) -> None:
    store = _store(tmp_path, {"$defs": {"short": {"type": "string", "maxLength": 3}},
                              "$ref": "#/$defs/short", "minLength": 2,
                              "description": "two or three characters"})
    validator = store.validator("thing")
    assert violations(validator, "ab") == []
    assert [v["message"] for v in violations(validator, "a")] == ["'a' is too short"]
    assert [v["message"] for v in violations(validator, "abcd")] == ["'abcd' is too long"]
