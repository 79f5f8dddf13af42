"""JSON Schemas of business objects, found by name under the project's ``schemas/`` folder.

``canonical/order.v1`` names ``schemas/canonical/order.v1.json``. Every schema in the folder is
registered by its ``$id`` and its path, so relative ``$ref``s between files resolve. Validators
are built once per name and shared.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

MAX_VIOLATIONS = 50


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
                      for p in self.root.rglob("*.json") if p.name != "flow.schema.json")

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
            validator = Draft202012Validator(schema, registry=self._registry,
                                             format_checker=FormatChecker())
            self._validators[name] = validator
            return validator


def violations(validator: Draft202012Validator, instance: Any) -> list[dict[str, str]]:
    """Every violation of *instance*, each with its JSON path, sorted by path."""
    found = []
    for error in validator.iter_errors(instance):
        leaf = best_match(error.context) if error.context else error
        found.append({"path": leaf.json_path, "message": leaf.message})
        if len(found) >= MAX_VIOLATIONS:
            break
    return sorted(found, key=lambda v: v["path"])
