"""Turn pydantic validation errors into analyst-facing problems with positions and hints."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import ValidationError

from engine.dsl.flow import StepBase, flow_model, step_kind_of
from engine.dsl.triggers import TRIGGER_KINDS
from engine.problems import Path, Problem, did_you_mean, format_path
from engine.registry import registry
from engine.yamlsrc import Source


def _data_path(data: Any, loc: tuple[Any, ...]) -> Path:
    """Map a pydantic error location onto the data: drop union tags and validator names."""
    path: list[str | int] = []
    node = data
    i = 0
    while i < len(loc):
        part = loc[i]
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
            if path[:1] == ["steps"] and len(path) == 2 and i + 1 < len(loc) \
                    and loc[i + 1] == step_kind_of(node):
                i += 1  # the union tag repeats the kind key: skip it once
        elif isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
            if path == ["trigger"] and i + 1 < len(loc) and loc[i + 1] in TRIGGER_KINDS:
                i += 1
            elif i + 1 < len(loc) and loc[i + 1] == part and not (
                    isinstance(node, dict) and part in node):
                i += 1  # a union tag named like its key (call: {http: ...}): skip the repeat
        elif i == len(loc) - 1 and isinstance(node, dict):
            path.append(part)  # a missing or unknown key: it names a place in this mapping
            node = None
        i += 1
    return tuple(path)


@functools.cache
def _schema() -> dict[str, Any]:
    return flow_model().model_json_schema(by_alias=True)


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = root["$defs"][node["$ref"].split("/")[-1]]
    return node


def _variants(node: dict[str, Any], root: dict[str, Any]) -> list[dict[str, Any]]:
    node = _resolve(node, root)
    out = [node]
    for key in ("anyOf", "oneOf", "allOf"):
        for child in node.get(key, []):
            out.extend(_variants(child, root))
    return out


def allowed_keys(path: Path, schema: dict[str, Any] | None = None) -> list[str]:
    """Keys accepted in the mapping at *path*, read from the generated schema (the flow
    language's unless another document's *schema* is given, e.g. flow test files)."""
    root = schema if schema is not None else _schema()
    nodes = [root]
    for part in path:
        nxt = []
        for node in nodes:
            for variant in _variants(node, root):
                if isinstance(part, int) and "items" in variant:
                    nxt.append(variant["items"])
                elif isinstance(part, str) and part in variant.get("properties", {}):
                    nxt.append(variant["properties"][part])
        nodes = nxt
    keys: set[str] = set()
    for node in nodes:
        for variant in _variants(node, root):
            keys.update(variant.get("properties", {}))
    return sorted(keys)


def _message(error: dict[str, Any], path: Path, data: Any,
             schema: dict[str, Any] | None = None) -> tuple[Path, str, bool]:
    kind = error["type"]
    msg = str(error["msg"])
    if kind == "extra_forbidden":
        name = str(path[-1])
        allowed = allowed_keys(path[:-1], schema)
        hint = did_you_mean(name, allowed)
        if not hint and allowed:
            hint = f"; allowed here: {', '.join(allowed)}"
        return path, f"unknown key '{name}'{hint}", True
    if kind == "missing":
        return path[:-1], f"{path[-1]}: field required", True
    if kind == "union_tag_not_found" and len(path) == 2 and path[0] == "steps":
        message, wrong = _step_kind_problem(data)
        # at the key that is wrong, not the step's first line (1-4 lines above it)
        return ((*path, wrong) if wrong is not None else path), message, True
    if kind == "union_tag_not_found" and path == ("trigger",):
        return path, _trigger_problem(data), True
    if kind == "union_tag_not_found" and path[-1:] == ("call",):
        return path, _connector_problem(data), True
    if kind in ("model_type", "dict_type") and "dictionary" in msg:
        described = _describe(error.get("input"))
        return path, f"expected a mapping (key: value pairs), got {described}", False
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    elif msg.startswith("Assertion failed, "):
        msg = msg[len("Assertion failed, "):]
    if kind in ("literal_error", "enum"):
        got = error.get("input")
        expected = error.get("ctx", {}).get("expected", "")
        msg = f"'{got}' is not allowed; expected {expected}"
        if isinstance(got, str):
            choices = [c.strip(" '") for c in expected.replace(" or ", ",").split(",")]
            msg += did_you_mean(got, choices)
    elif kind == "too_short":
        got = error.get("input")
        least = error.get("ctx", {}).get("min_length", 1)
        what = "item" if isinstance(got, list) else "entry"
        count = len(got) if isinstance(got, list | dict | str) else 0
        msg = f"needs at least {least} {what}{'s' if least != 1 else ''}, got {count}"
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        msg = f"{msg[0].lower()}{msg[1:]}, got {_describe(error.get('input'))}"
    elif kind == "string_pattern_mismatch":
        msg = f"'{error.get('input')}' does not have the expected form ({error['ctx']['pattern']})"
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        msg = f"{msg[0].lower()}{msg[1:]}, got {_describe(error.get('input'))}"
    return path, msg, False


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"


def _step_kind_problem(step: Any) -> tuple[str, str | None]:
    """What is wrong with a step's kind, and the key that is wrong (None: the whole step)."""
    kinds = registry().steps
    if not isinstance(step, dict):
        return (f"a step is a mapping with 'id:' and one kind ({', '.join(kinds)}); "
                f"got {_describe(step)}"), None
    present = [k for k in step if k in kinds]
    if len(present) > 1:
        return (f"a step has exactly one kind; this one has {' and '.join(present)} — split it "
                "into separate steps"), str(present[1])
    others = [k for k in step if k not in StepBase.model_fields]
    for name in others:
        hint = did_you_mean(str(name), list(kinds) + list(registry().disabled))
        if str(name) in registry().disabled:
            return f"step kind '{name}' is disabled: {registry().disabled[str(name)].reason}", \
                str(name)
        if hint:
            return f"unknown step kind '{name}'{hint}", str(name)
    if others:
        return f"unknown step kind '{others[0]}'; known kinds: {', '.join(kinds)}", \
            str(others[0])
    return f"the step has no kind; add one of: {', '.join(kinds)}", None


def _trigger_problem(trigger: Any) -> str:
    if not isinstance(trigger, dict) or not trigger:
        return "a trigger is one of webhook:, poll: or manual:"
    present = [k for k in trigger if k in TRIGGER_KINDS]
    if len(present) > 1:
        return f"a flow has exactly one trigger; found {' and '.join(present)}"
    name = str(next(iter(trigger)))
    return f"unknown trigger '{name}'" + (did_you_mean(name, TRIGGER_KINDS)
                                          or "; use webhook, poll or manual")


def _connector_problem(call: Any) -> str:
    names = sorted(registry().connectors)
    if not isinstance(call, dict) or len(call) != 1:
        return f"a call names exactly one connector: {', '.join(names)}"
    name = str(next(iter(call)))
    if name in registry().disabled_connectors:
        return f"connector '{name}' is disabled: {registry().disabled_connectors[name].reason}"
    return f"unknown connector '{name}'{did_you_mean(name, names)}; known: {', '.join(names)}"


def validation_problems(source: Source, exc: ValidationError,
                        schema: dict[str, Any] | None = None) -> list[Problem]:
    """Positioned problems for *exc*; *schema* names the keys allowed (default: flow files)."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for error in exc.errors(include_url=False):
        path = _data_path(source.data, tuple(error["loc"]))
        at, message, key = _message(dict(error), path, _get(source.data, path), schema)
        label = format_path(at)
        if label in seen and error["type"] not in ("extra_forbidden", "missing"):
            continue  # one message per place: union branches repeat themselves
        seen.add(label)
        if not key and _block_mapping(source, at):
            key = True  # its own position is its first child's line: point at its key instead
        problems.append(source.problem(at, message, key=key))
    return problems


def _block_mapping(source: Source, path: Path) -> bool:
    """A mapping written as indented lines under its key (not ``{...}`` on the key's line)."""
    return (isinstance(_get(source.data, path), dict) and path in source.keys
            and path in source.values and source.values[path][0] > source.keys[path][0])


def _get(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data
