"""Harness for the console tests: an App with an order flow that dead-letters bad quantities,
the console's credentials set, and the server under uvicorn on a loopback port (the webhook
server harness). The console and browser tests import these helpers.

The flow validates each order against a schema (qty an integer of at least 1), so an order with
``qty: "two"`` is dead-lettered at step ``check`` with the violation, and replaying it with
``qty: 2`` succeeds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from pydantic import SecretStr

from engine.app import App
from engine.console.users import User, UsersFile, hash_password, write
from engine.records import DeadLetter, RunState
from engine.store.base import DeadLetterFilter, Store
from tests.engine.server_support import Running, hook_app, serving

#: makes the store of one server of a test; each call a new client of the same store (None: the
#: App opens the SQLite file of its home, the same for every server of the test)
Stores = Callable[[], Store | None]

TOKEN = "console-token-0123456789"
USER, PASSWORD = "ops", "correct horse battery"

ORDER_FLOW = """
flow: orders
description: Orders from the shop, checked and confirmed.
key: $string(order_number)
trigger:
  webhook:
    path: /hooks/orders
    max_body: 16777216  # the huge-payload tests send a few megabytes
steps:
  - id: check
    validate: {schema: console/order.v1}
  - id: shape
    transform: '{"order_number": order_number, "sku": sku, "qty": qty, "note": note}'
  - id: confirm
    set: {confirmed: "true"}
"""

# a flow's defaults for tests whose downstream fails first: one retry, soon, on a 5xx
FAST_RETRY = """defaults:
  retry:
    max_attempts: 2
    backoff: {initial: 10ms, multiplier: 1, max: 10ms, jitter: none}
    retry_on: {http_status: [5xx]}
"""

ORDER_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object", "required": ["order_number", "sku", "qty"],
    "properties": {"order_number": {"type": ["integer", "string"]}, "sku": {"type": "string"},
                   "qty": {"type": "integer", "minimum": 1}},
}


def users_file(folder: Path, **roles: str) -> Path:
    """A users file in *folder* with each user's role ({name: role}); each password is
    `password_of(name)`."""
    path = folder / "console-users.yaml"
    write(path, UsersFile(users={name: User(role=role, password=hash_password(password_of(name)))
                                 for name, role in roles.items()}))
    return path


def password_of(name: str) -> str:
    return f"{name}'s long passphrase"


def console_app(tmp_path: Path, *, flows: dict[str, str] | None = None,
                store: Store | None = None, token: str | None = TOKEN,
                user: str | None = USER, password: str | None = PASSWORD,
                users: Path | None = None, secrets: dict[str, str] | None = None,
                **settings: Any) -> App:
    """An App over *flows* (the order flow by default) with the order schema and the
    console's credentials (*users*: a users file; *secrets* for the flows, besides the webhook
    tests')."""
    schema = tmp_path / "schemas" / "console" / "order.v1.json"
    schema.parent.mkdir(parents=True, exist_ok=True)
    schema.write_text(json.dumps(ORDER_SCHEMA), encoding="utf-8")
    app = hook_app(tmp_path, flows or {"orders": ORDER_FLOW}, store=store,
                   extra_secrets=secrets, **settings)
    # the console reads its credentials from the settings when the server is built
    app.settings.console_token = SecretStr(token) if token else None
    app.settings.console_user = user
    app.settings.console_password = SecretStr(password) if password else None
    app.settings.console_users = users
    return app


@contextmanager
def console(tmp_path: Path, **credentials: Any) -> Iterator[Running]:
    with serving(console_app(tmp_path, **credentials)) as running:
        yield running


def order(number: int, qty: Any = 1, **extra: Any) -> dict[str, Any]:
    return {"order_number": number, "sku": "TONER-59X", "qty": qty, **extra}


def send(server: Running, body: Any, *, wait: bool = True, **headers: str) -> RunState:
    """POST an order to the webhook; the run once it finished (or as recorded, without wait)."""
    response = server.post("/hooks/orders", json.dumps(body),
                           {"Content-Type": "application/json", **headers})
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    if not wait:
        state = server.app.store.get_run(run_id)
        assert state is not None
        return state
    tree = server.app.wait_for(run_id, timeout=30)
    assert tree and tree[0].done, tree
    return tree[0]


def dead_letter(server: Running, number: int, **extra: Any) -> DeadLetter:
    state = send(server, order(number, qty="two", **extra))
    assert state.status == "dead_lettered", state.error
    entries = server.app.store.list_dead_letters(DeadLetterFilter(flow="orders"))
    entry = next(e for e in entries if e.run_id == state.run_id)
    return entry


def logged_in(server: Running, user: str | None = None) -> requests.Session:
    """A session logged in through the login form, like a browser (cookies kept): with the
    token, or as *user* of the users file."""
    http = requests.Session()
    http.trust_env = False
    response = login(server, http, user)
    assert response.status_code == 303, response.text
    return http


def login(server: Running, http: requests.Session, user: str | None = None,
          password: str | None = None) -> requests.Response:
    """The answer to the login form posted with the token or *user*'s (or the given)
    password."""
    form = http.get(server.url + "/console/login", timeout=10)
    credentials = ({"token": TOKEN} if user is None else
                   {"user": user, "password": password or password_of(user)})
    return http.post(server.url + "/console/login", data={
        "csrf_token": csrf_of(form.text), "next": "/console/", **credentials}, timeout=10,
        allow_redirects=False)


def csrf_of(html: str) -> str:
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start:html.index('"', start)]


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Clock:
    """The console throttle's clock in a test (`clock` fixture): moved by hand, through
    ``clock.now``."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now
