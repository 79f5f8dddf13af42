"""The Store contract: the same tests against SqliteStore, RedisStore (a real redis-server) and
PostgresStore (a real PostgreSQL, a database of the test session's own).

Whatever a store is built on, the runner, the executors, intake and the operator commands must
not see a difference: same records back, same filters, same idempotency, same locks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from engine.records import DeadLetter, RunState, Spawn
from engine.store.base import (
    JOBS_KEPT,
    BulkJob,
    DeadLetterFilter,
    Keep,
    PayloadQuery,
    RetentionPolicy,
    RunFilter,
    Store,
    StoreError,
    payload_indexed,
)
from engine.store.postgres import PostgresStore
from engine.store.redis import RedisStore
from engine.store.sqlite import SqliteStore
from tests.conftest import free_port

T0 = 1_700_000_000.0


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        made: Store = SqliteStore(tmp_path / "state.db")
    elif request.param == "redis":
        made = RedisStore(request.getfixturevalue("redis_url"))
    else:
        made = PostgresStore(request.getfixturevalue("postgres_url"))
    yield made
    made.close()


def run(run_id: str, *, flow: str = "orders", status: str = "queued", key: str | None = None,
        correlation_id: str = "", created: float = 0.0, **extra: Any) -> RunState:
    return RunState(run_id=run_id, flow_id=flow, flow_version="v1",
                    envelope={"body": {"n": run_id}, "headers": {}, "vars": {},
                              "meta": {"run_id": run_id}},
                    original={"body": {"n": run_id}, "headers": {}}, status=status, key=key,
                    correlation_id=correlation_id or run_id, created_at=T0 + created, **extra)


def letter(entry_id: str, *, flow: str = "orders", step: str | None = "erp",
           message: str = "step 'erp': ERP answered 422", created: float = 0.0,
           status: str = "open", kind: str | None = None, http: int | None = None,
           ) -> DeadLetter:
    classified = {k: v for k, v in (("kind", kind), ("status", http)) if v is not None}
    return DeadLetter(id=entry_id, run_id=f"run-{entry_id}", flow_id=flow, flow_version="v1",
                      step=step, reason={"message": message, "step": step, **classified},
                      original={"body": {"x": 1}, "headers": {}},
                      envelope={"body": {"x": 1}, "headers": {}, "vars": {}, "meta": {}},
                      created_at=T0 + created, status=status)


def ids(runs: list[RunState]) -> list[str]:
    return [r.run_id for r in runs]


# -- runs --------------------------------------------------------------------------------------
def test_a_saved_run_comes_back_equal(store: Store) -> None:
    state = run("r1", key="1001", attempts=[{"attempt": 1, "error": "503"}], due_at=T0 + 5,
                spawn=[Spawn("other", {"body": 1}, 2)], steps=[{"id": "a", "status": "ok"}])
    store.save_run(state)
    assert store.get_run("r1") == state
    assert store.get_run("missing") is None


def test_saving_again_replaces_the_record(store: Store) -> None:
    store.save_run(run("r1"))
    store.save_run(run("r1", status="succeeded", position=4))
    got = store.get_run("r1")
    assert got is not None and (got.status, got.position) == ("succeeded", 4)
    assert ids(store.list_runs(RunFilter(status="queued"))) == []
    assert ids(store.list_runs(RunFilter(status="succeeded"))) == ["r1"]


def test_list_runs_filters_newest_first(store: Store) -> None:
    store.save_run(run("a", flow="orders", key="1001", correlation_id="c1", created=1))
    store.save_run(run("b", flow="orders", key="1002", correlation_id="c1", created=2,
                       status="succeeded"))
    store.save_run(run("c", flow="invoices", key="1001", correlation_id="c2", created=3))
    store.save_run(run("d", flow="orders", key="1001", created=4, status="dead_lettered"))
    assert ids(store.list_runs(RunFilter())) == ["d", "c", "b", "a"]
    assert ids(store.list_runs(RunFilter(flow="orders"))) == ["d", "b", "a"]
    assert ids(store.list_runs(RunFilter(status="queued"))) == ["c", "a"]
    assert ids(store.list_runs(RunFilter(key="1001"))) == ["d", "c", "a"]
    assert ids(store.list_runs(RunFilter(key="1001", flow="orders"))) == ["d", "a"]
    assert ids(store.list_runs(RunFilter(correlation_id="c1"))) == ["b", "a"]
    assert ids(store.list_runs(RunFilter(flow="orders", status="succeeded"))) == ["b"]
    assert ids(store.list_runs(RunFilter(since=T0 + 2, until=T0 + 4))) == ["c", "b"]
    assert ids(store.list_runs(RunFilter(limit=2))) == ["d", "c"]
    assert ids(store.list_runs(RunFilter(flow="nothing"))) == []


def test_list_runs_limit_applies_after_filtering(store: Store) -> None:
    for i in range(30):
        store.save_run(run(f"r{i:02}", key="k" if i % 10 == 0 else f"x{i}", created=i,
                           status="succeeded" if i % 10 == 0 else "queued"))
    found = store.list_runs(RunFilter(status="succeeded", key="k", limit=2))
    assert ids(found) == ["r20", "r10"]


def test_list_runs_by_flow_and_a_rare_status_pages_through_the_history(store: Store) -> None:
    for i in range(450):
        status = "filtered" if i % 30 == 0 else "succeeded"
        store.save_run(run(f"r{i:03}", flow=("orders", "invoices", "asn")[i % 3], status=status,
                           created=i))
    found = store.list_runs(RunFilter(flow="orders", status="filtered", limit=4))
    assert ids(found) == ["r420", "r390", "r360", "r330"]
    assert len(store.list_runs(RunFilter(flow="invoices", status="succeeded", limit=500))) == 150
    assert ids(store.list_runs(RunFilter(flow="asn", status="filtered"))) == []
    assert ids(store.list_runs(RunFilter(flow="orders", limit=1))) == ["r447"]


def test_active_runs_are_queued_running_or_retrying_oldest_first(store: Store) -> None:
    store.save_run(run("late", status="retrying", created=3, due_at=T0 + 60))
    store.save_run(run("done", status="succeeded", created=0))
    store.save_run(run("first", status="queued", created=1))
    store.save_run(run("busy", status="running", created=2))
    store.save_run(run("dead", status="dead_lettered", created=4))
    assert ids(store.active_runs()) == ["first", "busy", "late"]


def test_count_runs_by_status_all_and_per_flow(store: Store) -> None:
    store.save_run(run("a", flow="orders", status="queued"))
    store.save_run(run("b", flow="orders", status="queued"))
    store.save_run(run("c", flow="invoices", status="queued"))
    store.save_run(run("a", flow="orders", status="succeeded"))
    assert store.count_runs() == {"queued": 2, "succeeded": 1}
    assert store.count_runs("orders") == {"queued": 1, "succeeded": 1}
    assert store.count_runs("none") == {}


def test_save_run_records_dead_letter_and_children_together(store: Store) -> None:
    parent = run("p", status="dead_lettered")
    children = [run("c1", created=1), run("c2", created=2)]
    store.save_run(parent, dead_letter=letter("e1"), children=children)
    assert store.get_run("p") is not None and store.get_run("c2") is not None
    assert ids(store.active_runs()) == ["c1", "c2"]
    entry = store.get_dead_letter("e1")
    assert entry is not None and entry.message == "step 'erp': ERP answered 422"


# -- idempotency -------------------------------------------------------------------------------
def test_create_run_records_once_per_idempotency_key(store: Store) -> None:
    assert store.create_run(run("first"), ("orders", "delivery-1", 60)) is None
    assert store.create_run(run("second"), ("orders", "delivery-1", 60)) == "first"
    assert store.get_run("second") is None
    assert store.create_run(run("other-scope"), ("invoices", "delivery-1", 60)) is None
    assert store.create_run(run("no-key")) is None
    assert store.get_run("no-key") is not None


def test_create_runs_records_a_group_and_finds_duplicates_inside_it(store: Store) -> None:
    store.create_run(run("earlier"), ("orders", "held", 60))
    holders = store.create_runs([
        (run("a"), ("orders", "k1", 60)),
        (run("b"), ("orders", "k1", 60)),  # the same key as a, in the same group
        (run("c"), ("orders", "held", 60)),  # a key claimed by an earlier group
        (run("d"), None),
        (run("e"), ("invoices", "k1", 60)),  # another scope
    ])
    assert holders == [None, "a", "earlier", None, None]
    assert store.get_run("b") is None and store.get_run("c") is None
    assert {r.run_id for r in store.active_runs()} == {"earlier", "a", "d", "e"}
    assert store.count_runs() == {"queued": 4}


def test_a_record_keeps_the_message_once_and_gives_it_back_whole(store: Store) -> None:
    body = {"order": "1001", "lines": [{"sku": "A-1", "qty": 2}] * 50}
    state = run("p")
    state.original = {"body": body, "headers": {"x-id": "1"}}
    state.envelope = {"body": body, "headers": {"x-id": "1"}, "vars": {}, "meta": {}}
    store.create_run(state)
    back = store.get_run("p")
    assert back is not None
    assert back.envelope["body"] == body and back.original["body"] == body
    assert back.envelope["headers"] == {"x-id": "1"}
    back.envelope["body"] = {"changed": True}  # a step replaced the body: both are kept
    store.save_run(back)
    again = store.get_run("p")
    assert again is not None
    assert again.envelope["body"] == {"changed": True} and again.original["body"] == body


def test_integers_past_64_bits_and_unicode_come_back_exactly(store: Store) -> None:
    state = run("big")
    body = {"id": 2**70 + 1, "small": 820982911946154508, "name": "Zoë \u2028 ✓"}
    state.original["body"] = state.envelope["body"] = body
    store.create_run(state)
    back = store.get_run("big")
    assert back is not None and back.envelope["body"] == body
    assert isinstance(back.envelope["body"]["id"], int)


def test_an_expired_idempotency_key_is_free_again(store: Store) -> None:
    assert store.create_run(run("first"), ("orders", "d", 0.05)) is None
    time.sleep(0.1)
    assert store.create_run(run("again"), ("orders", "d", 60)) is None
    assert store.create_run(run("third"), ("orders", "d", 60)) == "again"


def test_concurrent_create_run_with_one_key_records_one_run(store: Store) -> None:
    winners: list[str | None] = []
    barrier = threading.Barrier(8)

    def create(i: int) -> None:
        barrier.wait()
        winners.append(store.create_run(run(f"r{i}"), ("orders", "same", 60)))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert winners.count(None) == 1
    holders = {w for w in winners if w is not None}
    assert len(holders) == 1 and store.get_run(holders.pop()) is not None
    assert len(store.list_runs(RunFilter())) == 1


# -- flow versions -----------------------------------------------------------------------------
def test_flow_versions_keep_the_first_text(store: Store) -> None:
    store.save_flow_version("orders", "abc", "flow: orders\n")
    store.save_flow_version("orders", "abc", "something else")
    assert store.get_flow_version("orders", "abc") == "flow: orders\n"
    assert store.get_flow_version("orders", "zzz") is None
    assert store.get_flow_version("other", "abc") is None


# -- dead letters ------------------------------------------------------------------------------
def put_letters(store: Store, *entries: DeadLetter) -> None:
    for entry in entries:
        store.save_run(run(entry.run_id, status="dead_lettered"), dead_letter=entry)


def test_dead_letter_comes_back_equal(store: Store) -> None:
    entry = letter("e1")
    entry.audit.append({"action": "replay", "who": "ops"})
    put_letters(store, entry)
    assert store.get_dead_letter("e1") == entry
    assert store.get_dead_letter("nope") is None


def test_list_dead_letters_filters(store: Store) -> None:
    put_letters(store,
                letter("e1", flow="orders", step="erp", message="ERP answered 422", created=1),
                letter("e2", flow="orders", step="check", message="lines: too short", created=2),
                letter("e3", flow="invoices", step="erp", message="erp TIMEOUT 100%_", created=3),
                letter("e4", flow="orders", step=None, message="no ERP here", created=4,
                       status="discarded"))

    def found(**how: Any) -> list[str]:
        return [e.id for e in store.list_dead_letters(DeadLetterFilter(**how))]

    assert found() == ["e3", "e2", "e1"]
    assert found(status=None) == ["e4", "e3", "e2", "e1"]
    assert found(status="discarded") == ["e4"]
    assert found(flow="orders") == ["e2", "e1"]
    assert found(step="erp") == ["e3", "e1"]
    assert found(step="erp", flow="orders") == ["e1"]
    assert found(error="erp") == ["e3", "e1"]
    assert found(error="100%_") == ["e3"]
    assert found(error="%") == ["e3"]
    assert found(since=T0 + 2, until=T0 + 3) == ["e2"]
    assert found(limit=1) == ["e3"]


def test_list_dead_letters_by_error_kind_http_status_and_time(store: Store) -> None:
    put_letters(store,
                letter("e1", kind="http", http=422, created=1),
                letter("e2", kind="timeout", message="ERP timed out after 10 s", created=2),
                letter("e3", flow="invoices", kind="http", http=503, created=3),
                letter("e4", step="check", kind="validation", message="lines: too short",
                       created=4),
                letter("e5", kind="http", http=422, created=5),
                letter("e6", created=6))  # an entry from before kinds: matches no kind

    def found(**how: Any) -> list[str]:
        return [e.id for e in store.list_dead_letters(DeadLetterFilter(**how))]

    assert found(kind="http") == ["e5", "e3", "e1"]
    assert found(kind="http", http_status=422) == ["e5", "e1"]
    assert found(http_status=503) == ["e3"]
    assert found(kind="timeout") == ["e2"]
    assert found(kind="validation", step="check") == ["e4"]
    assert found(kind="http", flow="orders", since=T0 + 2) == ["e5"]
    assert found(kind="http", until=T0 + 3) == ["e1"]
    assert found(kind="http", limit=1) == ["e5"]
    assert found(kind="connection") == []
    entry = store.get_dead_letter("e1")
    assert entry is not None
    entry.reason = {**entry.reason, "kind": "timeout", "status": None}  # failed again, otherwise
    store.update_dead_letter(entry)
    assert found(kind="http") == ["e5", "e3"] and found(kind="timeout") == ["e2", "e1"]


def recorded(store: Store, *runs: RunState) -> None:
    """Runs recorded as intake records them (their payload is kept for search then)."""
    assert store.create_runs([(r, None) for r in runs]) == [None] * len(runs)


def with_body(run_id: str, body: Any, **how: Any) -> RunState:
    state = run(run_id, **how)
    state.original = {"body": body, "headers": {}}
    state.envelope = {**state.envelope, "body": body}
    return state


def test_list_runs_by_a_field_of_the_payload(store: Store) -> None:
    recorded(store,
             with_body("a", {"customer": {"email": "ann@example.com"}, "total": 42}, created=1),
             with_body("b", {"customer": {"email": "bob@example.com"}, "total": "42"},
                       created=2, flow="invoices"),
             with_body("c", {"customer": {"email": "ann@example.com"}, "vip": True}, created=3,
                       key="1003"),
             with_body("d", "customer.email = ann@example.com", created=4),  # text, not JSON
             with_body("e", [{"customer": {"email": "ann@example.com"}}], created=5))

    def found(condition: str, **how: Any) -> list[str]:
        return ids(store.list_runs(RunFilter(payload=PayloadQuery.parse(condition), **how)))

    assert found("customer.email = ann@example.com") == ["c", "a"]
    assert found('payload.customer.email = "ann@example.com"') == ["c", "a"]
    assert found("customer.email=ann@example.com", flow="orders", key="1003") == ["c"]
    assert found("customer.email = ann@example.com", limit=1) == ["c"]
    assert found("customer.email = ann@example.com", until=T0 + 3) == ["a"]
    assert found("total = 42") == ["b", "a"]  # as written (text) and as a number
    assert found("vip = true") == ["c"]
    assert found("vip = 1") == []  # true is not 1
    assert found("customer = ann@example.com") == []  # an object is no text
    assert found("customer.email = nobody@example.com") == []
    assert found("customer.email.x = ann@example.com") == []


def test_a_payload_value_no_json_number_can_hold_is_looked_for_as_text(store: Store) -> None:
    big = "123456789012345678901234567890"  # past 64 bits: jsonb and orjson hold no such number
    recorded(store, with_body("t", {"id": big, "x": "1e999"}, created=1),
             with_body("n", {"id": None, "x": None}, created=2))

    def found(condition: str) -> list[str]:
        return ids(store.list_runs(RunFilter(payload=PayloadQuery.parse(condition))))

    assert found(f"id = {big}") == ["t"]
    # 1e999 reads as infinity, NaN as not a number: neither is null, nor any JSON value
    assert found("x = 1e999") == ["t"]
    assert found("x = NaN") == [] and found("id = -Infinity") == []
    assert found("x = null") == ["n"]


def test_a_payload_search_without_an_index_reads_a_window_of_the_latest_runs(
        store: Store) -> None:
    recorded(store, with_body("old", {"po": "P-1"}, created=1),
             *(with_body(f"n{i}", {"po": f"P-{i + 2}"}, created=2 + i) for i in range(3)))
    found = ids(store.list_runs(RunFilter(payload=PayloadQuery.parse("po = P-1"), window=3)))
    # PostgreSQL searches every run through its index; SQLite and Redis the latest 3 here
    assert found == (["old"] if payload_indexed(store) else [])
    assert ids(store.list_runs(RunFilter(payload=PayloadQuery.parse("po = P-1"),
                                         window=4))) == ["old"]


def test_update_dead_letter_changes_status_and_audit(store: Store) -> None:
    put_letters(store, letter("e1"))
    entry = store.get_dead_letter("e1")
    assert entry is not None
    entry.status = "replaying"
    entry.audit.append({"action": "replay", "run_id": "r9"})
    store.update_dead_letter(entry)
    assert store.get_dead_letter("e1") == entry
    assert store.list_dead_letters(DeadLetterFilter()) == []
    assert [e.id for e in store.list_dead_letters(DeadLetterFilter(status="replaying"))] == ["e1"]


def test_dead_letters_are_counted_by_status_and_flow(store: Store) -> None:
    put_letters(store, letter("e1", flow="orders"), letter("e2", flow="orders"),
                letter("e3", flow="invoices"), letter("e4", flow="orders", status="discarded"))
    assert store.count_dead_letters() == {"orders": 2, "invoices": 1}
    entry = store.get_dead_letter("e3")
    assert entry is not None
    entry.status = "replayed"
    store.update_dead_letter(entry)
    store.update_dead_letter(entry)  # saved again unchanged: counted once
    assert store.count_dead_letters("open") == {"orders": 2}
    assert store.count_dead_letters("replayed") == {"invoices": 1}
    assert store.count_dead_letters("discarded") == {"orders": 1}
    store.update_dead_letter(letter("ghost"))  # nothing created, nothing counted
    assert store.count_dead_letters() == {"orders": 2}


def test_an_entry_settled_with_each_replay_run_stays_one_entry_counted_once(store: Store) -> None:
    """A replay that fails again is recorded with its run as the same entry, open again:
    however often that happens, one entry, counted once (engine/dlq.settle)."""
    put_letters(store, letter("e1"), letter("e2", flow="invoices"))
    for n in range(3):
        entry = store.get_dead_letter("e1")
        assert entry is not None
        entry.status = "replaying"
        entry.audit.append({"action": "replay", "run_id": f"replay-{n}", "result": "queued"})
        store.update_dead_letter(entry)
        assert store.count_dead_letters("open") == {"invoices": 1}
        assert store.count_dead_letters("replaying") == {"orders": 1}
        entry.status = "open"
        entry.audit[-1].update(result="dead_lettered", error={"status": 422})
        store.save_run(run(f"replay-{n}", status="dead_lettered"), dead_letter=entry)
    assert store.count_dead_letters("open") == {"orders": 1, "invoices": 1}
    assert store.count_dead_letters("replaying") == {}
    opened = store.list_dead_letters(DeadLetterFilter(flow="orders"))
    assert [e.id for e in opened] == ["e1"]
    assert [a["run_id"] for a in opened[0].audit] == ["replay-0", "replay-1", "replay-2"]
    assert {a["result"] for a in opened[0].audit} == {"dead_lettered"}


def test_an_entry_saved_unchanged_with_a_run_is_not_counted_again(store: Store) -> None:
    put_letters(store, letter("e1"))
    entry = store.get_dead_letter("e1")
    assert entry is not None
    store.save_run(run("r2", status="dead_lettered"), dead_letter=entry)
    store.save_run(run("r3", status="dead_lettered"), dead_letter=entry)
    assert store.count_dead_letters() == {"orders": 1}
    assert len(store.list_dead_letters(DeadLetterFilter(status=None))) == 1


def test_update_of_an_unknown_dead_letter_creates_nothing(store: Store) -> None:
    store.update_dead_letter(letter("ghost"))
    assert store.get_dead_letter("ghost") is None
    assert store.list_dead_letters(DeadLetterFilter(status=None)) == []


# -- cursors and locks -------------------------------------------------------------------------
def test_cursors(store: Store) -> None:
    assert store.get_cursor("supplier-acks") is None
    store.set_cursor("supplier-acks", "2026-01-01T00:00:00Z")
    store.set_cursor("supplier-acks", "2026-02-01T00:00:00Z")
    assert store.get_cursor("supplier-acks") == "2026-02-01T00:00:00Z"


def test_locks_have_one_owner_until_released_or_expired(store: Store) -> None:
    assert store.acquire_lock("poll:a", "w1", 30)
    assert not store.acquire_lock("poll:a", "w2", 30)
    assert store.acquire_lock("poll:a", "w1", 30)  # the owner renews its lease
    store.release_lock("poll:a", "w2")  # not the owner: nothing happens
    assert not store.acquire_lock("poll:a", "w2", 30)
    store.release_lock("poll:a", "w1")
    assert store.acquire_lock("poll:a", "w2", 0.05)
    time.sleep(0.1)
    assert store.acquire_lock("poll:a", "w3", 30)
    assert store.acquire_lock("poll:b", "w2", 30)


# -- Redis only --------------------------------------------------------------------------------
def test_unreachable_redis_is_a_store_error_naming_the_server() -> None:
    url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"
    store = RedisStore(url)
    with pytest.raises(StoreError) as caught:
        store.get_run("r1")
    assert "127.0.0.1" in str(caught.value) and "s3cret" not in str(caught.value)
    with pytest.raises(StoreError):
        store.create_run(run("r1"), ("orders", "k", 60))


def test_a_redis_store_written_without_dead_letter_counts_is_counted_exactly(
        redis_url: str) -> None:
    """An upgrade: entries recorded by a version that kept no counts (nor the flow in the
    entry's hash). The counts are rebuilt from the entries once; a replay of an old entry
    moves one count, never below zero."""
    old = RedisStore(redis_url)
    put_letters(old, letter("e1"), letter("e2"), letter("e3", flow="invoices"),
                letter("e4", status="discarded"))
    old.close()
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    for name in raw.scan_iter("flowrun:dls:count*"):
        raw.delete(name)
    for entry_id in ("e1", "e2", "e3", "e4"):
        raw.hdel(f"flowrun:dl:{entry_id}", "flow")
    raw.zrem("flowrun:dls:flow:orders", "e2")  # its flow is then read from its record
    raw.hset("flowrun:dls:count:open", "invoices", 0)  # a wrong count left behind

    store = RedisStore(redis_url)
    entry = store.get_dead_letter("e3")
    assert entry is not None
    entry.status = "replaying"  # the first thing done after the upgrade: replay an old entry
    store.update_dead_letter(entry)
    assert store.count_dead_letters("open") == {"orders": 2}
    assert store.count_dead_letters("replaying") == {"invoices": 1}
    assert store.count_dead_letters("discarded") == {"orders": 1}
    assert all(int(n) >= 0 for n in raw.hvals("flowrun:dls:count:open"))
    # rebuilt once: a later process keeps counting from there
    entry.status = "open"
    later = RedisStore(redis_url)
    later.update_dead_letter(entry)
    assert later.count_dead_letters("open") == {"orders": 2, "invoices": 1}
    for client in (raw, store, later):
        client.close()


# -- retention ---------------------------------------------------------------------------------
DAY = 86400.0
NOW = T0 + 100 * DAY


def ended(run_id: str, status: str = "succeeded", *, days_ago: float, flow: str = "orders",
          key: str | None = None, **extra: Any) -> RunState:
    """A run created and finished *days_ago* before NOW."""
    state = run(run_id, flow=flow, status=status, key=key, **extra)
    state.created_at = state.updated_at = NOW - days_ago * DAY
    return state


def test_prune_removes_finished_runs_past_retention_with_their_indexes(store: Store) -> None:
    for state in [ended("old-ok", days_ago=20, key="k1"), ended("old-filtered", "filtered",
                  days_ago=15, key="k1"), ended("recent", days_ago=3, key="k1"),
                  ended("old-queued", "queued", days_ago=30, key="k1"),
                  ended("old-retrying", "retrying", days_ago=30, key="k1")]:
        store.save_run(state)
    report = store.prune(RetentionPolicy(Keep(runs=14 * DAY)), NOW)
    assert report.counts == {("orders", "runs"): 2}
    assert report.bytes_freed > 0
    assert store.get_run("old-ok") is None and store.get_run("old-filtered") is None
    assert sorted(ids(store.list_runs(RunFilter(key="k1")))) == [
        "old-queued", "old-retrying", "recent"]
    assert ids(store.list_runs(RunFilter(status="succeeded"))) == ["recent"]
    assert ids(store.list_runs(RunFilter(correlation_id="old-ok"))) == []
    assert store.count_runs() == {"succeeded": 1, "queued": 1, "retrying": 1}
    assert store.count_runs("orders") == {"succeeded": 1, "queued": 1, "retrying": 1}
    assert store.prune(RetentionPolicy(Keep(runs=14 * DAY)), NOW).counts == {}


def test_a_run_is_kept_for_its_retention_after_it_finished(store: Store) -> None:
    late = ended("late", days_ago=20)
    late.updated_at = NOW - 2 * DAY  # retried for 18 days, finished two days ago
    store.save_run(late)
    assert store.prune(RetentionPolicy(Keep(runs=14 * DAY)), NOW).total == 0
    assert store.get_run("late") is not None


def test_a_dry_run_reports_and_removes_nothing(store: Store) -> None:
    for i in range(5):
        store.save_run(ended(f"r{i}", days_ago=20 + i))
    policy = RetentionPolicy(Keep(runs=14 * DAY))
    assert store.prune(policy, NOW, dry_run=True, batch=2).counts == {("orders", "runs"): 5}
    assert len(store.list_runs(RunFilter())) == 5
    assert store.prune(policy, NOW, batch=2).counts == {("orders", "runs"): 5}
    assert store.list_runs(RunFilter()) == [] and store.count_runs() == {}


def test_small_batches_remove_everything_between_runs_that_stay(store: Store) -> None:
    for i in range(23):
        status = "running" if i % 4 == 0 else "succeeded"
        store.save_run(ended(f"r{i:02}", status, days_ago=40 - i))
    report = store.prune(RetentionPolicy(Keep(runs=14 * DAY)), NOW, batch=3)
    assert report.counts == {("orders", "runs"): 17}
    assert ids(store.list_runs(RunFilter())) == [f"r{i:02}" for i in (20, 16, 12, 8, 4, 0)]
    assert store.count_runs() == {"running": 6}


def test_a_flow_of_its_own_and_prune_of_one_flow(store: Store) -> None:
    store.save_run(ended("o", days_ago=20, flow="orders"))
    store.save_run(ended("a", days_ago=20, flow="audit"))
    store.save_run(ended("i", days_ago=20, flow="invoices"))
    policy = RetentionPolicy(Keep(runs=14 * DAY), {"audit": Keep(runs=None)})
    assert store.prune(policy, NOW, flow="invoices").counts == {("invoices", "runs"): 1}
    assert store.get_run("o") is not None
    assert store.prune(policy, NOW).counts == {("orders", "runs"): 1}
    assert ids(store.list_runs(RunFilter())) == ["a"]


def test_compaction_keeps_the_summary_and_drops_the_message(store: Store) -> None:
    body = {"order": "1001", "lines": [{"sku": "A-1", "qty": 2}] * 40}
    output = {"json": '{"order":"1001"}', "size": 16, "truncated": False, "to": "body"}
    state = ended("r1", days_ago=3, key="1001", steps=[{"id": "check", "status": "succeeded",
                                                         "duration_ms": 1.5, "output": output}])
    state.original = {"body": body, "headers": {"x-id": "1"}, "request": {"query": {"a": "1"}}}
    state.envelope = {"body": body, "headers": {"x-id": "1"}, "vars": {"secret": "v"},
                      "meta": {"run_id": "r1", "request": {"query": {"a": "1"}}}}
    recorded(store, state)
    by_order = RunFilter(payload=PayloadQuery.parse("order = 1001"))
    assert ids(store.list_runs(by_order)) == ["r1"]
    store.save_run(ended("fresh", days_ago=0.5))
    policy = RetentionPolicy(Keep(runs=14 * DAY, bodies=2 * DAY))
    report = store.prune(policy, NOW)
    assert report.counts == {("orders", "bodies"): 1} and report.bytes_freed > 1000
    got = store.get_run("r1")
    assert got is not None and got.compacted_at == NOW
    assert (got.status, got.key, got.correlation_id, got.created_at, got.updated_at,
            got.steps) == ("succeeded", "1001", "r1", state.created_at, state.updated_at,
                           [{"id": "check", "status": "succeeded", "duration_ms": 1.5}])
    assert got.envelope == {"meta": {"run_id": "r1"}} and got.original == {}
    assert ids(store.list_runs(by_order)) == []  # the searchable payload went with the body
    assert ids(store.list_runs(RunFilter(key="1001"))) == ["r1"]
    fresh = store.get_run("fresh")
    assert fresh is not None and fresh.compacted_at is None
    assert store.prune(policy, NOW).total == 0  # nothing compacted twice
    assert store.prune(policy, NOW + 2 * DAY).counts == {("orders", "bodies"): 1}  # fresh now


def resolved(entry_id: str, status: str, *, days_ago: float, created_days_ago: float = 60,
             flow: str = "orders") -> DeadLetter:
    entry = letter(entry_id, flow=flow, status=status)
    entry.created_at = NOW - created_days_ago * DAY
    if status != "open":
        entry.audit.append({"at": NOW - days_ago * DAY, "action": "discard"})
    return entry


def test_resolved_dead_letters_go_with_their_run_open_ones_stay(store: Store) -> None:
    put_letters(store, resolved("open-old", "open", days_ago=0, created_days_ago=400),
                resolved("discarded-old", "discarded", days_ago=40),
                resolved("replayed-old", "replayed", days_ago=31),
                resolved("discarded-new", "discarded", days_ago=5),
                resolved("replaying", "replaying", days_ago=90))
    assert store.count_runs() == {"dead_lettered": 5}
    policy = RetentionPolicy(Keep(runs=14 * DAY, dead_letters=30 * DAY))
    report = store.prune(policy, NOW)
    assert report.counts == {("orders", "dead_letters"): 2}
    assert store.get_dead_letter("discarded-old") is None
    assert store.get_run("run-discarded-old") is None and store.get_run("run-replayed-old") is None
    left = store.list_dead_letters(DeadLetterFilter(status=None))
    assert sorted(e.id for e in left) == ["discarded-new", "open-old", "replaying"]
    assert store.get_run("run-open-old") is not None  # a dead-lettered run stays with its entry
    assert store.count_runs() == {"dead_lettered": 3}
    assert store.count_dead_letters("open") == {"orders": 1}
    assert store.count_dead_letters("discarded") == {"orders": 1}
    assert store.count_dead_letters("replayed") == {}
    assert [e.id for e in store.list_dead_letters(DeadLetterFilter(step="erp", status=None))
            if e.id.endswith("-old")] == ["open-old"]


def test_a_record_changed_since_it_was_read_is_not_removed(store: Store) -> None:
    put_letters(store, resolved("e1", "discarded", days_ago=40))
    stale = store.get_dead_letter("e1")
    assert stale is not None
    again = store.get_dead_letter("e1")
    assert again is not None
    again.status = "replaying"  # a forced replay started meanwhile
    store.update_dead_letter(again)
    store.save_run(ended("r1", days_ago=20))
    read = store.get_run("r1")
    assert read is not None
    read.status = "queued"  # read as queued; it finished since
    assert store.remove([read], [stale]) == set()  # type: ignore[attr-defined]
    assert store.get_dead_letter("e1") is not None and store.get_run("r1") is not None
    assert store.get_run("run-e1") is not None


def test_pages_walk_through_runs_created_at_the_same_moment(store: Store) -> None:
    for i in range(10):  # one intake group: one creation time
        store.save_run(ended(f"r{i}", "running" if i in (1, 4, 5) else "succeeded", days_ago=20))
    for i in range(10):
        store.save_run(ended(f"s{i}", days_ago=5))
    policy = RetentionPolicy(Keep(runs=14 * DAY, bodies=1 * DAY))
    assert store.prune(policy, NOW, batch=2, dry_run=True).counts == {
        ("orders", "runs"): 7, ("orders", "bodies"): 10}
    report = store.prune(policy, NOW, batch=2)
    assert report.counts == {("orders", "runs"): 7, ("orders", "bodies"): 10}
    assert sorted(ids(store.list_runs(RunFilter(status="running")))) == ["r1", "r4", "r5"]
    assert all(r.compacted_at == NOW for r in store.list_runs(RunFilter(status="succeeded")))


def test_a_replay_that_failed_again_goes_like_a_finished_run(store: Store) -> None:
    put_letters(store, resolved("e1", "open", days_ago=0, created_days_ago=40))
    replay = ended("replay-1", "dead_lettered", days_ago=20)
    replay.envelope["meta"] = {"replay_of": "e1"}  # the entry keeps its message and failure
    store.save_run(replay)
    report = store.prune(RetentionPolicy(Keep(runs=14 * DAY)), NOW)
    assert report.counts == {("orders", "runs"): 1}
    assert store.get_run("replay-1") is None
    assert store.get_run("run-e1") is not None and store.get_dead_letter("e1") is not None


# -- activity (the console's charts) -------------------------------------------------------------
HOUR = 1_700_002_800.0  # a whole hour, 46 minutes after T0


def finished(run_id: str, status: str, received: float, took: float, *,
             flow: str = "orders") -> RunState:
    """A run received *received* seconds after HOUR that finished *took* seconds later."""
    state = run(run_id, flow=flow, status=status)
    state.created_at, state.updated_at = HOUR + received, HOUR + received + took
    return state


def load_activity(store: Store) -> None:
    """Four runs finished in HOUR's first minutes, one two hours before, one still queued, one
    dry run; one dead-lettered with its entry."""
    store.save_run(finished("ok", "succeeded", 10, 0.5))
    failed = finished("dl", "dead_lettered", 60, 3)
    entry = letter("e-dl", created=HOUR - T0 + 63)
    store.save_run(failed, dead_letter=entry)
    store.save_run(finished("inv", "succeeded", 100, 30, flow="invoices"))
    again = finished("twice", "running", 190, 0)
    store.create_run(again)
    again.status, again.updated_at = "succeeded", HOUR + 200
    store.save_run(again)
    again.updated_at = HOUR + 900  # saved again when done (compacted, say): finished once
    store.save_run(again)
    store.save_run(finished("early", "filtered", -7200, 100))
    store.save_run(finished("waiting", "queued", 5, 0))
    store.save_run(finished("rehearsal", "dry_run", 20, 1))


def test_activity_counts_per_minute_what_finished_failed_and_was_dead_lettered(
        store: Store) -> None:
    load_activity(store)
    minutes = store.activity(None, HOUR, HOUR + 3600, 60)
    assert [b.start for b in minutes] == [HOUR + 60 * i for i in range(60)]
    assert [b.finished for b in minutes[:5]] == [1, 1, 1, 1, 0]
    assert sum(b.finished for b in minutes) == 4
    assert [b.failed for b in minutes[:3]] == [0, 1, 0]
    assert [b.dead_letters for b in minutes[:3]] == [0, 1, 0]
    assert [b.p95 for b in minutes[:4]] == [0.5, 5.0, 50.0, 10.0]
    assert (minutes[1].error_rate, minutes[4].error_rate, minutes[4].p95) == (1.0, None, None)
    orders = store.activity("orders", HOUR, HOUR + 3600, 60)
    assert [b.finished for b in orders[:4]] == [1, 1, 0, 1]
    assert store.activity("nothing", HOUR, HOUR + 3600, 60)[0].finished == 0


def test_activity_in_half_hours_and_hours_adds_the_minutes_up(store: Store) -> None:
    load_activity(store)
    halves = store.activity(None, HOUR, HOUR + 3600, 1800)
    assert [(b.finished, b.failed, b.dead_letters) for b in halves] == [(4, 1, 1), (0, 0, 0)]
    assert halves[0].p95 == 50.0 and halves[0].error_rate == 0.25
    hours = store.activity(None, HOUR - 7200, HOUR + 3600, 3600)
    assert [b.start for b in hours] == [HOUR - 7200, HOUR - 3600, HOUR]
    assert [b.finished for b in hours] == [1, 0, 4]
    assert sum(hours[2].latency) == 4 and hours[0].p95 == 100.0  # an edge is its bucket's own
    four = store.activity("orders", HOUR - 4 * 3600, HOUR + 4 * 3600, 4 * 3600)
    assert [b.finished for b in four] == [0, 4, 0]  # aligned to 4 hours since the epoch
    # a window not on bucket edges is widened to them
    assert store.activity(None, HOUR + 30, HOUR + 90, 60)[0].start == HOUR


def test_activity_inside_the_window_outlives_pruning_older_runs(store: Store) -> None:
    load_activity(store)
    before = [(b.finished, b.failed, b.dead_letters, b.latency)
              for b in store.activity(None, HOUR, HOUR + 3600, 60)]
    report = store.prune(RetentionPolicy(Keep(runs=5400, dead_letters=None)), HOUR + 3600)
    assert report.counts == {("orders", "runs"): 1}  # the run finished two hours before
    after = [(b.finished, b.failed, b.dead_letters, b.latency)
             for b in store.activity(None, HOUR, HOUR + 3600, 60)]
    assert after == before


def test_activity_refuses_buckets_that_are_not_whole_minutes(store: Store) -> None:
    with pytest.raises(ValueError, match="whole number of minutes"):
        store.activity(None, HOUR, HOUR + 3600, 90)
    with pytest.raises(ValueError, match="at most"):
        store.activity(None, HOUR - 365 * DAY, HOUR, 60)


def test_a_bulk_job_comes_back_with_its_outcomes_until_a_resume_takes_it_over(
        store: Store) -> None:
    job = BulkJob("job1", "console:alice", ["e1", "e2", "e3"], patch="$", reason="why",
                  owner="host:1", created_at=T0, updated_at=T0)
    store.put_job(job)
    assert store.add_job_outcome("job1", "e1", "started", "run-1", T0 + 1)
    assert store.add_job_outcome("job1", "e2", "refused", "was discarded", T0 + 2)
    found = store.get_job("job1")
    assert found is not None
    assert found.outcomes == {"e1": ("started", "run-1"), "e2": ("refused", "was discarded")}
    assert (found.entry_ids, found.patch, found.reason, found.owner, found.state,
            found.updated_at) == (["e1", "e2", "e3"], "$", "why", "host:1", "running", T0 + 2)
    assert store.get_job("nope") is None

    found.state, found.resumed_as = "interrupted", "job2"  # a resume, on another server
    store.put_job(found)
    assert not store.add_job_outcome("job1", "e3", "started", "run-3", T0 + 3)
    job.state, job.finished_at = "done", T0 + 4  # the old process, still alive, ends
    store.put_job(job)
    after = store.get_job("job1")
    assert after is not None
    assert (after.state, after.resumed_as, after.updated_at) == ("interrupted", "job2", T0 + 2)
    assert "e3" not in after.outcomes


def test_a_finished_job_records_nothing_more(store: Store) -> None:
    job = BulkJob("job1", "api:bob", ["e1"], action="discard", created_at=T0, updated_at=T0)
    store.put_job(job)
    job.state = "done"
    store.put_job(job)
    assert not store.add_job_outcome("job1", "e1", "discarded", "", T0 + 1)
    found = store.get_job("job1")
    assert found is not None and found.outcomes == {} and found.action == "discard"


def test_a_new_job_forgets_the_oldest_finished_jobs_beyond_those_kept(store: Store) -> None:
    store.put_job(BulkJob("running", "a", ["e"], created_at=T0, updated_at=T0))
    for n in range(JOBS_KEPT + 1):
        job = BulkJob(f"old{n:03}", "a", ["e"], created_at=T0 + 1 + n, updated_at=T0 + 1 + n)
        store.put_job(job)
        store.add_job_outcome(job.id, "e", "discarded", "", T0 + 1 + n)
        job.state = "done"
        store.put_job(job)
    store.put_job(BulkJob("new", "a", ["e"], created_at=T0 + 999, updated_at=T0 + 999))
    assert store.get_job("old000") is None  # the oldest finished one, with its outcomes
    assert store.get_job("old001") is not None
    assert store.get_job("running") is not None  # older, but not finished
    assert store.get_job("new") is not None
