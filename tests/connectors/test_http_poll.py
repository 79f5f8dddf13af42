"""HTTP polling against a partner on loopback whose records change between and during polls:
cursor with lookback, every pagination style, intake failing midway, failed polls retried.

Each test drives the scheduler with a clock of its own; polls run inline in the tick, so what a
poll did is visible when ``tick`` returns. Runs are counted per record version: none lost, none
run twice.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import requests

from engine.poll import cursor as cursors
from tests.conftest import make_app
from tests.engine.poll.support import T0, Clock, Partner, iso, runs, scheduler, versions_taken

FLOW = """
flow: po-acks
trigger:
  poll:
    every: 5m
    missed: once
    http:
      url: "{url}/acks"
      params: {{updated_since: "{{{{cursor}}}}"}}
      headers: {{X-Api-Key: "${{env:PARTNER_KEY}}"}}
    items: data
    cursor: {{field: updated_at, start: "{start}", lookback: 3m}}
    paginate: {paginate}
    idempotency_key: id & "@" & updated_at
steps:
  - id: keep
    set: {{ack: id}}
"""

STYLES = {
    "next_url": "{next_url: links.next}",
    "next_token": "{next_token: next_token, token_param: after}",
    "link_header": "{link_header: true}",
    "page_param": "{page_param: page}",
    "offset_param": "{offset_param: offset}",
}


def flow(partner: Partner, style: str = "next_url", start: str = iso(-60)) -> str:
    return FLOW.format(url=partner.url, start=start, paginate=STYLES[style])


@pytest.fixture(autouse=True)
def partner_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTNER_KEY", "k-123")


def test_records_changing_during_and_between_polls_are_each_taken_once(tmp_path: Path) -> None:
    with Partner(size=2) as partner:
        for i in range(5):
            partner.put(f"a{i}", i + 1)
        app = make_app(tmp_path, {"po-acks": flow(partner)})
        clock = Clock(T0.timestamp() + 3600)

        def during_first_poll(request: int) -> None:
            if request == 3:  # pages 1 and 2 were read: a write commits late, behind the
                partner.put("late", 3.5)  # page position, and a record already read changes
                partner.put("a1", 6, status="changed")

        partner.before_page = during_first_poll
        with scheduler(app, clock) as sched:
            assert [f.reason for f in sched.tick()] == ["slot"]
            partner.before_page = lambda request: None
            first = versions_taken(app, "po-acks")
            assert ("late", iso(3.5)) not in first  # its place had been read already
            assert ("a1", iso(6)) in first  # the change moved it onto a later page
            assert app.store.get_cursor(cursors.cursor_name("po-acks")) == iso(6)

            partner.put("a5", 7)
            clock.now += 300
            assert len(sched.tick()) == 1
            clock.now += 300
            assert len(sched.tick()) == 1  # nothing new: only duplicates seen again
            status = cursors.read_status(app.store, "po-acks")

    taken = versions_taken(app, "po-acks")
    # the late write arrived through the lookback, the new one from the cursor; none ran twice
    assert set(taken) == {("a0", iso(1)), ("a1", iso(2)), ("a1", iso(6)), ("a2", iso(3)),
                          ("a3", iso(4)), ("a4", iso(5)), ("late", iso(3.5)), ("a5", iso(7))}
    assert set(taken.values()) == {1}
    # each poll asked from the cursor minus the 3 minute lookback
    assert [q["updated_since"] for q in partner.requests if "after" not in q] == \
        [iso(-60), iso(3), iso(4)]
    assert status["cursor"] == iso(7) and status["state"] == "ok"
    assert status["records"] == status["duplicates"] == 4  # a3, a4, a1@6, a5 seen again
    assert status["lag"] == pytest.approx(clock.now - (T0.timestamp() + 7 * 60))


@pytest.mark.parametrize("style", list(STYLES))
def test_each_pagination_style_reads_every_page_once(tmp_path: Path, style: str) -> None:
    with Partner(style=style, size=2) as partner:
        for i in range(5):
            partner.put(f"p{i}", i)
        app = make_app(tmp_path, {"po-acks": flow(partner, style)})
        with scheduler(app, Clock(T0.timestamp() + 3600)) as sched:
            sched.tick()
        taken = versions_taken(app, "po-acks")
        assert sorted(i for i, _ in taken) == [f"p{i}" for i in range(5)]
        assert set(taken.values()) == {1}
        # numbered pages and offsets learn of the end from an empty page
        assert len(partner.requests) == (4 if style in ("page_param", "offset_param") else 3)
        envelopes = sorted(runs(app, "po-acks"), key=lambda e: e["body"]["id"])
        headers = envelopes[-1]["headers"]
        assert headers["page"] == 3 and headers["source_url"].startswith(f"{partner.url}/acks?")
        assert headers["fetched_at"].endswith("Z")
        assert envelopes[0]["meta"]["trigger"] == "poll"
        assert all(q["updated_since"] == iso(-60) for q in partner.requests)


def test_cursor_stays_when_intake_fails_midway_and_the_next_poll_resumes(tmp_path: Path) -> None:
    with Partner(size=2) as partner:
        for i in range(5):
            partner.put(f"m{i}", i)
        app = make_app(tmp_path, {"po-acks": flow(partner)}, busy_timeout=0.3)
        other = sqlite3.connect(app.settings.state_db, isolation_level=None,
                                check_same_thread=False)

        def lock_the_store(request: int) -> None:
            if request == 2:  # another process holds the state file while page 2 comes in
                other.execute("BEGIN EXCLUSIVE")

        partner.before_page = lock_the_store
        clock = Clock(T0.timestamp() + 3600)
        with scheduler(app, clock) as sched:
            sched.tick()
            other.execute("ROLLBACK")
            partner.before_page = lambda request: None
            assert sorted(i for i, _ in versions_taken(app, "po-acks")) == ["m0", "m1"]
            assert app.store.get_cursor(cursors.cursor_name("po-acks")) is None
            assert sched.next_poll() < clock.now + 300  # a retry, due before the next slot

            clock.now = sched.next_poll()  # the retry, from the same cursor
            assert [f.reason for f in sched.tick()] == ["retry"]
        other.close()
        taken = versions_taken(app, "po-acks")
        assert sorted(i for i, _ in taken) == [f"m{i}" for i in range(5)]
        assert set(taken.values()) == {1}
        assert app.store.get_cursor(cursors.cursor_name("po-acks")) == iso(4)


def test_commit_page_moves_the_cursor_after_each_page_taken_in(tmp_path: Path) -> None:
    with Partner(size=2) as partner:
        for i in range(5):
            partner.put(f"m{i}", i)
        text = flow(partner).replace("lookback: 3m}", "lookback: 3m, commit: page}")
        app = make_app(tmp_path, {"po-acks": text}, busy_timeout=0.3)
        other = sqlite3.connect(app.settings.state_db, isolation_level=None,
                                check_same_thread=False)
        seen: list[str | None] = []

        def watch(request: int) -> None:
            # what the store holds when each page is asked for; page 3 finds the store locked
            seen.append(app.store.get_cursor(cursors.cursor_name("po-acks")))
            if request == 3:
                other.execute("BEGIN EXCLUSIVE")

        partner.before_page = watch
        clock = Clock(T0.timestamp() + 3600)
        with scheduler(app, clock) as sched:
            sched.tick()
            other.execute("ROLLBACK")
        other.close()
        # pages 1 and 2 (m0..m3) were taken in and committed page by page; the poll failed
        # taking m4 in, and the cursor stayed at the end of page 2, not at its start
        assert seen[:3] == [None, iso(1), iso(3)]
        assert sorted(i for i, _ in versions_taken(app, "po-acks")) == [f"m{i}" for i in range(4)]
        assert app.store.get_cursor(cursors.cursor_name("po-acks")) == iso(3)


def test_a_failed_poll_is_retried_per_policy_with_its_cursor_kept(tmp_path: Path) -> None:
    with Partner(size=10) as partner:
        partner.put("f0", 0)
        text = flow(partner).replace(
            "    idempotency_key:",
            "    retry: {max_attempts: 3, backoff: {initial: 30s, jitter: none}}\n"
            "    idempotency_key:")
        app = make_app(tmp_path, {"po-acks": text})
        clock = Clock(T0.timestamp() + 3600)
        with scheduler(app, clock) as sched:
            sched.tick()
            partner.put("f1", 1)
            partner.failures = [(503, {}), (503, {"Retry-After": "120"})]
            clock.now += 300
            start = clock.now
            assert [(f.reason, f.attempt) for f in sched.tick()] == [("slot", 1)]
            assert sched.next_poll() == start + 30  # the back-off, scheduled, not slept
            assert cursors.read_status(app.store, "po-acks")["last_error"]["status"] == 503

            clock.now = start + 30
            assert [(f.reason, f.attempt) for f in sched.tick()] == [("retry", 2)]
            assert sched.next_poll() == start + 30 + 120  # Retry-After honoured

            clock.now = start + 150
            assert [(f.reason, f.attempt) for f in sched.tick()] == [("retry", 3)]
            assert sched.tick() == []
        assert [q["updated_since"] for q in partner.requests] == [iso(-60)] + [iso(-3)] * 3
        assert sorted(versions_taken(app, "po-acks")) == [("f0", iso(0)), ("f1", iso(1))]
        assert cursors.read_status(app.store, "po-acks")["state"] == "ok"


def test_the_request_carries_environment_values(tmp_path: Path) -> None:
    seen: list[str] = []
    with Partner(size=10) as partner:
        partner.put("e0", 0)
        app = make_app(tmp_path, {"po-acks": flow(partner).replace(
            "X-Api-Key", "X-Scheduler")})
        original = partner._answer

        def capture(query: dict[str, str]) -> tuple[int, dict[str, str], object]:
            seen.append(query["_scheduler"])
            return original(query)

        partner._answer = capture  # type: ignore[method-assign]
        with scheduler(app, Clock(T0.timestamp() + 3600)) as sched:
            sched.tick()
    assert seen == ["k-123"]


def test_the_partner_pages_oldest_first_from_updated_since() -> None:
    with Partner(size=2) as partner:
        for i in range(3):
            partner.put(f"r{i}", i)
        first = requests.get(f"{partner.url}/acks", params={"updated_since": iso(1)}).json()
        assert [r["id"] for r in first["data"]] == ["r1", "r2"]
        assert "links" not in first
