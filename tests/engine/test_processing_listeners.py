"""`Observers` hands each event only to the members that listen to it, and the run story is not
built when its logger is off: the cost an observer nobody wants must not be paid per run."""

from __future__ import annotations

import logging
from typing import Any

from engine.observe import Observer, Observers
from engine.runlog import RunLog


class Finishes(Observer):
    def __init__(self) -> None:
        self.heard: list[str] = []

    def finished(self, state: Any) -> None:
        self.heard.append(f"finished {state}")


class Accepts(Observer):

    def __init__(self) -> None:
        self.heard: list[str] = []

    def accepted(self, state: Any) -> None:
        self.heard.append(f"accepted {state}")


def test_each_event_reaches_the_members_that_listen_to_it() -> None:
    finishes, accepts = Finishes(), Accepts()
    observers = Observers([finishes, accepts])
    observers.accepted("r1")  # type: ignore[arg-type]
    observers.advanced(None, "r1", 0)  # type: ignore[arg-type]  # nobody listens: no call
    observers.finished("r1")  # type: ignore[arg-type]
    assert finishes.heard == ["finished r1"]
    assert accepts.heard == ["accepted r1"]
    assert observers._listening["advanced"] == ()


def test_members_set_later_are_heard() -> None:
    observers = Observers([Finishes()])
    late = Finishes()
    observers.members = (*observers.members, late)
    observers.finished("r2")  # type: ignore[arg-type]
    assert late.heard == ["finished r2"]


class Untouchable:
    """A run state that fails when any of its attributes is read."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"read {name}")


def test_the_run_story_builds_nothing_when_info_is_off() -> None:
    logger = logging.getLogger("flowrunner.test.runlog-off")
    logger.setLevel(logging.WARNING)
    story = RunLog(logger)
    state: Any = Untouchable()
    story.accepted(state)
    story.finished(state)
    story.dead_lettered(state)
    logger.setLevel(logging.INFO)
    try:
        story.finished(state)
    except AssertionError as exc:
        assert "read" in str(exc)
    else:
        raise AssertionError("at INFO the run story reads the run")
