"""Fixtures shared by the console's tests."""

from __future__ import annotations

import pytest

from engine.console import throttle
from tests.engine.console.support import Clock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The throttle's clock, stopped: a test moves it through ``clock.now``."""
    made = Clock()
    monkeypatch.setattr(throttle, "clock", made)
    return made
