"""Plugins found through entry points: built-in steps register exactly like third-party ones.

Group ``flowrunner.steps``: each entry point names a `StepKind`. Group ``flowrunner.connectors``
names the connectors a ``call`` step can use (``call: {http: ...}``); they have the same shape.
A plugin that cannot be
imported (typically a missing optional dependency) is listed as disabled with the reason,
instead of breaking every flow.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.metadata import entry_points

from engine.types import StepKind

STEP_GROUP = "flowrunner.steps"
CONNECTOR_GROUP = "flowrunner.connectors"


@dataclass(frozen=True)
class Disabled:
    name: str
    target: str
    reason: str


@dataclass(frozen=True)
class Registry:
    steps: dict[str, StepKind]
    disabled: dict[str, Disabled]
    connectors: dict[str, StepKind]
    disabled_connectors: dict[str, Disabled]


def _install_hint(exc: ImportError) -> str:
    missing = getattr(exc, "name", None) or str(exc)
    return f"missing dependency '{missing}': install flowrunner[{missing}]"


def _load(group: str) -> tuple[dict[str, StepKind], dict[str, Disabled]]:
    found: dict[str, StepKind] = {}
    disabled: dict[str, Disabled] = {}
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            kind = ep.load()
        except ImportError as exc:
            disabled[ep.name] = Disabled(ep.name, ep.value, _install_hint(exc))
            continue
        if not isinstance(kind, StepKind) or kind.name != ep.name:
            disabled[ep.name] = Disabled(ep.name, ep.value,
                                         f"entry point does not name a StepKind called '{ep.name}'")
            continue
        found[ep.name] = kind
    return found, disabled


@functools.cache
def registry() -> Registry:
    steps, disabled = _load(STEP_GROUP)
    connectors, disabled_connectors = _load(CONNECTOR_GROUP)
    return Registry(steps, disabled, connectors, disabled_connectors)
