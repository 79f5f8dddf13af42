"""Contract tests for the canonical business-object schemas in schemas/canonical/.

They guard what flows rely on: every file is a valid 2020-12 schema, cross-file
``$ref``s resolve through a registry built from the folder, every property is
documented, the bundled examples validate with format checking on, and typical
mapping mistakes are rejected at the JSON path a flow author would look at.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable

CANONICAL_DIR = Path(__file__).resolve().parents[2] / "schemas" / "canonical"
ID_PREFIX = "https://flowrunner.dev/schemas/canonical/"

EXPECTED_FILES = {
    "common.v1.json",
    "order.v1.json",
    "order_ack.v1.json",
    "purchase_order.v1.json",
    "po_ack.v1.json",
    "shipment.v1.json",
    "inventory.v1.json",
    "invoice.v1.json",
    "return_authorization.v1.json",
    "warehouse_order.v1.json",
    "order_change.v1.json",
}
DOCUMENT_FILES = sorted(EXPECTED_FILES - {"common.v1.json"})


def _load_all() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(CANONICAL_DIR.glob("*.json"))
    }


SCHEMAS = _load_all()
REGISTRY: Registry = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in SCHEMAS.values()
)


def validator_for(name: str) -> Draft202012Validator:
    return Draft202012Validator(SCHEMAS[name], registry=REGISTRY, format_checker=FormatChecker())


def _walk(node: Any, pointer: str = "") -> Iterator[tuple[str, Any]]:
    """Yield (JSON pointer, node) for every dict/list node inside a schema."""
    yield pointer, node
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("examples", "const", "enum", "default"):
                continue  # instance data, not schema keywords
            yield from _walk(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{pointer}/{index}")


def _error_sites(errors: list[ValidationError]) -> set[tuple[str, str]]:
    """(JSON pointer, failing keyword) of all errors, including those nested in oneOf/anyOf.

    oneOf failures (inventory) report the root; the branch errors in ``context``
    say what is actually wrong, so they are included.
    """
    sites: set[tuple[str, str]] = set()
    pending = list(errors)
    while pending:
        error = pending.pop()
        sites.add(("".join(f"/{part}" for part in error.absolute_path), str(error.validator)))
        pending.extend(error.context or [])
    return sites


def test_folder_contains_exactly_the_expected_files() -> None:
    assert set(SCHEMAS) == EXPECTED_FILES


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_is_valid_2020_12_schema_with_metadata(name: str) -> None:
    schema = SCHEMAS[name]
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == ID_PREFIX + name
    assert schema["title"].strip()
    assert len(schema["description"]) > 40


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_every_property_and_definition_has_a_description(name: str) -> None:
    undocumented = []
    for pointer, node in _walk(SCHEMAS[name]):
        if not isinstance(node, dict):
            continue
        for section in ("properties", "$defs"):
            for key, subschema in node.get(section, {}).items():
                if not str(subschema.get("description", "")).strip():
                    undocumented.append(f"{pointer}/{section}/{key}")
    assert undocumented == []


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_every_ref_resolves_through_the_registry(name: str) -> None:
    schema = SCHEMAS[name]
    resolver = REGISTRY.resolver(base_uri=schema["$id"])
    refs = [node["$ref"] for _, node in _walk(schema) if isinstance(node, dict) and "$ref" in node]
    if name != "common.v1.json":
        assert any(ref.startswith("common.v1.json#/$defs/") for ref in refs)
    for ref in refs:
        resolved = resolver.lookup(ref).contents
        assert isinstance(resolved, dict) and resolved, ref


def test_registry_lookup_fails_for_a_missing_definition() -> None:
    # Guards the test above: a typo in a $ref must not resolve silently.
    resolver = REGISTRY.resolver(base_uri=ID_PREFIX + "order.v1.json")
    with pytest.raises(Unresolvable):
        resolver.lookup("common.v1.json#/$defs/adress")


@pytest.mark.parametrize("name", DOCUMENT_FILES)
def test_examples_validate_with_format_checking(name: str) -> None:
    examples = SCHEMAS[name]["examples"]
    assert examples, "each document schema needs at least one example"
    validator = validator_for(name)
    for example in examples:
        assert list(validator.iter_errors(example)) == []


def test_common_definition_examples_validate() -> None:
    defs = SCHEMAS["common.v1.json"]["$defs"]
    checked = 0
    for key, definition in defs.items():
        validator = Draft202012Validator(
            {"$ref": f"common.v1.json#/$defs/{key}", "$id": ID_PREFIX + "probe.json"},
            registry=REGISTRY,
            format_checker=FormatChecker(),
        )
        for example in definition.get("examples", []):
            assert list(validator.iter_errors(example)) == [], (key, example)
            checked += 1
    assert checked >= 10


def test_inventory_examples_cover_both_kinds() -> None:
    kinds = {example["kind"] for example in SCHEMAS["inventory.v1.json"]["examples"]}
    assert kinds == {"snapshot", "adjustment"}


@pytest.mark.parametrize(
    "value, valid",
    [
        ("19.99", True),
        ("0", True),
        ("1250.5000", True),
        ("19,99", False),
        ("$19.99", False),
        ("1e3", False),
        ("-1.00", False),
        ("019.99", False),
        ("19.", False),
        ("1.23456", False),
        (19.99, False),
    ],
)
def test_money_is_a_plain_decimal_string(value: Any, valid: bool) -> None:
    validator = Draft202012Validator(
        {"$ref": "common.v1.json#/$defs/money", "$id": ID_PREFIX + "probe.json"},
        registry=REGISTRY,
    )
    assert validator.is_valid(value) is valid


# --- invalid documents -------------------------------------------------------------------------

DELETE = object()


def _mutate(document: Any, pointer: str, value: Any) -> None:
    *parents, last = pointer.lstrip("/").split("/")
    target = document
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value is DELETE:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


# One mistake per row: (schema[#example index], JSON pointer to change, new value or DELETE,
# expected error path ("@" = the changed pointer itself), failing JSON Schema keyword).
INVALID_CASES: list[tuple[str, str, Any, str, str]] = [
    ("order", "/lines/0/sku", DELETE, "/lines/0", "required"),
    ("order", "/lines/0/qty", -1, "@", "minimum"),
    ("order", "/lines/1/qty", 0, "@", "minimum"),
    ("order", "/lines/0/qty", "2", "@", "type"),
    ("order", "/lines/0/qty", 1.5, "@", "type"),
    ("order", "/shipping_address/country_code", "DEU", "@", "pattern"),
    ("order", "/billing_address/country_code", "de", "@", "pattern"),
    ("order", "/order_id", DELETE, "", "required"),
    ("order", "/channel", DELETE, "", "required"),
    ("order", "/order_id", 5698823442601, "@", "type"),
    ("order", "/lines", [], "@", "minItems"),
    ("order", "/currency", "eur", "@", "pattern"),
    ("order", "/lines/0/unit_price", "19,99", "@", "pattern"),
    ("order", "/lines/0/unit_price", 19.99, "@", "type"),
    ("order", "/totals/grand_total", "-53.38", "@", "pattern"),
    ("order", "/created_at", "2024-05-14 09:31", "@", "format"),
    ("order", "/customer/email", "jane.example.com", "@", "format"),
    ("order", "/shipping_address/postcode", "10115", "/shipping_address", "additionalProperties"),
    ("order", "/shipping_address/city", DELETE, "/shipping_address", "required"),
    ("order", "/tags/1", "vip", "/tags", "uniqueItems"),
    ("order", "/source", "web", "", "additionalProperties"),
    ("order_ack", "/lines/1/qty_accepted", -1, "@", "minimum"),
    ("order_ack", "/status", "ok", "@", "enum"),
    ("order_ack", "/lines/0/expected_ship_date", "15.05.2024", "@", "format"),
    ("purchase_order", "/lines/0/quantity/uom", DELETE, "/lines/0/quantity", "required"),
    ("purchase_order", "/lines/1/quantity/value", "-2", "@", "pattern"),
    ("purchase_order", "/buyer/gln", "401234500000", "@", "pattern"),
    ("purchase_order", "/order_date", "2024-05-02T10:00:00Z", "@", "format"),
    ("purchase_order", "/supplier", DELETE, "", "required"),
    ("purchase_order", "/ship_to/address/country_code", "Germany", "@", "pattern"),
    ("po_ack", "/lines/0/line_number", DELETE, "/lines/0", "required"),
    ("po_ack", "/ack_date", "yesterday", "@", "format"),
    ("shipment", "/orders/0/packs/0/sscc", "37312345000000001", "@", "pattern"),
    ("shipment", "/orders/0/po_number", DELETE, "/orders/0", "required"),
    ("shipment", "/orders/0/packs/1/items", [], "@", "minItems"),
    ("shipment", "/orders/0/packs/0/items/0/sku", DELETE, "/orders/0/packs/0/items/0", "required"),
    ("shipment", "/orders/0/packs/1/items/0/expiry_date", "2026-13-01", "@", "format"),
    ("shipment", "/carrier/scac", "dhlf", "@", "pattern"),
    ("inventory", "/kind", "delta", "@", "enum"),
    ("inventory", "/items/0/available/value", "-1", "@", "pattern"),
    ("inventory", "/as_of", DELETE, "", "required"),
    ("inventory#1", "/adjustment_id", DELETE, "", "required"),
    ("inventory#1", "/items/0/delta/uom", "each", "@", "pattern"),
    ("inventory#1", "/kind", "snapshot", "", "required"),
    ("invoice", "/totals/grand_total", DELETE, "/totals", "required"),
    ("invoice", "/document_type", "proforma", "@", "enum"),
    ("invoice", "/lines/0/total", "-1680.00", "@", "pattern"),
    ("invoice", "/currency", "EURO", "@", "pattern"),
    ("invoice", "/buyer/email", "ap.acme-distribution.example", "@", "format"),
    ("return_authorization", "/lines/0/qty", 0, "@", "minimum"),
    ("return_authorization", "/lines/0/reason_code", "changed_mind", "@", "enum"),
    ("return_authorization", "/refund/method", DELETE, "/refund", "required"),
    ("return_authorization", "/return_address/country_code", "D", "@", "pattern"),
]


@pytest.mark.parametrize(
    "document_ref, pointer, value, where, keyword",
    INVALID_CASES,
    ids=[f"{case[0]}:{case[1]}:{case[4]}" for case in INVALID_CASES],
)
def test_invalid_document_is_rejected_at_expected_path(
    document_ref: str, pointer: str, value: Any, where: str, keyword: str
) -> None:
    schema_stem, _, index = document_ref.partition("#")
    name = f"{schema_stem}.v1.json"
    document = copy.deepcopy(SCHEMAS[name]["examples"][int(index or 0)])
    _mutate(document, pointer, value)
    errors = list(validator_for(name).iter_errors(document))
    assert errors, "document should have been rejected"
    expected_path = pointer if where == "@" else where
    assert (expected_path, keyword) in _error_sites(errors)


def test_missing_sku_error_names_the_property() -> None:
    document = copy.deepcopy(SCHEMAS["order.v1.json"]["examples"][0])
    del document["lines"][0]["sku"]
    (error,) = validator_for("order.v1.json").iter_errors(document)
    assert error.json_path == "$.lines[0]"
    assert error.validator == "required"
    assert "'sku' is a required property" in error.message


def test_order_accepts_minimal_document() -> None:
    # Flows that only know id, channel and SKU/qty must still produce a valid order.
    minimal = {"order_id": "1", "channel": "marketplace", "lines": [{"sku": "A", "qty": 1}]}
    assert list(validator_for("order.v1.json").iter_errors(minimal)) == []


# --- no value is no key: null is never a canonical value ------------------------------------


def _leaves(document: Any, pointer: str = "") -> Iterator[str]:
    """JSON pointer of every property value in *document* (objects inside arrays included)."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield f"{pointer}/{key}"
            yield from _leaves(value, f"{pointer}/{key}")
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from _leaves(value, f"{pointer}/{index}")


def test_no_canonical_schema_admits_null() -> None:
    # The convention (README, "No value: leave the field out"): one way to say "no value",
    # so every mapping reading a canonical document meets no null.
    admitting = [f"{name}{pointer}" for name, schema in SCHEMAS.items()
                 for pointer, node in _walk(schema)
                 if isinstance(node, dict) and (node.get("type") == "null" or (
                     isinstance(node.get("type"), list) and "null" in node["type"]))]
    assert admitting == []


@pytest.mark.parametrize("name", DOCUMENT_FILES)
def test_null_for_any_property_of_the_examples_is_rejected_at_its_path(name: str) -> None:
    validator = validator_for(name)
    for example in SCHEMAS[name]["examples"]:
        pointers = list(_leaves(example))
        assert pointers
        for pointer in pointers:
            document = copy.deepcopy(example)
            _mutate(document, pointer, None)
            sites = _error_sites(list(validator.iter_errors(document)))
            assert any(path == pointer for path, _ in sites), (name, pointer, sites)
