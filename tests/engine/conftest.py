"""Fixtures of the engine tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.app import App
from tests.conftest import make_app


@pytest.fixture
def running_app(tmp_path: Path) -> Iterator[Callable[..., App]]:
    """`make_app` with the embedded executor started (unless ``start=False``); every App made
    is stopped and closed after the test."""
    apps: list[App] = []

    def make(flows: dict[str, str], *, start: bool = True, **settings: Any) -> App:
        app = make_app(tmp_path, flows, **settings)
        apps.append(app)
        if start:
            app.executor.start()
        return app

    yield make
    for app in apps:
        app.executor.stop(timeout=2)
        app.store.close()
