"""The embedded executor adds worker threads while runs wait and every thread is in a run.

Runs whose step waits on a partner (a loopback server that holds each request until a given
number are in at once) show how many run side by side; the threads added end when the load is
gone. `FLOWRUN_MAX_WORKERS` bounds the threads, and one worker stays one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from engine import executor as executor_module
from engine.app import App
from engine.settings import Settings
from engine.store.base import RunFilter
from tests.conftest import wait_until


class Gathering:
    """Holds each request until *size* are in at once (or 10 s passed), counting the most."""

    def __init__(self, size: int):
        self.size = size
        self.inside = self.most = 0
        self.cond = threading.Condition()

    def __call__(self, request: Request) -> Response:
        with self.cond:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.most >= self.size, timeout=10)
            self.inside -= 1
        return Response("{}", content_type="application/json")


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[object]:
    apps: list[App] = []
    httpserver = HTTPServer(threaded=True)  # a thread per request: they wait side by side
    httpserver.start()

    def make(gathering: Gathering, **settings: object) -> App:
        httpserver.expect_request("/slow").respond_with_handler(gathering)
        folder = tmp_path / "flows"
        folder.mkdir(exist_ok=True)
        (folder / "slow.yaml").write_text(f"""flow: slow
steps:
  - id: call
    call:
      http: {{method: POST, url: "{httpserver.url_for('/slow')}"}}
""", encoding="utf-8")
        app = App(Settings(home=tmp_path / "home", flows=folder, **settings))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.executor.stop(timeout=5)
        app.store.close()
    httpserver.clear()
    httpserver.stop()


def succeeded(app: App, count: int) -> bool:
    return len(app.store.list_runs(RunFilter(flow="slow", status="succeeded"))) == count


def test_threads_are_added_while_every_worker_waits_on_a_partner(make_app, monkeypatch
                                                                 ) -> None:
    monkeypatch.setattr(executor_module, "SPARE_IDLE", 0.2)
    gathering = Gathering(6)
    app = make_app(gathering, workers=2, max_workers=8)
    app.executor.start(resume=False)
    for n in range(6):
        app.accept(app.flows.flows["slow"], {"n": n})
    wait_until(lambda: succeeded(app, 6), what="six runs succeeded")
    # two workers alone would hold two requests at a time; six were in together
    assert gathering.most == 6
    # the threads added under load end once it is gone; the two workers stay
    wait_until(lambda: app.executor._alive == 2, what="the added threads ended")


def test_max_workers_bounds_the_threads(make_app) -> None:
    gathering = Gathering(3)
    app = make_app(gathering, workers=1, max_workers=3)
    app.executor.start(resume=False)
    for n in range(5):
        app.accept(app.flows.flows["slow"], {"n": n})
    wait_until(lambda: succeeded(app, 5), what="five runs succeeded")
    assert gathering.most == 3


@pytest.mark.parametrize(("workers", "max_workers", "ceiling"), [
    (4, None, 32),   # default: eight times the workers
    (1, None, 1),    # one worker stays one: one run in steps at a time
    (4, 2, 4),       # never fewer than the workers
    (2, 10, 10),
])
def test_the_ceiling_of_worker_threads(tmp_path: Path, workers: int, max_workers: int | None,
                                       ceiling: int) -> None:
    settings = Settings(home=tmp_path, workers=workers, max_workers=max_workers)
    assert settings.worker_ceiling == ceiling


@pytest.mark.parametrize(("steps", "saves"), [
    # the call's checkpoint, then the final save
    ("  - id: call\n    call: {http: {method: POST, url: URL}}\n"
     "  - id: shape\n    transform: {jsonata: '$'}\n", 2),
    # the call is the last step: the run is saved once, ended, right after it
    ("  - id: shape\n    transform: {jsonata: '$'}\n"
     "  - id: call\n    call: {http: {method: POST, url: URL}}\n", 1),
])
def test_a_run_ending_with_a_side_effect_is_saved_once_after_it(
        tmp_path: Path, httpserver: HTTPServer, steps: str, saves: int) -> None:
    httpserver.expect_request("/call").respond_with_json({})
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "slow.yaml").write_text(
        "flow: slow\nsteps:\n" + steps.replace("URL", f'"{httpserver.url_for("/call")}"'),
        encoding="utf-8")
    app = App(Settings(home=tmp_path / "home", flows=folder))
    try:
        app.executor.start(resume=False)
        app.accept(app.flows.flows["slow"], {"n": 1})
        wait_until(lambda: succeeded(app, 1), what="the run succeeded")
        assert app.store._saves.written == saves
    finally:
        app.executor.stop(timeout=5)
        app.store.close()
