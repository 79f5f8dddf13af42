"""Which writes a run costs: a checkpoint after each side-effecting step the run goes on from,
none after one that was the run's last step (its final save follows with no step between)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from engine.app import App
from engine.records import RunState
from engine.store.sqlite import SqliteStore
from tests.conftest import make_app

FLOW = """
flow: orders
trigger: {webhook: {path: /hooks/orders}}
steps:
  - id: reserve
    call: {http: {method: POST, url: "URL/reserve"}}
    output: vars.reserved
  - id: shape
    transform: {jsonata: '{"order": order, "reserved": $vars.reserved.status}'}
  - id: confirm
    call: {http: {method: POST, url: "URL/confirm"}}
"""


class CountingStore(SqliteStore):
    """The SQLite store, telling which states each save_run wrote."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.saved: list[tuple[str, int]] = []

    def save_run(self, state: RunState, **kwargs: Any) -> None:
        super().save_run(state, **kwargs)
        self.saved.append((state.status, state.position))


@pytest.fixture
def app(tmp_path: Path, httpserver: HTTPServer) -> Iterator[App]:
    for path in ("/reserve", "/confirm"):
        httpserver.expect_request(path, method="POST").respond_with_json({"ok": True})
    store = CountingStore(tmp_path / "runs.db")
    made = make_app(tmp_path, {"orders": FLOW.replace("URL", httpserver.url_for("").rstrip("/"))},
                    store=store)
    made.executor.start()
    yield made
    made.executor.stop()
    store.close()


def test_a_run_is_checkpointed_after_a_call_it_goes_on_from_and_saved_once_at_its_end(
        app: App, httpserver: HTTPServer) -> None:
    store = app.store
    assert isinstance(store, CountingStore)
    accepted = app.accept(app.flows.flows["orders"], {"order": 7})
    state, = app.wait_for(accepted.run_id, timeout=15)
    assert state.status == "succeeded", state.error
    assert [r.path for r, _ in httpserver.log] == ["/reserve", "/confirm"]
    # after reserve (the run goes on to step 1); none after confirm, the last step: the
    # final save records its effect
    assert store.saved == [("running", 1), ("succeeded", 3)]
    recorded = store.get_run(accepted.run_id)
    assert recorded is not None and recorded.status == "succeeded"
    assert [s["id"] for s in recorded.steps] == ["reserve", "shape", "confirm"]
