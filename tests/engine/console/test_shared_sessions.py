"""Two real servers on one store, as behind a load balancer — in-process on each kind of store
(SQLite file, Redis, PostgreSQL), and as two `flowrun serve` processes on one SQLite file: a
login on one is good on the other, a logout on one is seen on the other, and failed logins
counted on one block the other — a right password included — until the window passes (the
throttle's clock is the test's, in process)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests

from engine.console.sessions import session_key
from engine.console.throttle import LIMIT, WINDOW
from engine.store.base import Store
from tests.conftest import ROOT, flow_text
from tests.engine.console.support import (
    ORDER_FLOW,
    ORDER_SCHEMA,
    Clock,
    Stores,
    console_app,
    csrf_of,
    logged_in,
    login,
    password_of,
    users_file,
)
from tests.engine.server_support import Running, serve_process, serving


@contextmanager
def two_servers(tmp_path: Path, stores: Stores) -> Iterator[tuple[Running, Running]]:
    users = users_file(tmp_path, alice="operator")
    with ExitStack() as stack:
        # same flows, same home, same users file, same store: two processes of one deployment
        first, second = (stack.enter_context(serving(
            console_app(tmp_path, store=stores(), users=users), executor=False))
            for _ in range(2))
        yield first, second



def stored_session_ids(store: Store) -> list[str]:
    """What the store keeps as session ids, read behind flowrunner's back."""
    from engine.store.redis import RedisStore
    from engine.store.sqlite import SqliteStore

    if isinstance(store, RedisStore):
        prefix = f"{store.prefix}console:session:"
        return [str(k).removeprefix(prefix) for k in store.redis.keys(prefix + "*")]
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as db:
            return [r[0] for r in db.execute("SELECT id FROM console_sessions")]
    import psycopg

    with psycopg.connect(store.url) as conn:  # type: ignore[attr-defined]
        return [r[0] for r in conn.execute("SELECT id FROM console_sessions")]


def browser() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    return http


def test_a_session_made_on_one_server_works_on_the_other_until_logout(
        tmp_path: Path, stores: Stores, clock: Clock) -> None:
    with two_servers(tmp_path, stores) as (one, other):
        http = logged_in(one, "alice")
        sid = http.cookies["flowrun_console"]
        moved = {"flowrun_console": sid}  # the load balancer sends the cookie elsewhere
        page = requests.get(other.url + "/console/dlq", cookies=moved, allow_redirects=False)
        assert page.status_code == 200 and "alice · operator" in page.text
        assert one.app.store is not other.app.store
        assert stored_session_ids(one.app.store) == [session_key(sid)]  # its hash, not the id
        out = requests.post(other.url + "/console/logout", cookies=moved,
                            data={"csrf_token": csrf_of(page.text)}, allow_redirects=False)
        assert out.status_code == 303
        for server in (one, other):
            gone = requests.get(server.url + "/console/dlq", cookies=moved,
                                allow_redirects=False)
            assert gone.status_code == 303, server.url
        assert stored_session_ids(one.app.store) == []


def test_a_session_expires_on_every_server(tmp_path: Path, stores: Stores,
                                           clock: Clock) -> None:
    with two_servers(tmp_path, stores) as (one, other):
        http = logged_in(one, "alice")
        cookies = {"flowrun_console": http.cookies["flowrun_console"]}
        clock.now += 8 * 3600 + 1
        for server in (one, other):
            assert requests.get(server.url + "/console/", cookies=cookies,
                                allow_redirects=False).status_code == 303


def test_failed_logins_on_one_server_block_the_other_until_the_window_passes(
        tmp_path: Path, stores: Stores, clock: Clock) -> None:
    with two_servers(tmp_path, stores) as (one, other):
        guesser = browser()
        for attempt in range(LIMIT):
            wrong = login(one, guesser, "alice", f"guess number {attempt}")
            assert wrong.status_code == 401
            clock.now += 1
        refused = login(other, browser(), "alice")  # the right password, on the other server
        assert refused.status_code == 429
        wait = int(refused.headers["Retry-After"])
        assert wait == WINDOW - LIMIT  # until the first failure leaves the window
        assert "flowrun_console" not in refused.cookies
        clock.now += wait - 1  # a second early: still refused, on either server
        assert login(other, browser(), "alice").status_code == 429
        assert login(one, browser(), "alice").status_code == 429
        clock.now += 1
        assert login(other, browser(), "alice").status_code == 303


def test_two_serve_processes_share_sessions_logouts_and_the_throttle(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "orders.yaml").write_text(flow_text(ORDER_FLOW), encoding="utf-8")
    schema = tmp_path / "schemas" / "console" / "order.v1.json"
    schema.parent.mkdir(parents=True)
    schema.write_text(json.dumps(ORDER_SCHEMA), encoding="utf-8")
    users = users_file(tmp_path, alice="operator")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FLOWRUN_HOME": str(tmp_path / "home"),
           "FLOWRUN_SCHEMAS": str(tmp_path / "schemas"), "FLOWRUN_CONSOLE_USERS": str(users)}
    with serve_process(tmp_path / "flows", env) as (one, _), \
            serve_process(tmp_path / "flows", env) as (other, _):
        http = browser()
        form = http.get(one + "/console/login")
        answer = http.post(one + "/console/login", data={
            "csrf_token": csrf_of(form.text), "user": "alice",
            "password": password_of("alice")}, allow_redirects=False)
        assert answer.status_code == 303
        moved = {"flowrun_console": http.cookies["flowrun_console"]}
        page = requests.get(other + "/console/dlq", cookies=moved, allow_redirects=False)
        assert page.status_code == 200 and "alice · operator" in page.text
        out = requests.post(other + "/console/logout", cookies=moved,
                            data={"csrf_token": csrf_of(page.text)}, allow_redirects=False)
        assert out.status_code == 303
        assert requests.get(one + "/console/dlq", cookies=moved,
                            allow_redirects=False).status_code == 303
        guesser = browser()
        for attempt in range(LIMIT):
            form = guesser.get(one + "/console/login")
            wrong = guesser.post(one + "/console/login", data={
                "csrf_token": csrf_of(form.text), "user": "alice",
                "password": f"guess number {attempt}"}, allow_redirects=False)
            assert wrong.status_code == 401
        late = browser()
        form = late.get(other + "/console/login")
        refused = late.post(other + "/console/login", data={
            "csrf_token": csrf_of(form.text), "user": "alice",
            "password": password_of("alice")}, allow_redirects=False)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
