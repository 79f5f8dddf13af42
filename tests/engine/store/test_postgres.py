"""What only the PostgreSQL store has: its schema versions, its failures, its transactions.

Against the real server (tests/postgres_fixture.py): each test that needs a database of its own
(empty, or half migrated) creates one with a random name and drops it. The Store contract
itself is tests/engine/store/test_contract.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from click.testing import CliRunner

from engine.cli import main
from engine.store import pg_migrations
from engine.store.base import StoreError
from engine.store.pg_migrations import Migration
from engine.store.pg_redis import RedisPostgresStore
from engine.store.postgres import PostgresStore
from tests.engine.store.test_contract import run
from tests.postgres_fixture import (
    Database,
    PrivateCluster,
    create_database,
    drop_database,
    migrate,
)
from tests.redis_fixture import free_port


@pytest.fixture
def empty_url(postgres_database: Database) -> Iterator[str]:
    """A database of its own with no flowrunner schema; dropped at the end."""
    url = create_database(postgres_database.admin_url)
    try:
        yield url
    finally:
        drop_database(postgres_database.admin_url, url)


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def tables(url: str) -> set[str]:
    with connect(url) as conn:
        return {str(r[0]) for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def wait_for_query(url: str, text: str) -> int:
    """The pid of the backend running a query containing *text*, once it runs."""
    deadline = time.monotonic() + 20
    with connect(url) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT pid FROM pg_stat_activity WHERE query LIKE %s AND pid <> "
                               "pg_backend_pid()", (f"%{text}%",)).fetchone()
            if row:
                return int(row[0])
            time.sleep(0.05)
    raise AssertionError(f"no backend ran {text!r}")


def terminate(url: str, pid: int) -> None:
    with connect(url) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


# -- the schema ----------------------------------------------------------------------------------
def test_a_store_refuses_an_empty_database_and_names_the_command(empty_url: str) -> None:
    with pytest.raises(StoreError, match=r"empty \(no flowrunner schema\).*flowrun db upgrade"):
        PostgresStore(empty_url)


def test_a_store_refuses_an_older_schema_and_a_newer_one(
        empty_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = pg_migrations.migrations()
    current = shipped[-1].version
    with connect(empty_url) as conn:
        pg_migrations.upgrade(conn)
    # a newer flowrunner, one migration ahead, meets this database
    ahead = [*shipped, Migration(current + 1, "next", "SELECT 1")]
    with monkeypatch.context() as newer_release:
        newer_release.setattr(pg_migrations, "migrations", lambda: ahead)
        with pytest.raises(StoreError, match=rf"at schema version {current}; this flowrunner "
                                             rf"needs version {current + 1}: run `flowrun db "
                                             "upgrade`"):
            PostgresStore(empty_url)
    # this flowrunner meets a database a newer one has upgraded
    with connect(empty_url) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, 'next')",
                     (current + 1,))
    with pytest.raises(StoreError, match=rf"this flowrunner is older than the database schema "
                                         rf"{current + 1}"):
        PostgresStore(empty_url)


def test_upgrading_to_finished_at_fills_it_from_the_finished_runs(empty_url: str) -> None:
    shipped = pg_migrations.migrations()
    [finished] = [m for m in shipped if m.name == "finished_at"]
    with connect(empty_url) as conn:  # a database of the version before
        pg_migrations.upgrade(conn, shipped=[m for m in shipped if m.version < finished.version])
        for i, status in enumerate(("succeeded", "failed", "running")):
            conn.execute("INSERT INTO runs (run_id, flow_id, status, key, correlation_id, "
                         "created_at, updated_at, due_at, data) VALUES (%s, 'orders', %s, NULL, "
                         "'', 600, %s, NULL, '{}')", (f"r{i}", status, 630.0 + i))
        assert pg_migrations.upgrade(conn)[0].name == "finished_at"
        rows = conn.execute("SELECT run_id, finished_at FROM runs ORDER BY run_id").fetchall()
    assert rows == [("r0", 630.0), ("r1", 631.0), ("r2", None)]
    store = PostgresStore(empty_url)
    try:
        got = store.activity("orders", 600, 720, 60)
        assert [(b.finished, b.failed, b.p95) for b in got] == [(2, 1, 50.0), (0, 0, None)]
    finally:
        store.close()
    with connect(empty_url) as conn:  # a window is a range of the partial, covering index
        conn.execute("SET enable_seqscan = off")
        plan = conn.execute("EXPLAIN SELECT flow_id, status, finished_at - created_at FROM runs "
                            "WHERE finished_at >= 600 AND finished_at < 720").fetchall()
    assert "Index Only Scan using runs_finished" in str(plan), plan


def test_a_migration_interrupted_half_way_is_finished_by_the_next_upgrade(
        empty_url: str) -> None:
    shipped = pg_migrations.migrations()
    version = shipped[-1].version + 1
    half = Migration(version, "two_tables", "CREATE TABLE first_half (x int); "
                     "SELECT pg_sleep(60); CREATE TABLE second_half (x int);")
    failures: list[BaseException] = []

    def upgrade() -> None:
        try:
            with connect(empty_url) as conn:
                pg_migrations.upgrade(conn, shipped=[*shipped, half])
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=upgrade)
    thread.start()
    terminate(empty_url, wait_for_query(empty_url, "pg_sleep(60)"))  # the upgrade dies here
    thread.join(30)
    assert failures and isinstance(failures[0], psycopg.OperationalError)
    with connect(empty_url) as conn:
        assert pg_migrations.applied(conn) == [m.version for m in shipped]
    assert "first_half" not in tables(empty_url)  # nothing of the half-done migration is left

    whole = Migration(version, "two_tables", half.sql.replace("pg_sleep(60)", "1"))
    with connect(empty_url) as conn:
        assert pg_migrations.upgrade(conn, shipped=[*shipped, whole]) == [whole]
        assert pg_migrations.applied(conn) == [*(m.version for m in shipped), version]
    assert {"first_half", "second_half", "runs"} <= tables(empty_url)


def test_two_upgrades_at_once_apply_each_migration_once(empty_url: str) -> None:
    results: list[list[int]] = []
    barrier = threading.Barrier(3)

    def upgrade() -> None:
        with connect(empty_url) as conn:
            barrier.wait()
            results.append([m.version for m in pg_migrations.upgrade(conn)])

    threads = [threading.Thread(target=upgrade) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [[], [], [m.version for m in pg_migrations.migrations()]]
    PostgresStore(empty_url).close()  # the schema is the one this flowrunner needs


def test_flowrun_db_status_and_upgrade(empty_url: str, tmp_path: Path) -> None:
    cli = CliRunner()
    env = {"FLOWRUN_DATABASE_URL": empty_url, "FLOWRUN_HOME": str(tmp_path),
           "FLOWRUN_FLOWS": str(tmp_path)}
    before = cli.invoke(main, ["db", "status"], env=env)
    assert before.exit_code == 0, before.output
    assert "0001 initial" in before.output and "pending" in before.output
    assert "run `flowrun db upgrade`" in before.output
    refused = cli.invoke(main, ["runs"], env=env)
    assert refused.exit_code == 1 and "run `flowrun db upgrade`" in refused.output
    done = cli.invoke(main, ["db", "upgrade"], env=env)
    assert done.exit_code == 0, done.output
    assert "applied 0001 initial" in done.output
    again = cli.invoke(main, ["db", "upgrade"], env=env)
    assert "nothing to do" in again.output
    after = cli.invoke(main, ["db", "status"], env=env)
    assert "applied" in after.output and "up to date" in after.output
    listed = cli.invoke(main, ["runs"], env=env)
    assert listed.exit_code == 0, listed.output


def test_flowrun_db_without_a_database_url_says_what_to_set(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["db", "status"], env={"FLOWRUN_DATABASE_URL": ""})
    assert result.exit_code == 1 and "FLOWRUN_DATABASE_URL is not set" in result.output


# -- failures ------------------------------------------------------------------------------------
def test_an_unreachable_server_is_a_store_error_naming_it_without_the_password() -> None:
    url = f"postgresql://flowrun:s3cret@127.0.0.1:{free_port()}/flowrun"
    with pytest.raises(StoreError) as caught:
        PostgresStore(url, timeout=1)
    assert "127.0.0.1" in str(caught.value) and "s3cret" not in str(caught.value)


def test_a_server_gone_after_start_is_a_store_error(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, timeout=1)
    try:
        store.create_run(run("before"))
        with connect(postgres_url) as conn:  # every connection of the store is cut
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                         "datname = current_database() AND pid <> pg_backend_pid()")
        # the pool notices the dead connections and opens new ones: the store works on
        assert store.get_run("before") is not None
    finally:
        store.close()


def test_a_server_stopped_is_a_store_error_until_it_is_back() -> None:
    server = PrivateCluster()  # ours to stop: never the machine's server
    try:
        url = create_database(server.url)
        migrate(url)
        store = PostgresStore(url, timeout=1)
        try:
            store.create_run(run("before"))
            server.stop("immediate")
            with pytest.raises(StoreError, match=r"the PostgreSQL store 127\.0\.0\.1:\d+/"):
                store.create_runs([(run("during"), ("orders", "d-1", 60))])
            with pytest.raises(StoreError):
                store.get_run("before")
            server.start()
            assert store.create_run(run("after"), ("orders", "d-1", 60)) is None
            assert store.get_run("before") is not None and store.get_run("during") is None
        finally:
            store.close()
    finally:
        server.destroy()


def test_a_group_cut_off_between_claiming_its_key_and_recording_its_run_leaves_neither(
        postgres_url: str) -> None:
    """The sender's retry of a message whose group died half way is recorded, not answered
    "duplicate" of a run that never was: the key and the run commit together or not at all."""
    with connect(postgres_url) as conn:
        # the server stalls inside the group's transaction, after the key's claim, at the run
        conn.execute("CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                     "IF NEW.run_id = 'doomed' THEN PERFORM pg_sleep(60); END IF; RETURN NEW; "
                     "END $$; CREATE TRIGGER stall BEFORE INSERT ON runs FOR EACH ROW "
                     "EXECUTE FUNCTION stall()")
    store = PostgresStore(postgres_url)
    failures: list[BaseException] = []

    def doomed_group() -> None:
        try:
            store.create_runs([(run("doomed"), ("orders", "delivery-7", 60)),
                               (run("neighbour"), ("orders", "delivery-8", 60))])
        except BaseException as exc:
            failures.append(exc)

    try:
        thread = threading.Thread(target=doomed_group)
        thread.start()
        terminate(postgres_url, wait_for_query(postgres_url, "INSERT INTO runs"))
        thread.join(30)
        assert failures and isinstance(failures[0], StoreError)  # the senders get a 503
        # their retries: recorded as new runs, never "duplicate" of the runs that were not
        assert store.create_runs([(run("retry-7"), ("orders", "delivery-7", 60)),
                                  (run("retry-8"), ("orders", "delivery-8", 60))]) == [None, None]
        assert store.get_run("doomed") is None and store.get_run("neighbour") is None
        assert store.get_run("retry-7") is not None and store.get_run("retry-8") is not None
        # and a retry of a message that was recorded is a duplicate: never run twice
        assert store.create_run(run("again"), ("orders", "delivery-7", 60)) == "retry-7"
    finally:
        store.close()
        with connect(postgres_url) as conn:
            conn.execute("DROP TRIGGER stall ON runs; DROP FUNCTION stall()")


def test_run_counts_follow_inserts_updates_and_deletes(postgres_url: str) -> None:
    """The counts are changes appended by triggers and folded now and then; a retention
    job that deletes runs is counted as well."""
    store = PostgresStore(postgres_url)
    try:
        store.create_runs([(run(f"r{i}", flow="a" if i % 2 else "b"), None) for i in range(10)])
        for i in range(4):
            store.save_run(run(f"r{i}", flow="a" if i % 2 else "b", status="succeeded"))
        assert store.count_runs() == {"queued": 6, "succeeded": 4}
        store.save_run(run("r0", flow="b", status="succeeded"))  # saved again: same status
        assert store.count_runs("b") == {"queued": 3, "succeeded": 2}
        with connect(postgres_url) as conn:
            conn.execute("DELETE FROM runs WHERE status = 'succeeded'")
        assert store.count_runs() == {"queued": 6}
        assert store.count_runs("a") == {"queued": 3}
    finally:
        store.close()


# -- with Redis ----------------------------------------------------------------------------------
def test_with_redis_the_runs_recorded_are_queued_and_their_duplicates_are_not(
        postgres_url: str, redis_url: str) -> None:
    """Intake hands the broker messages of a group with its runs: recorded in PostgreSQL, then
    pushed to the queue in Redis — only for the runs recorded, never for a duplicate."""
    store = RedisPostgresStore(redis_url, PostgresStore(postgres_url))
    try:
        store.create_run(run("earlier"), ("orders", "d-1", 60))
        holders = store.create_runs(
            [(run("a"), ("orders", "d-1", 60)), (run("b"), ("orders", "d-2", 60)),
             (run("c"), None)],
            [("flowrun", "message-a"), ("flowrun", "message-b"), ("flowrun.bulk", "message-c")])
        assert holders == ["earlier", None, None]
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        assert client.lrange("flowrun", 0, -1) == ["message-b"]
        assert client.lrange("flowrun.bulk", 0, -1) == ["message-c"]
        # the records are PostgreSQL's: Redis holds no run hash for them
        assert client.keys("flowrun:run:*") == []
        assert store.records.get_run("b") is not None and store.get_run("a") is None
        client.close()
    finally:
        store.close()


def test_the_search_migration_classifies_the_entries_already_there(empty_url: str) -> None:
    from engine.records import encode_dead_letter
    from engine.store.base import DeadLetterFilter
    from tests.engine.store.test_contract import letter

    shipped = pg_migrations.migrations()
    search = next(m for m in shipped if m.name == "search")
    before = [m for m in shipped if m.version < search.version]
    entries = [letter("e1", kind="http", http=422, created=1),
               letter("e2", kind="timeout", created=2),
               letter("e3", created=3)]  # from before kinds
    with connect(empty_url) as conn:
        pg_migrations.upgrade(conn, shipped=before)
        for e in entries:
            conn.execute("INSERT INTO dead_letters VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                         (e.id, e.run_id, e.flow_id, e.step, e.message, e.status, e.created_at,
                          encode_dead_letter(e)))
        # a record jsonb cannot hold (a NUL character) stays unclassified; the upgrade goes on
        conn.execute("INSERT INTO dead_letters VALUES ('e4', 'r4', 'orders', 'erp', 'm', "
                     "'open', 1, %s)", (b'{"reason": {"kind": "http", "x": "\\u0000"}}',))
        assert search in pg_migrations.upgrade(conn)
    store = PostgresStore(empty_url)
    try:
        def found(**how: Any) -> list[str]:
            return [e.id for e in store.list_dead_letters(DeadLetterFilter(**how))]

        assert found(kind="http") == ["e1"]
        assert found(kind="http", http_status=422) == ["e1"] and found(kind="timeout") == ["e2"]
    finally:
        store.close()


def test_with_redis_the_activity_is_read_from_the_records(postgres_url: str,
                                                          redis_url: str) -> None:
    """The runs finish in PostgreSQL, so their activity is counted there; Redis keeps no
    counters of its own for them."""
    store = RedisPostgresStore(redis_url, PostgresStore(postgres_url))
    try:
        hour = 1_700_002_800.0
        for i, status in enumerate(("succeeded", "dead_lettered", "queued")):
            state = run(f"r{i}", status=status)
            state.created_at, state.updated_at = hour + 60 * i, hour + 60 * i + 2
            store.save_run(state)
        got = store.activity(None, hour, hour + 3600, 1800)
        assert [(b.finished, b.failed, b.p95) for b in got] == [(2, 1, 2.5), (0, 0, None)]
        assert got == store.records.activity(None, hour, hour + 3600, 1800)
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        assert client.keys("flowrun:act:*") == []
        client.close()
    finally:
        store.close()
