"""What `violations` tells a flow author: JSON words, and for a null how to leave the field out."""

from __future__ import annotations

from pathlib import Path

from engine.schemas import SchemaStore, violations

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = SchemaStore(ROOT / "schemas")


def test_a_null_is_named_null_with_the_idiom_that_leaves_the_field_out() -> None:
    order = {"order_id": "1", "channel": "shopify", "notes": None,
             "shipping_address": {"line1": "Hauptstr. 5", "line2": None, "city": "Berlin",
                                  "country_code": "DE"},
             "lines": [{"sku": "A", "qty": None}]}
    found = violations(SHIPPED.validator("canonical/order.v1"), order)
    assert found == [
        {"path": "$.lines[0].qty", "message": "null is not of type 'integer' (a field with no "
                                              "value is left out: field[$ != null])"},
        {"path": "$.notes", "message": "null is not of type 'string' (a field with no value is "
                                       "left out: field[$ != null])"},
        {"path": "$.shipping_address.line2", "message": "null is not of type 'string' (a field "
                                                        "with no value is left out: "
                                                        "field[$ != null])"},
    ]


def test_other_type_errors_keep_the_validator_message() -> None:
    found = violations(SHIPPED.validator("canonical/order.v1"),
                       {"order_id": 5, "channel": "x", "lines": [{"sku": "A", "qty": 1}]})
    assert found == [{"path": "$.order_id", "message": "5 is not of type 'string'"}]
