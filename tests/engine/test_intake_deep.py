"""A message nested deeper than anything can record (a poll record, a hand-off — webhooks refuse
such bodies with a 400 first) is dead-lettered as text instead of raising out of intake, so it
is neither lost nor able to block the poll that read it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.app import App
from engine.settings import Settings
from engine.store.base import DeadLetterFilter
from tests.conftest import ROOT

FLOW = """
flow: records
steps:
  - id: keep
    set: {kept: 'true'}
"""


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return {"record": value}


def test_a_too_deep_message_is_dead_lettered_as_text_and_intake_goes_on(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "records.yaml").write_text(FLOW, encoding="utf-8")
    app = App(Settings(home=tmp_path / "home", flows=tmp_path / "flows", schemas=ROOT / "schemas"))
    flow = app.flows.flows["records"]
    app.executor.start(resume=False)
    try:
        deep = app.accept(flow, nested(10_000), {"x-source": "portal"}, trigger="poll")
        fine = app.accept(flow, {"record": 1}, trigger="poll")
        assert app.wait_for(fine.run_id, timeout=10)[0].status == "succeeded"
    finally:
        app.executor.stop()
    state = app.store.get_run(deep.run_id)
    assert state is not None and state.status == "dead_lettered"
    assert state.error is not None and state.error["kind"] == "too_deep"
    entry, = app.store.list_dead_letters(DeadLetterFilter(flow="records"))
    assert entry.run_id == deep.run_id and entry.reason["kind"] == "too_deep"
    kept = entry.original["body"]["unrecordable"]
    assert kept.startswith("{'record': [[[[") and "..." in kept and len(kept) < 1000
    assert entry.original["headers"] == {"x-source": "portal"}
