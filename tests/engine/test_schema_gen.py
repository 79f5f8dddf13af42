"""The committed flow schema is generated from the DSL models and must not go stale."""

from __future__ import annotations

import json

from jsonschema import Draft202012Validator

from engine.schema_gen import flow_schema_text
from tests.conftest import ROOT


def test_committed_flow_schema_is_current() -> None:
    committed = (ROOT / "schemas" / "flow.schema.json").read_text(encoding="utf-8")
    assert committed == flow_schema_text(), (
        "schemas/flow.schema.json is stale: run `flowrun schema`")


def test_flow_schema_is_valid_2020_12_and_accepts_shipped_flows() -> None:
    import yaml

    schema = json.loads(flow_schema_text())
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    for path in sorted((ROOT / "flows").glob("*.yaml")):
        if path.name.endswith(".test.yaml"):
            continue
        errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
        assert errors == [], f"{path.name}: {[e.message for e in errors]}"


def test_flow_schema_rejects_misspelt_retry_key() -> None:
    validator = Draft202012Validator(json.loads(flow_schema_text()))
    flow = {"flow": "x", "defaults": {"retry": {"max_retires": 3}},
            "steps": [{"id": "a", "transform": "b"}]}
    assert any("max_retires" in e.message for e in validator.iter_errors(flow))
