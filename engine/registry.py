"""Plugins found through entry points: built-in steps register exactly like third-party ones.

Group ``flowrunner.steps``: each entry point names a `StepKind`. Group ``flowrunner.connectors``
names the connectors a ``call`` step can use (``call: {http: ...}``); they have the same shape.
Group ``flowrunner.connections`` names the kinds of named connection (`ConnectionKind`: the
``http:`` or ``sftp:`` of a connection file), ``flowrunner.poll_sources`` the sources of a poll
trigger (`PollSourceKind`: ``poll: {http: ...}``), and ``flowrunner.signatures`` the webhook
signature schemes (`Scheme`). What a plugin imports from the engine is `engine.plugin`.

A plugin that cannot be loaded — typically a missing optional dependency — is listed as
disabled with the reason ("needs paramiko — install flowrunner[sftp]"), instead of breaking
every flow; so is a name two distributions register. `plugins()` is what `flowrun connectors`
shows.
"""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass
from importlib.metadata import Distribution, EntryPoint, entry_points
from typing import Any

from engine.signatures import Scheme
from engine.types import ConnectionKind, PollSourceKind, StepKind

STEP_GROUP = "flowrunner.steps"
CONNECTOR_GROUP = "flowrunner.connectors"
CONNECTION_GROUP = "flowrunner.connections"
POLL_SOURCE_GROUP = "flowrunner.poll_sources"
SIGNATURE_GROUP = "flowrunner.signatures"
#: what `flowrun connectors` lists, in this order
GROUPS = {"connector": CONNECTOR_GROUP, "step": STEP_GROUP, "connection": CONNECTION_GROUP,
          "poll_source": POLL_SOURCE_GROUP, "signature": SIGNATURE_GROUP}
#: the type each group's entry points name, and what the error calls it
TYPES: dict[str, tuple[type, str]] = {
    STEP_GROUP: (StepKind, "StepKind"), CONNECTOR_GROUP: (StepKind, "StepKind"),
    CONNECTION_GROUP: (ConnectionKind, "ConnectionKind"),
    POLL_SOURCE_GROUP: (PollSourceKind, "PollSourceKind"),
    SIGNATURE_GROUP: (Scheme, "signature Scheme")}


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
    connections: dict[str, ConnectionKind]
    disabled_connections: dict[str, Disabled]
    poll_sources: dict[str, PollSourceKind]
    disabled_poll_sources: dict[str, Disabled]
    signatures: dict[str, Scheme[Any]]
    disabled_signatures: dict[str, Disabled]


@dataclass(frozen=True)
class Plugin:
    """One entry point as `flowrun connectors` reports it."""

    kind: str  # connector, step, connection, poll_source or signature
    name: str
    target: str
    distribution: str
    version: str
    enabled: bool
    reason: str | None
    description: str


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(module: str, dist: Distribution | None) -> tuple[str, str | None] | None:
    """The requirement of *dist* that provides *module*, and the extra it belongs to."""
    wanted = {_canonical(module), _canonical(f"py{module}")}  # yaml is PyYAML, jwt is PyJWT
    for requirement in (dist.requires or []) if dist else []:
        found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        if found and _canonical(found[1]) in wanted:
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", requirement)
            return found[1], extra[1] if extra else None
    return None


def install_hint(exc: BaseException, ep: EntryPoint) -> str:
    """Why *ep* did not load, and what to install: derived from the error and the metadata."""
    owner = ep.dist.name if ep.dist else "flowrunner"
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        target_module = ep.value.split(":")[0].strip()
        if target_module == exc.name or target_module.startswith(exc.name + "."):
            return f"the entry point names module '{target_module}', which does not exist"
        module = exc.name.split(".")[0]
        if module == target_module.split(".")[0]:  # a module of the plugin's own package
            return f"{target_module} imports '{exc.name}', which does not exist"
        declared = _declared(module, ep.dist)
        if declared is None:
            return f"needs module '{module}', which {owner} does not declare — pip install it"
        requirement, extra = declared
        if extra:
            return f"needs {requirement} — install {owner}[{extra}]"
        return f"needs {requirement} — reinstall {owner}, which depends on it"
    if isinstance(exc, ImportError):
        return f"cannot be imported: {exc}"
    return f"cannot be loaded: {type(exc).__name__}: {exc}"


def _check(ep: EntryPoint, value: object) -> str | None:
    wanted, label = TYPES[ep.group]
    if isinstance(value, wanted) and getattr(value, "name", None) == ep.name:
        return None
    return f"entry point does not name a {label} called '{ep.name}'"


def _points(group: str) -> list[tuple[EntryPoint, str | None]]:
    """The entry points of *group* by name, each with the reason it is refused unloaded: a
    name registered by two distributions is refused in both, since a plugin silently
    replacing another's part (a signature scheme, a connector) would change what it does."""
    points = sorted(entry_points(group=group), key=lambda e: e.name)
    owners: dict[str, set[str]] = {}
    for ep in points:
        owners.setdefault(ep.name, set()).add(ep.dist.name if ep.dist else "?")
    return [(ep, f"'{ep.name}' is registered by {' and '.join(sorted(owners[ep.name]))}; "
                 "uninstall one of them" if len(owners[ep.name]) > 1 else None)
            for ep in points]


def _load_one(ep: EntryPoint, refused: str | None = None) -> tuple[object | None, str | None]:
    """The loaded object, or None and the reason it is disabled. Never raises: one broken
    plugin must not take the others (or every flow) down with it."""
    if refused is not None:
        return None, refused
    try:
        value = ep.load()
    except Exception as exc:
        return None, install_hint(exc, ep)
    reason = _check(ep, value)
    return (None, reason) if reason else (value, None)


def _load(group: str) -> tuple[dict[str, Any], dict[str, Disabled]]:
    found: dict[str, Any] = {}
    disabled: dict[str, Disabled] = {}
    for ep, refused in _points(group):
        value, reason = _load_one(ep, refused)
        if value is not None:
            found[ep.name] = value
        else:
            disabled[ep.name] = Disabled(ep.name, ep.value, reason or "not loaded")
    return found, disabled


@functools.cache
def registry() -> Registry:
    return Registry(*_load(STEP_GROUP), *_load(CONNECTOR_GROUP), *_load(CONNECTION_GROUP),
                    *_load(POLL_SOURCE_GROUP), *_load(SIGNATURE_GROUP))


def _description(value: object) -> str:
    text = getattr(value, "description", None)
    if not text:  # signature schemes: the opening paragraph of their module's docstring
        module = sys.modules.get(getattr(getattr(value, "verify", None), "__module__", ""))
        text = getattr(module, "__doc__", None) or ""
    return " ".join(text.strip().split("\n\n")[0].split())


def plugins() -> list[Plugin]:
    """Every registered part (connector, step kind, connection kind, poll source, signature
    scheme), loaded now (not cached, so what was just installed shows), enabled or disabled
    with the reason."""
    found: list[Plugin] = []
    for kind, group in GROUPS.items():
        for ep, refused in _points(group):
            value, reason = _load_one(ep, refused)
            dist = ep.dist
            found.append(Plugin(kind, ep.name, ep.value, dist.name if dist else "?",
                                dist.version if dist else "?", reason is None, reason,
                                _description(value) if value is not None else ""))
    return found
