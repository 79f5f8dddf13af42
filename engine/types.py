"""The one calling convention every step composes on.

A step kind is registered under its YAML key with a config model and a ``build`` function.
``build(config, ctx)`` runs once, when the flow is loaded: it compiles expressions, resolves
references and reports problems through ``ctx``. It returns a `StepFn`, called once per message
with the envelope and a small `Resources` object; the function returns an outcome, or raises
`StepError`. Retry, dead-lettering, timing and logging wrap step functions in the runner; they
never live inside a step.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from engine.dsl.base import ExprSpec
from engine.envelope import Envelope
from engine.expressions import Compiled
from engine.problems import Path

T = TypeVar("T")


@dataclass(frozen=True)
class Continue:
    """Go on with the next step; ``value`` (if given) is the step's result, for ``output``."""

    value: Any = None
    has_value: bool = False


def result(value: Any) -> Continue:
    return Continue(value, True)


#: the target that ends the run where it stands (``next: end``, a route's ``goto: end``)
END = "end"


@dataclass(frozen=True)
class Goto:
    step: str  # a step id, or END


@dataclass(frozen=True)
class Stop:
    """End the run here without error: ``filtered`` or ``dropped``, with a reason for the record."""

    status: str
    reason: str


@dataclass(frozen=True)
class ToDeadLetter:
    """End the run as ``dead_lettered`` with this reason (the entry is `records.DeadLetter`)."""

    reason: str


@dataclass(frozen=True)
class HandOff:
    """Hand the message to another flow; this run ends as ``handed_off``."""

    flow: str


@dataclass(frozen=True)
class Fork:
    """One message per item, each continuing through the steps after this one."""

    items: list[Any]


Outcome = Continue | Goto | Stop | ToDeadLetter | HandOff | Fork


class StepError(Exception):
    """A step failed. ``kind`` classifies it for the retry policy (``timeout``, ``connection``,
    ``http``, ``expression``, ``validation``, ``rejected``, ...); ``retryable`` False means no
    policy may retry it (a bad mapping will not get better by trying again)."""

    def __init__(self, message: str, *, kind: str = "error", retryable: bool = False,
                 status: int | None = None, retry_after: float | None = None,
                 detail: Any = None):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.detail = detail

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "kind": self.kind}
        if self.status is not None:
            out["status"] = self.status
        if self.detail is not None:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class Transport(Generic[T]):
    """The key of one transport in ``Resources.services``, typed by what it holds (the keys
    themselves are in `engine.transports`)."""

    key: str


@dataclass
class Resources:
    """What a step may use at run time besides its config and the envelope."""

    log: logging.LoggerAdapter[logging.Logger]
    secrets: Callable[[str], str]
    services: dict[str, Any] = field(default_factory=dict)

    def transport(self, which: Transport[T]) -> T | None:
        """The transport handed to this step under *which* (`engine.transports`), or None:
        the connector then uses its own real one."""
        found: T | None = self.services.get(which.key)
        return found


StepFn = Callable[[Envelope, Resources], Outcome]


class BuildContext(Protocol):
    """What a step kind's ``build`` may ask of the loader."""

    flow_id: str
    step_id: str
    step_ids: list[str]

    def expr(self, spec: ExprSpec, path: Path) -> Compiled: ...

    def problem(self, path: Path, message: str, *, key: bool = False,
                severity: str = "error") -> None: ...

    def schema(self, name: str, path: Path) -> Any: ...

    def flow_ref(self, name: str, path: Path) -> None: ...

    def service(self, name: str) -> Any: ...


@dataclass(frozen=True)
class StepKind:
    """A registered step kind: its YAML key, config model and build function."""

    name: str
    config: Any  # a pydantic model class or an Annotated type the flow model can embed
    build: Callable[[Any, BuildContext], StepFn]
    description: str
    #: a step with side effects checkpoints the run after it so a redelivery never repeats it
    side_effect: bool = False
    #: where the result goes when the step names no ``output:`` (None: nowhere)
    default_output: str | None = "body"


@dataclass(frozen=True)
class ConnectionKind:
    """A registered kind of named connection: the key of a connection file (``http:``,
    ``sftp:``) and its config model. The connector that uses it owns it and its checks."""

    name: str
    config: Any  # a pydantic model class; the engine validates the file's part against it
    description: str
    #: further checks once the model validated: ``check(config, ctx)``, problems through
    #: ``ctx.problem(path, message, severity=...)`` with *path* inside the kind's key
    check: Callable[[Any, ConnectionContext], None] | None = None
    #: the remote folders of the ``files`` poll source (``dir: <kind>://<connection>/path``):
    #: ``drop(name, config, folder, label)`` returns ``open(run)``, a context manager yielding
    #: the folder (see `engine.poll.files.Drop`); None: this kind has no folders
    drop: Callable[[str, Any, str, str], Any] | None = None


class ConnectionContext(Protocol):
    """What a connection kind's ``check`` may ask of the loader."""

    #: the connections folder; relative file names in a connection are read from there
    folder: Any

    def problem(self, path: Path, message: str, *, severity: str = "error") -> None: ...


@dataclass(frozen=True)
class PollSourceKind:
    """A registered poll source: its key under ``trigger.poll`` and its config model.
    ``build(trigger, ctx, path)`` runs at load and returns a `engine.poll.source.Source`."""

    name: str
    config: Any
    build: Callable[[Any, BuildContext, Path], Any]
    description: str
    #: the per-record key intake deduplicates on when the trigger names no idempotency_key
    #: (an `ExprSpec`; the ``files`` source's is name, size and mtime)
    idempotency_key: ExprSpec | None = None


def config_type(kind: StepKind) -> Any:
    """The config type of *kind*; a plain function stands for a factory resolved on first use."""
    return kind.config() if isinstance(kind.config, types.FunctionType) else kind.config
