"""Write ``docs/reference/dsl.md``, the reference of the flow language and of connection files,
from the generated JSON Schemas — so the reference says what the models say, every key with
its type, default and description, and a test fails when it is stale."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from engine.dsl.base import format_duration
from engine.dsl.flow import StepBase

Schema = dict[str, Any]

HEADER = """\
# Flow language reference

<!-- Generated from the DSL models by `flowrun schema`; do not edit by hand. -->

Every key a flow file (`flows/*.yaml`) and a connection file (`connections/*.yaml`) may hold,
with its type, default and meaning. An unknown key is an error, with a "did you mean" where a
name is close. A guide with examples for each part is in [the analyst guide](../analyst-guide.md).

Types: *expression* is JSONata as a string, or `{jsonata: ...}` / `{jmespath: ...}`;
*duration* is `500ms`, `30s`, `5m`, `1h30m`, `2d` or a number of seconds; *text* may use
`${env:NAME}` and `${secret:NAME}` where the description says so.
"""


def dsl_reference(flow: Schema, connection: Schema) -> str:
    out = [HEADER, "## Flow file\n", _table(flow, flow)]
    out += ["## Trigger\n", _text(flow["properties"]["trigger"]) + "\n",
            _table(flow["properties"]["trigger"], flow)]
    item = flow["properties"]["steps"]["items"]
    kinds = [k for k in item["properties"] if k not in StepBase.model_fields]
    common = {k: v for k, v in item["properties"].items() if k not in kinds}
    out += ["## Steps\n", _text(item) + " Keys every step may have besides its kind:\n",
            _table({"properties": common, "required": item.get("required", [])}, flow)]
    snippets = {next(k for k in s["body"] if k != "id"): s["body"] for s in
                item.get("defaultSnippets", [])}
    for kind in kinds:
        out.append(_kind(kind, item["properties"][kind], snippets.get(kind), flow))
    out += ["## Blocks used above\n"]
    for name, node in sorted(flow.get("$defs", {}).items()):
        out.append(_block(name, node, flow))
    out += ["## Connection files\n", _text(connection) + "\n",
            _table(connection, connection, "connection-")]
    for name, node in sorted(connection.get("$defs", {}).items()):
        out.append(_block(name, node, connection, prefix="connection-"))
    return "\n".join(part.rstrip("\n") + "\n" for part in out)


def _kind(kind: str, node: Schema, example: Schema | None, root: Schema) -> str:
    lines = [f"### `{kind}`\n", _text(node), ""]
    target = _resolve(node, root)
    if target.get("properties") and "jsonata" not in target["properties"]:
        lines.append(_table(target, root))
    else:
        lines.append(f"Its value: {_type(node, root)}.\n")
    if example:
        text = yaml.safe_dump([_unsnippet(example)], sort_keys=False, allow_unicode=True,
                              width=100)
        lines += ["The editor's snippet for it (`<...>`: what to fill in):\n", "```yaml",
                  text.rstrip("\n"), "```", ""]
    return "\n".join(lines)


def _block(name: str, node: Schema, root: Schema, prefix: str = "") -> str:
    text = _text(node)
    body = _table(node, root, prefix) if node.get("properties") else \
        f"Its value: {_type(node, root, prefix)}.\n"
    return f'<a id="{prefix}{name.lower()}"></a>\n### {name}\n\n' + \
        (text + "\n\n" if text else "") + body


def _table(node: Schema, root: Schema, prefix: str = "") -> str:
    required = set(node.get("required", []))
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for key, prop in node.get("properties", {}).items():
        value = prop.get("default")
        if _type(prop, root) == "duration" and isinstance(value, int | float):
            value = format_duration(value)
        default = "*required*" if key in required else (
            f"`{json.dumps(value)}`" if value is not None else "")
        rows.append(f"| `{key}` | {_type(prop, root, prefix)} | {_cell(default)} | "
                    f"{_cell(_text(prop))} |")
    return "\n".join(rows) + "\n"


def _type(node: Schema, root: Schema, prefix: str = "") -> str:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{prefix}{name.lower()})"
    variants = [v for v in node.get("anyOf") or node.get("oneOf") or [] if v.get("type") != "null"]
    if any("jsonata" in v.get("properties", {}) for v in variants):
        return "expression"
    if any("(ms|s|m|h|d)" in v.get("pattern", "") for v in variants):
        return "duration"
    if variants:
        return " or ".join(dict.fromkeys(_type(v, root, prefix) for v in variants))
    if "enum" in node:
        return " \\| ".join(f"`{v if str(v).isprintable() else json.dumps(v)}`"
                              for v in node["enum"])
    if "const" in node:
        return f"`{node['const']}`"
    kind = node.get("type")
    if kind == "array":
        return f"list of {_type(node.get('items', {}), root, prefix)}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"mapping of {_type(node['additionalProperties'], root, prefix)}"
    if kind == "object" and "allOf" in node and "propertyNames" in node:
        return "[step](#steps)"  # an id and one kind
    if kind == "object" and "propertyNames" in node:
        return "one of " + ", ".join(f"`{k}`" for k in node["properties"])
    if kind == "object" and node.get("properties"):
        return "mapping (" + ", ".join(f"`{k}`" for k in node["properties"]) + ")"
    return {"string": "text", "integer": "integer", "number": "number", "boolean": "true/false",
            "object": "mapping", None: "any"}.get(kind, str(kind))


def _unsnippet(value: Any) -> Any:
    """Snippet text as a person reads it: ``${2:expression}`` is ``<expression>``."""
    if isinstance(value, str):
        return re.sub(r"\$\{\d+:([^}]*)\}", r"<\1>", value).replace("\\$", "$")
    if isinstance(value, list):
        return [_unsnippet(v) for v in value]
    if isinstance(value, dict):
        return {k: _unsnippet(v) for k, v in value.items()}
    return value


def _resolve(node: Schema, root: Schema) -> Schema:
    while "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _text(node: Schema) -> str:
    return " ".join(str(node.get("description", "")).split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
