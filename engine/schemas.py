"""JSON Schemas of business objects, found by name under the project's ``schemas/`` folder.

``canonical/order.v1`` names ``schemas/canonical/order.v1.json``. Every schema in the folder is
registered by its ``$id`` and its path, so relative ``$ref``s between files resolve. Validators
are built once per name and shared, from the schema with its ``$ref``s inlined (`inline_refs`).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

MAX_VIOLATIONS = 50
#: keywords whose value is data, not a schema: a "$ref" key inside them is not a reference
_DATA = frozenset({"enum", "const", "examples", "default"})
#: keywords whose value maps names to schemas: a property may be named "$ref"
_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions",
                   "dependentSchemas"})
_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
#: keywords that say nothing about validity: a $ref beside only these can be replaced by its target
_NOTES = frozenset({"description", "title", "$comment", "examples", "default", "deprecated",
                    "readOnly", "writeOnly"})
#: keywords that move the base URI or resolve at run time: such schemas are left as written
_DYNAMIC = frozenset({"$id", "$anchor", "$dynamicRef", "$dynamicAnchor", "$recursiveRef",
                      "$recursiveAnchor"})


class _NotInlinable(Exception):
    """A recursive reference, or a keyword that inlining would change the meaning of."""


#: the editor schemas `flowrun schema` writes beside the canonical ones: not message schemas
GENERATED = ("flow.schema.json", "flow-test.schema.json", "connection.schema.json")


class SchemaStore:
    def __init__(self, root: Path):
        self.root = root
        self._validators: dict[str, Draft202012Validator] = {}
        self._lock = threading.Lock()
        self._registry: Registry | None = None

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(str(p.relative_to(self.root).with_suffix(""))
                      for p in self.root.rglob("*.json") if p.name not in GENERATED)

    def _build_registry(self) -> Registry:
        resources = []
        for path in self.root.rglob("*.json"):
            try:
                contents = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            resource = Resource.from_contents(contents, default_specification=DRAFT202012)
            resources.append((path.resolve().as_uri(), resource))
            if isinstance(contents, dict) and isinstance(contents.get("$id"), str):
                resources.append((contents["$id"], resource))
        return Registry().with_resources(resources)

    def validator(self, name: str) -> Draft202012Validator:
        """The validator for *name*; raises LookupError (unknown) or ValueError (broken schema)."""
        with self._lock:
            if name in self._validators:
                return self._validators[name]
            path = self.root / f"{name}.json"
            if not path.is_file():
                raise LookupError(name)
            try:
                schema = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise ValueError(f"schema file {path.name} is not valid JSON: {exc}") from None
            Draft202012Validator.check_schema(schema)
            if self._registry is None:
                self._registry = self._build_registry()
            if "$id" not in schema:
                schema = {**schema, "$id": path.resolve().as_uri()}
            validator = Draft202012Validator(inline_refs(schema, self._registry),
                                             registry=self._registry,
                                             format_checker=FormatChecker())
            self._validators[name] = validator
            return validator


def inline_refs(schema: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """*schema* with every ``$ref`` replaced by the schema it points at, or *schema* unchanged
    when that cannot be done without changing its meaning (recursion, ``$id`` below the root,
    dynamic references).

    Why: profiled on the reference flow, resolving ``$ref``s (URI joins and registry lookups,
    per reference, per message) took about 40 % of validating a canonical order, and validation
    is most of what such a flow does. Resolved once, when the validator is built, that cost goes.
    A ``$ref`` beside other assertions becomes one more ``allOf`` branch, which asserts the same;
    the violations reported (instance path and message) are the same.
    """
    root = {k: v for k, v in schema.items() if k != "$id"}
    try:
        inlined = _inline(root, registry.resolver(base_uri=str(schema["$id"])), ())
    except _NotInlinable:
        return schema
    return {**inlined, "$id": schema["$id"]}


def _inline(node: Any, resolver: Any, trail: tuple[int, ...]) -> Any:
    """*node* inlined; *resolver* resolves its references, *trail* holds the targets being
    inlined around it (by identity), so that a reference back into one of them is recursion."""
    if not isinstance(node, dict):
        return node  # true / false
    if not _DYNAMIC.isdisjoint(node):
        raise _NotInlinable
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" or key in _DATA:
            out[key] = value
        elif key in _MAPS and isinstance(value, dict):
            out[key] = {name: _inline(sub, resolver, trail) for name, sub in value.items()}
        elif key in _LISTS and isinstance(value, list):
            out[key] = [_inline(sub, resolver, trail) for sub in value]
        elif isinstance(value, dict):  # items, not, if/then/else, additionalProperties, ...
            out[key] = _inline(value, resolver, trail)
        else:
            out[key] = value
    ref = out.pop("$ref", None)
    if not isinstance(ref, str):
        return out if ref is None else {**out, "$ref": ref}
    resolved = resolver.lookup(ref)
    if id(resolved.contents) in trail:
        raise _NotInlinable  # a recursive schema (a tree of categories, say) keeps its $refs
    target = _inline(resolved.contents, resolved.resolver, (*trail, id(resolved.contents)))
    if isinstance(target, dict) and set(out) <= _NOTES:
        return {**target, **out}
    return {**out, "allOf": [*out.get("allOf", []), target]}


#: what a null where a value is expected means for the mapping (README: "No value: leave the
#: field out"); jsonschema would say "None is not of type ...", which is Python, not JSON
NULL_HINT = "null is not of type {expected} (a field with no value is left out: field[$ != null])"


def _message(error: ValidationError) -> str:
    if error.validator == "type" and error.instance is None:
        wanted: Any = error.validator_value  # "string" or ["string", "integer"]
        return NULL_HINT.format(expected=" or ".join(
            repr(t) for t in ([wanted] if isinstance(wanted, str) else wanted)))
    return error.message


def violations(validator: Draft202012Validator, instance: Any) -> list[dict[str, str]]:
    """Every violation of *instance*, each with its JSON path, sorted by path."""
    found = []
    for error in validator.iter_errors(instance):
        leaf = best_match(error.context) if error.context else error
        found.append({"path": leaf.json_path, "message": _message(leaf)})
        if len(found) >= MAX_VIOLATIONS:
            break
    return sorted(found, key=lambda v: v["path"])
