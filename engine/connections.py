"""Named connections: one YAML file per partner system in ``connections/``, used by name.

A flow says ``call: {http: {connection: erp_eu, method: POST, path: /sales-orders}}`` (or
``sftp: {connection: supplier_a, ...}``, ``as2: {connection: acme_as2}``, or
``trigger.poll.http.connection``) and the base URL,
default headers, timeouts, TLS options and credentials come from ``connections/erp_eu.yaml``::

    connection: erp_eu
    description: ERP, EU instance
    http:
      base_url: ${env:ERP_EU_URL}
      headers: {X-Tenant: eu}
      auth:
        oauth2: {token_url: "${env:ERP_EU_URL}/oauth/token", client_id: flowrunner,
                 client_secret: "${secret:ERP_EU_CLIENT_SECRET}"}

The files are read and validated like flows (every problem at once, with line and column, "did
you mean" for unknown keys and names). Secrets only through ``${secret:NAME}``: a credential
written out in the file (or taken from ``${env:...}``, which logs do not mask) is a load error,
since these files live in version control. Certificate files named relative are read from the
connections folder, so a worker finds them whatever its working directory.

The engine reads the files and checks flows against them; what may stand under ``http:`` or
``sftp:`` belongs to the connector that uses it, registered as a `engine.types.ConnectionKind`
(entry-point group ``flowrunner.connections``), and the model of a file is assembled from the
kinds registered. The runtime side (one pooled session and one token cache per connection) is
kept here per name through `Connections.runtime`, built by the connector that needs it.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationError,
    create_model,
    model_validator,
)

from engine.dsl.base import Model
from engine.lint import validation_problems
from engine.problems import Path, Problem, did_you_mean
from engine.refs import REF
from engine.registry import registry
from engine.types import BuildContext
from engine.yamlsrc import Source, read_source

log = logging.getLogger("flowrunner.connections")

SUFFIXES = (".yaml", ".yml")
NAME = re.compile(r"[A-Za-z0-9_-]+")
T = TypeVar("T")


def secret_ref(value: str) -> str:
    """*value* if it names a secret (``${secret:NAME}``); a ValueError saying why not."""
    kinds = {m["kind"] for m in REF.finditer(value)}
    if "secret" in kinds:
        return value
    if "env" in kinds:
        # environment values are not masked in logs and run records; secrets are
        raise ValueError("a credential must come from the secrets store, not the environment; "
                         "write '${secret:NAME}' here (secret values are masked in logs and "
                         "run records, environment values are not)")
    raise ValueError("a credential is written out in the file; put it in the secrets "
                     "store and write '${secret:NAME}' here (connection files live in "
                     "version control)")


def _secret_text(value: Any) -> Any:
    # before pydantic's own type check, whose message would echo the value
    if not isinstance(value, str):
        raise ValueError("expected '${secret:NAME}' here, naming a value in the secrets store")
    return value


Secret = Annotated[str, BeforeValidator(_secret_text), AfterValidator(secret_ref)]


def one_of(model: Any, names: tuple[str, ...], what: str) -> None:
    """Refuse *model* unless exactly one of the fields *names* is set."""
    chosen = [n for n in names if getattr(model, n) is not None]
    if len(chosen) != 1:
        raise ValueError(f"{what} needs exactly one of {', '.join(names)}"
                         + (f"; found {' and '.join(chosen)}" if chosen else ""))


def _name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise ValueError(f"'{value}' cannot be a connection name; use letters, digits, '_' "
                         "and '-' only, e.g. erp_eu")
    return value


def _port(value: object) -> int | str:
    if isinstance(value, str) and (ref := REF.fullmatch(value.strip())) and ref["kind"] == "env":
        return value.strip()  # resolved where the connection is used, like the host
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    # a port is no secret: a ${secret:...} here would be echoed in a wrong-port message
    raise ValueError("a port is a number from 1 to 65535, or '${env:NAME}'")


Port = Annotated[int | str, BeforeValidator(_port)]


def port_number(value: int | str, resolve: Callable[[str], str]) -> int:
    """The port of a connection, its '${env:...}' resolved by *resolve* (the interpolator)."""
    if isinstance(value, int):
        return value
    text = resolve(value)
    try:
        return int(_port(text))
    except ValueError:
        raise ValueError(f"port {value} is '{text}', not a number from 1 to 65535") from None


class ConnectionBase(Model):
    """One partner system: its name and exactly one registered connection kind's key."""

    connection: Annotated[str, AfterValidator(_name)] = Field(
        description="Name flows use: letters, digits, '_' and '-'.")
    description: str | None = Field(None, description="What the system is.")

    @model_validator(mode="after")
    def _one(self) -> ConnectionBase:
        one_of(self, kind_names(type(self)), "a connection")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in kind_names(type(self)) if getattr(self, k) is not None)


def kind_names(model: type[ConnectionBase]) -> tuple[str, ...]:
    return tuple(k for k in model.model_fields if k not in ConnectionBase.model_fields)


@functools.cache
def connection_file_model() -> type[ConnectionBase]:
    """The model of a connection file: a key per connection kind registered in this process."""
    kinds = sorted(registry().connections.items())
    model: type[ConnectionBase] = create_model(  # type: ignore[call-overload]
        "ConnectionFile", __base__=ConnectionBase,
        **{name: (kind.config | None, Field(None, description=kind.description))
           for name, kind in kinds})
    return model


@functools.cache
def _schema() -> dict[str, Any]:
    return connection_file_model().model_json_schema(by_alias=True)


class Connections:
    """The connections of one folder, with the problems of their files."""

    def __init__(self, folder: FsPath | None, found: dict[str, ConnectionBase],
                 files: dict[str, str], broken: set[str], problems: list[Problem]):
        self.folder, self.found, self.files = folder, found, files
        self.broken, self.problems = broken, problems
        self._runtime: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        #: the names flows looked up: `problems_for_use` reports the warnings of these only
        self.used: set[str] = set()

    def problems_for_use(self) -> list[Problem]:
        """Every error of the folder's files (a broken file is worth fixing whoever uses it),
        and the warnings (an unset ${env:...}) of the connections some flow uses — not of a
        partner's file that the flows being checked never name."""
        used_files = {self.files[name] for name in self.used if name in self.files}
        return [p for p in self.problems if p.severity == "error" or p.file in used_files]

    def lookup(self, name: str, kind: str, ctx: BuildContext, path: Path) -> Any:
        """The part of connection *name* under *kind* (``http``, ``sftp``, ``as2``...), or
        None after a problem."""
        self.used.add(name)
        if name in self.broken:
            ctx.problem(path, f"connection '{name}' has errors (see {self.files[name]})")
            return None
        found = self.found.get(name)
        if found is None:
            where = f" in {self.folder}" if self.folder else " (no connections/ folder found)"
            ctx.problem(path, f"no connection '{name}'{where}"
                        + (did_you_mean(name, list(self.found) + list(self.broken))
                           or (f"; known: {', '.join(sorted(self.found))}" if self.found
                               else "")))
            return None
        if found.kind != kind:
            ctx.problem(path, f"connection '{name}' is an {found.kind} connection; this "
                        f"needs {kind}")
            return None
        return getattr(found, kind)

    def runtime(self, name: str, kind: str, make: Callable[[], T]) -> T:
        """The one runtime object (session, token cache) of *name*, made on first use."""
        with self._lock:
            key = (name, kind)
            if key not in self._runtime:
                self._runtime[key] = make()
            return self._runtime[key]

    def close(self) -> None:
        """Close the runtime objects made so far (a broker client's connection and thread):
        each that has a ``close``; one that fails to close is only logged."""
        with self._lock:
            made, self._runtime = list(self._runtime.items()), {}
        for (name, kind), thing in made:
            closer = getattr(thing, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception as exc:  # closing on the way out must not stop the rest
                    log.warning("connection '%s' (%s) did not close cleanly: %s", name, kind,
                                exc)


def load(folder: FsPath | None,
         check_refs: Callable[[Source, list[Problem]], None] | None = None) -> Connections:
    """Read every connection file in *folder*; never raises for a bad file."""
    paths = sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file()) \
        if folder is not None and folder.is_dir() else []
    found = Connections(folder, {}, {}, set(), [])
    for path in paths:
        _read(path, found, check_refs)
    return found


def _read(path: FsPath, into: Connections,
          check_refs: Callable[[Source, list[Problem]], None] | None) -> None:
    """One connection file into *into*: the connection, or its name among the broken ones
    (so a flow using it hears "has errors", not "no such connection") and its problems."""
    problems = into.problems
    shown = _shown(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(shown, 1, 1, "", f"cannot read file: {exc.strerror}"))
        return
    source, found_problems = read_source(shown, raw)
    problems.extend(found_problems)
    data = source.data if not found_problems else None
    name = data.get("connection") if isinstance(data, dict) else None
    name = name if isinstance(name, str) else path.stem
    if name in into.files:
        problems.append(source.problem(("connection",), f"connection '{name}' is already "
                                       f"declared in {into.files[name]}"))
        return
    into.files[name] = shown
    if found_problems:
        into.broken.add(name)
        return
    if check_refs is not None:
        check_refs(source, problems)
    if not isinstance(data, dict):
        kinds = " or ".join(f"'{k}:'" for k in sorted(registry().connections))
        problems.append(source.problem((), "a connection file is a mapping starting with "
                                           f"'connection: <name>' and {kinds}"))
        into.broken.add(name)
        return
    try:
        model = connection_file_model().model_validate(data)
    except ValidationError as exc:
        problems.extend(validation_problems(source, exc, _schema()))
        into.broken.add(name)
        return
    if name != path.stem:
        problems.append(source.problem(("connection",), f"connection '{name}' differs from "
                                       f"the file name; name the file {name}.yaml",
                                       severity="warning"))
    more = _check_kind(source, model, into.folder)
    problems.extend(more)
    if any(p.severity == "error" for p in more):
        into.broken.add(name)
    else:
        into.found[name] = model


def _shown(path: FsPath) -> str:
    """*path* as problems name it: relative to the working directory when inside it, like the
    flow files named on the command line (the folder itself was found resolved)."""
    try:
        return str(path.relative_to(FsPath.cwd()))
    except ValueError:
        return str(path)


def resolve_file(value: str, folder: FsPath | None) -> FsPath:
    """A file a connection names: a relative name is read beside the connection files, so a
    flow finds its certificates whatever directory the worker was started in."""
    path = FsPath(value).expanduser()
    return path if path.is_absolute() or folder is None else folder / path


@dataclass
class _Checking:
    """The `ConnectionContext` a connection kind's ``check`` reports through."""

    source: Source
    base: Path
    folder: FsPath | None
    problems: list[Problem]

    def problem(self, path: Path, message: str, *, severity: str = "error") -> None:
        self.problems.append(self.source.problem((*self.base, *path), message,
                                                 severity=severity))


def _check_kind(source: Source, found: ConnectionBase, folder: FsPath | None) -> list[Problem]:
    """The connection kind's own checks of a file that validated (credential headers,
    certificate files...): they point at the key itself, which a model validator cannot."""
    kind = registry().connections[found.kind]
    if kind.check is None:
        return []
    checking = _Checking(source, (found.kind,), folder, [])
    kind.check(getattr(found, found.kind), checking)
    return checking.problems


def nearest(start: FsPath) -> FsPath | None:
    """The nearest ``connections/`` folder at or above *start* (a flow file or folder)."""
    start = start.resolve()
    for folder in [start if start.is_dir() else start.parent, *start.parents]:
        if (folder / "connections").is_dir():
            return folder / "connections"
    return None
