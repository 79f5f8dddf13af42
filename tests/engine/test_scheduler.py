"""The scheduler's slots: cron in a time zone (croniter's fire times), missed slots after
downtime, and two schedulers on one store (SQLite file or Redis) firing each slot once.

Time is a clock the test moves; polls read a local drop folder, whose runs tell which slots
fired (each poll writes nothing but takes every file it finds, so a tick is cheap).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.app import App
from engine.loader import Loader
from engine.poll.schedule import Schedule, slot_text
from engine.scheduler import Scheduler, schedule_name
from engine.store.base import Store
from engine.store.redis import RedisStore
from engine.store.sqlite import SqliteStore
from tests.conftest import make_app
from tests.engine.poll.support import Clock, scheduler

CRON_FLOW = """
flow: berlin-morning
trigger:
  poll:
    cron: "0 9 * * 1-5"
    timezone: Europe/Berlin
    missed: {missed}
    files: {{dir: "{dir}"}}
steps:
  - id: keep
    set: {{seen: "true"}}
"""


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


def cron_app(tmp_path: Path, missed: str = "skip", store: Store | None = None) -> App:
    drop = tmp_path / "drop"
    drop.mkdir(parents=True, exist_ok=True)
    return make_app(tmp_path, {"berlin-morning": CRON_FLOW.format(missed=missed, dir=drop)},
                    store=store)


def test_cron_fire_times_follow_the_time_zone_across_daylight_saving() -> None:
    schedule = Schedule(cron="0 9 * * 1-5", timezone="Europe/Berlin")
    fires = [utc(2026, 3, 26, 12)]
    for _ in range(4):
        fires.append(schedule.next_after(fires[-1]))
    # Thu 26 and Fri 27 March at 09:00 CET (08:00 UTC); after the switch on Sunday 29 March,
    # Monday and Tuesday at 09:00 CEST (07:00 UTC); the weekend has no slot
    assert [slot_text(t) for t in fires[1:]] == [
        "2026-03-27T08:00:00.000000Z", "2026-03-30T07:00:00.000000Z",
        "2026-03-31T07:00:00.000000Z", "2026-04-01T07:00:00.000000Z"]
    assert schedule.latest_at_or_before(utc(2026, 3, 30, 7)) == utc(2026, 3, 30, 7)
    assert schedule.latest_at_or_before(utc(2026, 3, 30, 6, 59)) == utc(2026, 3, 27, 8)


def test_every_slots_are_aligned_so_every_process_computes_the_same() -> None:
    schedule = Schedule(every=300)
    assert schedule.latest_at_or_before(utc(2026, 1, 1, 10, 7, 13)) == utc(2026, 1, 1, 10, 5)
    assert schedule.next_after(utc(2026, 1, 1, 10, 5)) == utc(2026, 1, 1, 10, 10)


def test_the_scheduler_fires_at_croniters_times_in_the_zone(tmp_path: Path) -> None:
    app = cron_app(tmp_path)
    clock = Clock(utc(2026, 3, 27, 7, 59, 59))
    with scheduler(app, clock) as sched:
        assert sched.tick() == []
        assert sched.next_poll() == utc(2026, 3, 27, 8)
        clock.now = utc(2026, 3, 27, 8, 0, 1)
        assert [slot_text(f.slot) for f in sched.tick()] == ["2026-03-27T08:00:00.000000Z"]
        assert sched.tick() == []  # fired once, however often it ticks
        assert sched.next_poll() == utc(2026, 3, 30, 7)  # Monday, summer time


@pytest.mark.parametrize(("missed", "fired"), [("skip", []), ("once", ["2026-03-31T07:00"])])
def test_after_downtime_missed_slots_are_skipped_or_fired_once(tmp_path: Path, missed: str,
                                                               fired: list[str]) -> None:
    app = cron_app(tmp_path, missed)
    clock = Clock(utc(2026, 3, 27, 8, 0, 5))
    with scheduler(app, clock) as sched:
        assert len(sched.tick()) == 1
    clock.now = utc(2026, 3, 31, 12)  # down over the weekend, Monday and Tuesday morning
    with scheduler(app, clock) as sched:
        assert [slot_text(f.slot)[:16] for f in sched.tick()] == fired
        assert sched.tick() == []
        clock.now = utc(2026, 4, 1, 7, 0, 2)
        assert [slot_text(f.slot)[:16] for f in sched.tick()] == ["2026-04-01T07:00"]


@pytest.fixture(params=["sqlite", "redis"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[type]:
    """Builds a second, separate handle on one store: as two processes would have."""
    made: list[Store] = []

    def build() -> Store:
        store: Store = (SqliteStore(tmp_path / "shared.db") if request.param == "sqlite"
                        else RedisStore(request.getfixturevalue("redis_url")))
        made.append(store)
        return store

    yield build  # type: ignore[misc]
    for store in made:
        store.close()


def test_two_schedulers_racing_for_every_slot_fire_each_once(tmp_path: Path,
                                                             store_factory) -> None:  # type: ignore[no-untyped-def]
    apps = [cron_app(tmp_path / name, "once", store=store_factory()) for name in ("a", "b")]
    clock = Clock(utc(2026, 3, 2, 8, 0, 1))
    # no leader lock here: both are active, so only the per-slot claim keeps them apart
    scheds = [Scheduler(app, clock=clock, inline=True, start_executor=False,
                        single_leader=False) for app in apps]
    fired: Counter[str] = Counter()
    try:
        for day in range(2, 7):  # Monday to Friday
            clock.now = utc(2026, 3, day, 8, 0, 1)
            barrier = threading.Barrier(2)
            results: list[list[str]] = [[], []]

            def tick(i: int, barrier: threading.Barrier, results: list[list[str]]) -> None:
                barrier.wait()
                results[i] = [slot_text(f.slot) for f in scheds[i].tick()]

            threads = [threading.Thread(target=tick, args=(i, barrier, results))
                       for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            fired.update(results[0] + results[1])
    finally:
        for sched in scheds:
            sched.close()
    assert sorted(fired) == [f"2026-03-0{d}T08:00:00.000000Z" for d in range(2, 7)]
    assert set(fired.values()) == {1}
    assert apps[0].store.get_cursor(schedule_name("berlin-morning")) == repr(utc(2026, 3, 6, 8))


def test_one_scheduler_is_active_and_a_stand_by_takes_over(tmp_path: Path,
                                                           store_factory) -> None:  # type: ignore[no-untyped-def]
    apps = [cron_app(tmp_path / name, store=store_factory()) for name in ("a", "b")]
    clock = Clock(utc(2026, 3, 2, 8, 0, 1))
    first = Scheduler(apps[0], clock=clock, inline=True, start_executor=False, lease=30)
    second = Scheduler(apps[1], clock=clock, inline=True, start_executor=False, lease=30)
    try:
        assert len(first.tick()) == 1 and first.leader
        assert second.tick() == [] and not second.leader
        first.close()  # stops and gives the lease up
        clock.now = utc(2026, 3, 3, 8, 0, 1)
        assert [slot_text(f.slot)[:10] for f in second.tick()] == ["2026-03-03"]
        assert second.leader
    finally:
        second.close()


@pytest.mark.parametrize(("trigger", "message"), [
    ('cron: "61 * * * *"', "4:12 trigger.poll.cron: '61 * * * *' is not a cron schedule"),
    ('cron: "0 9 * * *", timezone: Europe/Berln',
     "4:35 trigger.poll.timezone: unknown time zone 'Europe/Berln'; did you mean "
     "'Europe/Berlin'?"),
    ('every: 5m, http: {url: "http://x"}, paginate: {next_url: next, link_header: true}',
     "4:52 trigger.poll.paginate: give one way to reach the next page, not next_url and "
     "link_header"),
    ('every: 5m, http: {url: "http://x"}, paginate: {next_token: tok}',
     "4:65 trigger.poll.paginate.next_token: next_token needs token_param"),
    ('every: 5m, cursor: {field: at, start: "0"}',
     "4:17 trigger.poll.cursor: 'cursor:' applies to http sources"),
])
def test_poll_trigger_mistakes_are_reported_at_load(tmp_path: Path, loader: Loader,
                                                    trigger: str, message: str) -> None:
    source = "http" if "http:" in trigger else "files"
    text = "flow: p\ntrigger:\n  poll:\n    " + "{" + trigger + (
        "" if source == "http" else f', files: {{dir: "{tmp_path}"}}') + "}\nsteps:\n" \
        "  - id: s\n    set: {a: \"1\"}\n"
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    flow, problems = loader.load_file(tmp_path / "p.yaml")
    assert flow is None
    shown = [f"{p.line}:{p.column} {p.path}: {p.message}" for p in problems
             if p.severity == "error"]
    assert any(s.startswith(message) for s in shown), shown
