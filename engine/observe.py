"""The seam for logs, metrics and traces: the events of a run's life (`Observer`), and several
observers told as one (`Observers`), each event only to the members that override it, an
observer that raises logged and never the run's failure.

The execution core (`engine.processing`) and intake tell the events; `engine.runlog`,
`engine.metrics` and `engine.otel` listen. This module stands below all of them: it names the
run's types for annotations only.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.compiled import CompiledFlow, CompiledStep
    from engine.records import DeadLetter, RunState

log = logging.getLogger("flowrunner.executor")


@dataclass(frozen=True)
class Retry:
    """A retry the runner scheduled after a failed attempt."""

    step: str
    #: the number of the attempt that failed (1-based)
    attempt: int
    #: seconds until the next attempt
    delay: float
    #: the failure's class, one of `engine.retry.REASON_KINDS`
    kind: str
    #: the failure, as recorded (secrets masked)
    message: str
    #: the HTTP status of the failure, if any
    status: int | None = None


class Observer:
    """The seam for logs, metrics and traces: the events of a run's life, each a no-op here.

    Subclass it and override what you watch. Every method is called after the fact, in the
    thread that did the work, and must be quick: intake calls `accepted` once per new run,
    `Core.run` once per run it spawned."""

    def accepted(self, state: RunState) -> None:
        """*state* was recorded by intake (webhook, poll, event, consume, manual), or with the
        run that spawned it (split, handoff), and is queued; told as soon as its record is
        written (a Celery worker may have it already)."""

    def advanced(self, flow: CompiledFlow, state: RunState, before: int) -> None:
        """*state* was advanced; its step records from index *before* on are new."""

    def retry_scheduled(self, flow: CompiledFlow, state: RunState, retry: Retry) -> None:
        """A step of *state* failed and is tried again after ``retry.delay`` seconds."""

    def dead_lettered(self, state: RunState) -> None:
        """*state* ended dead-lettered (``state.error`` holds the step and the reason); a
        replay that fails again names its entry in ``meta.replay_of``."""

    def finished(self, state: RunState) -> None:
        """*state* ended (succeeded, dead-lettered, handed off, ...) and is recorded."""

    def replayed(self, entry: DeadLetter, state: RunState, who: str | None) -> None:
        """Dead-letter *entry* is replayed as the run *state*, at *who*'s request."""

    def discarded(self, entry: DeadLetter, who: str | None) -> None:
        """Dead-letter *entry* was discarded by *who*."""

    def delivering(self, flow: CompiledFlow, state: RunState
                   ) -> contextlib.AbstractContextManager[Any] | None:
        """A context around one delivery of *state* (advance, spawn, record), or None."""
        return None

    def attempting(self, flow: CompiledFlow, step: CompiledStep, state: RunState
                   ) -> contextlib.AbstractContextManager[Any] | None:
        """A context around one attempt of *step* (the step runs inside it; *state* tells
        the outcome on exit), or None."""
        return None


#: the events `Observers` hands on to its members one by one
_EVENTS = ("accepted", "advanced", "retry_scheduled", "dead_lettered", "finished", "replayed",
           "discarded")


def _listens(observer: Observer, event: str) -> bool:
    """Whether *observer* does something on *event*: its class overrides the base's no-op."""
    return getattr(type(observer), event) is not getattr(Observer, event)


class Observers(Observer):
    """Several observers as one; an observer that raises is logged, never fails the run."""

    def __init__(self, observers: Sequence[Observer] = ()):
        self.members = tuple(observers)

    @property
    def members(self) -> tuple[Observer, ...]:
        return self._members

    @members.setter
    def members(self, observers: Sequence[Observer]) -> None:
        self._members = tuple(observers)
        # only the members that make contexts are asked, so a process without tracing pays
        # nothing per step (the runner gets no hook at all: `Core`)
        self._delivering = [m for m in self._members
                            if type(m).delivering is not Observer.delivering]
        self._attempting = [m for m in self._members
                            if type(m).attempting is not Observer.attempting]
        # and an event goes only to the members that do something with it (Metrics takes no
        # `accepted`, RunLog no `advanced`), so an event nobody listens to costs one lookup
        self._listening = {event: tuple(m for m in self._members if _listens(m, event))
                           for event in _EVENTS}

    @property
    def makes_contexts(self) -> bool:
        return bool(self._delivering or self._attempting)

    def _each(self, event: str, *args: Any) -> None:
        for observer in self._listening[event]:
            try:
                getattr(observer, event)(*args)
            except Exception:
                log.exception("observer %s failed on %s", type(observer).__name__, event)

    def accepted(self, state: RunState) -> None:
        self._each("accepted", state)

    def advanced(self, flow: CompiledFlow, state: RunState, before: int) -> None:
        self._each("advanced", flow, state, before)

    def retry_scheduled(self, flow: CompiledFlow, state: RunState, retry: Retry) -> None:
        self._each("retry_scheduled", flow, state, retry)

    def dead_lettered(self, state: RunState) -> None:
        self._each("dead_lettered", state)

    def finished(self, state: RunState) -> None:
        self._each("finished", state)

    def replayed(self, entry: DeadLetter, state: RunState, who: str | None) -> None:
        self._each("replayed", entry, state, who)

    def discarded(self, entry: DeadLetter, who: str | None) -> None:
        self._each("discarded", entry, who)

    def delivering(self, flow: CompiledFlow, state: RunState
                   ) -> contextlib.AbstractContextManager[Any] | None:
        return self._within(self._delivering, "delivering", flow, state)

    def attempting(self, flow: CompiledFlow, step: CompiledStep, state: RunState
                   ) -> contextlib.AbstractContextManager[Any] | None:
        return self._within(self._attempting, "attempting", flow, step, state)

    def _within(self, members: list[Observer], event: str, *args: Any
                ) -> contextlib.AbstractContextManager[Any] | None:
        if not members:
            return None
        if len(members) == 1:  # the usual case (traces): no stack around the one context
            return self._guarded(members[0], event, args)
        return self._stack(members, event, args)

    @staticmethod
    def _guarded(observer: Observer, event: str, args: tuple[Any, ...]) -> _Guarded | None:
        try:
            context = getattr(observer, event)(*args)
        except Exception:
            log.exception("observer %s failed on %s", type(observer).__name__, event)
            return None
        return None if context is None else _Guarded(context, observer, event)

    @contextlib.contextmanager
    def _stack(self, members: list[Observer], event: str, args: tuple[Any, ...]
               ) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for observer in members:
                guarded = self._guarded(observer, event, args)
                if guarded is not None:
                    stack.enter_context(guarded)
            yield


class _Guarded(contextlib.AbstractContextManager[Any]):
    """An observer's context whose own failure, entering or leaving, is logged — never the
    run's."""

    def __init__(self, context: contextlib.AbstractContextManager[Any], observer: Observer,
                 event: str):
        self.context, self.observer, self.event = context, observer, event
        self.entered = False

    def __enter__(self) -> Any:
        try:
            value = self.context.__enter__()
        except Exception:
            log.exception("observer %s failed on %s", type(self.observer).__name__, self.event)
            return None
        self.entered = True
        return value

    def __exit__(self, *exc: Any) -> None:
        if not self.entered:
            return
        try:
            self.context.__exit__(*exc)
        except Exception:
            log.exception("observer %s failed on leaving %s", type(self.observer).__name__,
                          self.event)
        # None: the run's own exception, if any, goes on
