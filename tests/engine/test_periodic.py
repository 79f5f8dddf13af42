"""Background duties keep going when a tick fails, sleep as long as a tick asks, and stop."""

from __future__ import annotations

import logging
import threading

import pytest

from engine.periodic import Periodic


class Flaky(Periodic):
    duty = "flaky duty"

    def __init__(self, interval: float, fail: int, done_after: int):
        super().__init__(interval, first=0.0)
        self.calls = 0
        self.fail = fail
        self.done_after = done_after
        self.done = threading.Event()

    def tick(self) -> float | None:
        self.calls += 1
        if self.calls >= self.done_after:
            self.done.set()
        if self.calls <= self.fail:
            raise ConnectionError("Redis away for a moment")
        return 0.0  # asks for the next tick at once, not after the (long) interval


def test_a_failing_tick_is_logged_and_the_duty_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="flowrunner.periodic")
    duty = Flaky(interval=0.05, fail=2, done_after=5)
    duty.start()
    try:
        assert duty.done.wait(10)
    finally:
        duty.stop()
    assert [r.getMessage() for r in caplog.records][:2] == \
        ["flaky duty failed; trying again in 0.05 s"] * 2
    calls = duty.calls
    threading.Event().wait(0.2)
    assert duty.calls == calls  # stopped: no tick after stop()


def test_the_wait_a_tick_asks_for_replaces_the_interval() -> None:
    duty = Flaky(interval=3600, fail=0, done_after=20)  # an hour apart unless a tick says less
    duty.start()
    try:
        assert duty.done.wait(10)
    finally:
        duty.stop()


def test_an_interval_of_zero_is_off() -> None:
    duty = Flaky(interval=0, fail=0, done_after=1)
    duty.start()
    assert not duty.done.wait(0.2)
    assert duty.calls == 0
