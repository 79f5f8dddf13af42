"""The x12 step draws control numbers from the app's own store: a SQLite file under the app's
home on the embedded default, Redis when the app keeps its state there (so workers on several
machines never hand out one ISA13 twice)."""

from __future__ import annotations

import re
from pathlib import Path

import redis

from engine.app import App
from engine.records import start
from tests.conftest import ROOT, make_app

SAMPLE = Path(__file__).parent / "samples" / "850_single.edi"
FLOW = """
flow: ack-850
steps:
  - id: read
    x12: {parse: {}}
  - id: ack
    x12: {ack: {}}
"""


def ack_app(folder: Path, redis_url: str | None = None) -> App:
    """An App over the ack flow, its home in *folder*."""
    return make_app(folder, {"ack-850": FLOW}, schemas=ROOT / "schemas", redis_url=redis_url)


def isa13(interchange: str) -> int:
    match = re.match(r"ISA(.)(?:[^~]*?\1){12}(\d{9})\1", interchange)
    assert match, interchange[:120]
    return int(match.group(2))


def acks(app: App, count: int) -> list[int]:
    """Run the flow *count* times in this app's runner; the ISA13 of each 997."""
    flow = app.flows.flows["ack-850"]
    numbers = []
    for _ in range(count):
        state = app.runner.advance(flow, start(flow, SAMPLE.read_text(encoding="utf-8")))
        assert state.status == "succeeded", state.error
        numbers.append(isa13(state.envelope["body"]))
    return numbers


def test_embedded_numbers_live_under_the_apps_home_and_continue_after_a_restart(
        tmp_path: Path) -> None:
    assert acks(ack_app(tmp_path), 3) == [1, 2, 3]
    assert (tmp_path / "home" / "x12-control-numbers.db").is_file()
    assert acks(ack_app(tmp_path), 2) == [4, 5]  # a new process on the same home
    assert acks(ack_app(tmp_path / "other"), 1) == [1]  # another home, its own sequence


def test_on_redis_every_app_draws_from_one_sequence(tmp_path: Path, redis_url: str) -> None:
    first, second = ack_app(tmp_path / "a", redis_url), ack_app(tmp_path / "b", redis_url)
    numbers = acks(first, 2) + acks(second, 2) + acks(first, 1)
    assert numbers == [1, 2, 3, 4, 5]  # two homes, as on two machines: still one sequence
    assert not (tmp_path / "a" / "home" / "x12-control-numbers.db").exists()
    client = redis.Redis.from_url(redis_url)
    assert client.keys("flowrun:x12:control:interchange:*")
