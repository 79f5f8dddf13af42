"""Generate the editor schemas and the DSL reference from the models (the models are the one
source): ``schemas/flow.schema.json``, ``schemas/connection.schema.json`` and
``docs/reference/dsl.md``. `flowrun schema` writes them; a test fails when one is stale.

pydantic's schema of a union keyed by its one key (a step's kind, a trigger, a call's
connector) is a ``oneOf`` of closed objects. An editor checks a broken step against every
member and reports the nearest miss, "Missing property call", whatever was wrong. Here such a
union becomes one object that lists every key it may hold: an unknown key is reported as such,
at the key, and a mistake inside a kind is reported inside that kind.
"""

from __future__ import annotations

import json
import re
from typing import Any

from engine.connections import ConnectionFile
from engine.dsl.flow import StepBase, flow_model

SCHEMA_ID = "https://flowrunner.dev/schemas/flow.schema.json"
CONNECTION_SCHEMA_ID = "https://flowrunner.dev/schemas/connection.schema.json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
Schema = dict[str, Any]


def flow_schema() -> Schema:
    schema = flow_model().model_json_schema(by_alias=True)
    props = schema["properties"]
    common = list(StepBase.model_fields)
    for node in list(_nodes(schema)):
        if node.get("title") == "Call" and "oneOf" in node:
            node.update(_one_key_of(schema, node, "connector"))
    props["trigger"].update(_one_key_of(schema, props["trigger"], "trigger"))
    props["steps"]["items"] = _one_key_of(schema, props["steps"]["items"], "step", common)
    props["steps"]["items"]["defaultSnippets"] = _step_snippets(schema, props["steps"]["items"])
    return _tidy({**schema, "$schema": DRAFT, "$id": SCHEMA_ID, "title": "flowrunner flow",
                  "description": "A flowrunner flow file: a trigger and a chain of steps."})


def connection_schema() -> Schema:
    schema = ConnectionFile.model_json_schema(by_alias=True)
    return _tidy({**schema, "$schema": DRAFT, "$id": CONNECTION_SCHEMA_ID,
                  "title": "flowrunner connection",
                  "description": "A named connection (connections/NAME.yaml): one partner "
                                 "system's base URL or host, credentials and TLS, used by name."})


def _one_key_of(root: Schema, union: Schema, what: str, common: list[str] | None = None) -> Schema:
    """The ``oneOf`` *union* of closed objects, each told apart by one key, as one object."""
    common = common or []
    shared: Schema = {}
    keyed: Schema = {}
    for member in union.pop("oneOf"):
        model = root["$defs"][member["$ref"].rsplit("/", 1)[-1]]
        for name, prop in model["properties"].items():
            if name in common:
                shared.setdefault(name, prop)
            else:
                keyed[name] = prop
    names = ", ".join(keyed)
    out: Schema = {
        "type": "object",
        "properties": {**shared, **keyed},
        "propertyNames": {
            "enum": [*shared, *keyed],
            "errorMessage": f"unknown {what} key; a {what} is one of: {names}"
                            + (f" (with {', '.join(common)})" if common else ""),
        },
    }
    if not common:
        return {**out, "minProperties": 1, "maxProperties": 1}
    out["required"] = [common[0]]  # the id
    out["description"] = f"A {what}: an id and exactly one kind ({names})."
    # errorMessage on `required` and on a `properties` check is what VS Code's YAML
    # extension shows (it ignores it on `not`); jsonschema ignores the keyword
    need = f"a {what} needs one kind: {names}"
    out["allOf"] = [{"anyOf": [{"required": [name], "errorMessage": need} for name in keyed],
                     "errorMessage": need}]
    # two kinds in one step: the second kind key is the mistake
    out["dependentSchemas"] = {
        name: {"properties": {other: False for other in keyed if other != name},
               "errorMessage": f"a {what} has exactly one kind; this one is already '{name}'"}
        for name in keyed}
    return out


def _step_snippets(root: Schema, item: Schema) -> list[Schema]:
    """One completion snippet per step kind, from the kind's schema (its first example where
    the model gives one)."""
    snippets = []
    common = set(StepBase.model_fields)
    for kind, prop in item["properties"].items():
        if kind in common:
            continue
        counter = iter(range(2, 100))
        body = {"id": f"${{1:{kind}_step}}", kind: _placeholder(root, prop, kind, counter)}
        summary = (prop.get("description") or "").split(". ")[0].rstrip(".")
        snippets.append({"label": f"{kind} step", "description": summary, "body": body})
    return snippets


def _placeholder(root: Schema, node: Schema, name: str, counter: Any) -> Any:
    """A snippet value for *node*: its first example, else its required keys (and its first
    block, so `sftp:` gets `put:` and `csv:` gets `parse:`), with ${n:name} to type over."""
    node = _resolve(root, node)
    if node.get("examples"):
        return _literal(node["examples"][0])
    variants = [_resolve(root, v) for v in node.get("anyOf") or node.get("oneOf") or []
                if v.get("type") != "null"]
    if variants and (variants[0].get("type") == "string" or "jsonata" in variants[0].get(
            "properties", {})):
        return f"${{{next(counter)}:{'expression' if len(variants) > 1 else name}}}"
    if variants:
        return _placeholder(root, variants[0], name, counter)
    if node.get("type") == "array":
        return [_placeholder(root, node.get("items", {}), name, counter)]
    props = node.get("properties", {})
    if props:
        wanted = list(node.get("required", []))
        blocks = [k for k, v in props.items() if _is_block(root, v)]
        if not wanted and blocks and blocks[0] == next(iter(props)):
            wanted = blocks[:1]  # one action of several: `csv: {parse: ...}`
        elif not wanted:
            wanted = [k for k in props if k not in blocks][:2]  # `http: {method, url}`
        elif blocks and not any(k in blocks for k in wanted):
            wanted.append(blocks[0])  # `sftp: {connection, put: ...}`
        return {key: _placeholder(root, props[key], key, counter) for key in wanted}
    if "enum" in node:
        return node.get("default") if node.get("default") in node["enum"] else node["enum"][0]
    if node.get("type") in ("boolean", "integer", "number"):
        default = node.get("default")
        return default if default is not None else node.get("minimum", True if
                                                             node["type"] == "boolean" else 1)
    return f"${{{next(counter)}:{name}}}"


def _literal(value: Any) -> Any:
    """*value* as snippet text: a `$` would start a snippet variable ($vars, ${env:X})."""
    if isinstance(value, str):
        return value.replace("$", "\\$")
    if isinstance(value, list):
        return [_literal(v) for v in value]
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    return value


def _is_block(root: Schema, node: Schema) -> bool:
    """A key whose value is a mapping of its own (``parse: {...}``), not a value or a list."""
    node = _resolve(root, node)
    first = next((_resolve(root, v) for v in node.get("anyOf", [node])
                  if v.get("type") != "null"), node)
    return bool(first.get("properties")) and "jsonata" not in first["properties"]


def _resolve(root: Schema, node: Schema) -> Schema:
    while "$ref" in node:
        node = {**root["$defs"][node["$ref"].rsplit("/", 1)[-1]],
                **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _nodes(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def _tidy(schema: Schema) -> Schema:
    """Drop the definitions nothing refers to any more, and give the others their class name
    where pydantic qualified it with the module path (``connectors__csv__step__CsvStep``)."""
    defs: Schema = schema.get("$defs", {})
    used: set[str] = set()
    todo = [n for n in _nodes({k: v for k, v in schema.items() if k != "$defs"})]
    while todo:
        node = todo.pop()
        ref = node.get("$ref", "")
        name = ref.rsplit("/", 1)[-1]
        if ref.startswith("#/$defs/") and name not in used:
            used.add(name)
            todo.extend(_nodes(defs[name]))
    kept = {name: defs[name] for name in sorted(used)}
    short = {name: name.rsplit("__", 1)[-1] for name in kept}
    clash = {s for s in short.values() if list(short.values()).count(s) > 1}
    names = {name: name if short[name] in clash else short[name] for name in kept}
    text = json.dumps({**schema, "$defs": {names[n]: d for n, d in kept.items()}})
    text = re.sub(r'"#/\$defs/([^"]+)"', lambda m: f'"#/$defs/{names[m[1]]}"', text)
    tidy: Schema = json.loads(text)
    if not kept:
        tidy.pop("$defs")
    return tidy


def _text(schema: Schema) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def flow_schema_text() -> str:
    return _text(flow_schema())


def connection_schema_text() -> str:
    return _text(connection_schema())


def generated_files() -> dict[str, str]:
    """Every file generated from the models, by its path in the repository."""
    from engine.reference_gen import dsl_reference

    return {"schemas/flow.schema.json": flow_schema_text(),
            "schemas/connection.schema.json": connection_schema_text(),
            "docs/reference/dsl.md": dsl_reference(flow_schema(), connection_schema())}
