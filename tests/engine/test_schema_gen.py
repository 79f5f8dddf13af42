"""The files generated from the DSL models — the editor schemas of flow and connection files
and the reference — must not go stale, and must help an editor: every key described, one
snippet per step kind, and a broken step reported for what is actually wrong."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from engine.registry import registry
from engine.schema_gen import connection_schema, flow_schema, flow_schema_text, generated_files
from tests.conftest import ROOT


@pytest.mark.parametrize("name", sorted(generated_files()))
def test_committed_generated_file_is_current(name: str) -> None:
    committed = (ROOT / name).read_text(encoding="utf-8") if (ROOT / name).exists() else ""
    assert committed == generated_files()[name], f"{name} is stale: run `flowrun schema`"


def test_flow_schema_is_valid_2020_12_and_accepts_shipped_flows() -> None:
    schema = json.loads(flow_schema_text())
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    for path in sorted((ROOT / "flows").glob("*.yaml")):
        if path.name.endswith(".test.yaml"):
            continue
        errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
        assert errors == [], f"{path.name}: {[e.message for e in errors]}"


def test_connection_schema_accepts_the_shipped_connections_which_name_it() -> None:
    schema = connection_schema()
    Draft202012Validator.check_schema(schema)
    files = sorted((ROOT / "connections").glob("*.yaml"))
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert text.startswith(
            "# yaml-language-server: $schema=../schemas/connection.schema.json\n"), path.name
        errors = list(Draft202012Validator(schema).iter_errors(yaml.safe_load(text)))
        assert errors == [], f"{path.name}: {[e.message for e in errors]}"


def _undescribed(schema: dict[str, Any]) -> list[str]:
    found = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for name, prop in (node.get("properties") or {}).items():
                if isinstance(prop, dict) and not prop.get("description"):
                    found.append(f"{where}.{name}")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(schema, "")
    return found


@pytest.mark.parametrize("schema", [flow_schema, connection_schema], ids=["flow", "connection"])
def test_every_property_has_a_description(schema: Any) -> None:
    assert _undescribed(schema()) == []


def test_a_step_kind_is_described_at_its_key_not_as_a_bare_expression() -> None:
    item = flow_schema()["properties"]["steps"]["items"]
    assert item["properties"]["filter"]["description"].startswith(
        "Keeps the message only when this JSONata expression is true; otherwise the run ends "
        "as `filtered`")
    # nothing inside an expression's schema says less than the key does
    assert "A JSONata expression." not in flow_schema_text()
    for kind in registry().steps:
        assert len(item["properties"][kind].get("description", "")) > 20, kind


def _fill(value: Any) -> Any:
    """A snippet with its placeholders typed over: ${2:expression} becomes 'expression'."""
    if isinstance(value, str):
        return re.sub(r"\$\{\d+:([^}]*)\}", r"\1", value).replace("\\$", "$")
    if isinstance(value, list):
        return [_fill(v) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v) for k, v in value.items()}
    return value


def test_every_step_kind_has_a_snippet_the_schema_accepts() -> None:
    schema = flow_schema()
    snippets = schema["properties"]["steps"]["items"]["defaultSnippets"]
    kinds = [next(k for k in s["body"] if k != "id") for s in snippets]
    assert sorted(kinds) == sorted(registry().steps)
    validator = Draft202012Validator(schema)
    for snippet in snippets:
        assert snippet["label"] and snippet["description"]
        step = _fill(snippet["body"])
        step["id"] = step["id"].replace("_step", "")
        errors = [e.message for e in validator.iter_errors({"flow": "f", "steps": [step]})]
        assert errors == [], f"{snippet['label']}: {errors}"


def _said(root: dict[str, Any], error: Any) -> str:
    """What an editor says for *error*: the errorMessage of the deepest schema on its path
    that has one (VS Code's YAML extension shows that), else the validator's own message."""
    said, node = error.message, root
    for part in error.absolute_schema_path:
        # jsonschema follows a $ref without naming it in the path (older versions name it)
        while isinstance(node, dict) and "$ref" in node and (part == "$ref" or part not in node):
            node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        node = node if part == "$ref" else node[part]
        if isinstance(node, dict) and node.get("errorMessage"):
            said = node["errorMessage"]
    return said


def _shown(step: dict[str, Any]) -> tuple[list[Any], str]:
    """Where the editor puts the first error of a flow holding *step*, and what it says."""
    schema = flow_schema()
    error = best_match(Draft202012Validator(schema).iter_errors({"flow": "f", "steps": [step]}))
    assert error is not None
    return list(error.absolute_path), _said(schema, error)


def test_an_unknown_step_kind_is_named_not_a_missing_property() -> None:
    where, said = _shown({"id": "a", "cal": {"http": {"method": "POST", "url": "http://x"}}})
    assert where == ["steps", 0]
    assert said.startswith("unknown step key; a step is one of: ")
    assert "call, csv, fail, " in said  # every kind, in order
    assert "Missing" not in said and "required" not in said


def test_a_mistake_inside_a_kind_is_reported_inside_that_kind() -> None:
    where, said = _shown({"id": "a", "call": {"http": {"method": "POST", "url": "http://x",
                                                        "timout": "5s"}}})
    assert where == ["steps", 0, "call", "http"]
    assert "'timout' was unexpected" in said
    where, said = _shown({"id": "a", "filter": 5})
    assert where == ["steps", 0, "filter"]
    assert "5 is not of type 'string'" in said or "is not valid" in said
    where, said = _shown({"id": "a", "retry": {"max_retires": 3}, "set": {"x": "1"}})
    assert where == ["steps", 0, "retry"] and "'max_retires' was unexpected" in said
    where, said = _shown({"id": "a", "log": {"mesage": '"hi"'}})
    assert where == ["steps", 0, "log"]


def test_a_step_without_a_kind_or_with_two_says_so() -> None:
    where, said = _shown({"id": "a", "description": "nothing yet"})
    kinds = sorted(registry().steps)
    assert {"call", "filter", "x12"} <= set(kinds)
    assert (where, said) == (["steps", 0], f"a step needs one kind: {', '.join(kinds)}")
    where, said = _shown({"id": "a", "filter": "x > 1", "set": {"y": "1"}})
    assert where[:2] == ["steps", 0]
    assert said.startswith("a step has exactly one kind; this one is already ")


def test_an_unknown_trigger_is_named() -> None:
    error = best_match(Draft202012Validator(flow_schema()).iter_errors(
        {"flow": "f", "trigger": {"webhok": {"path": "/x"}}, "steps": [{"id": "a",
                                                                        "set": {"x": "1"}}]}))
    assert error is not None and list(error.absolute_path) == ["trigger"]
    assert _said(flow_schema(), error) == (
        "unknown trigger key; a trigger is one of: webhook, poll, event, consume, manual")
