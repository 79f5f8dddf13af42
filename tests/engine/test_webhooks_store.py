"""An unavailable store means 503 with Retry-After — never a 202 for a run that is not recorded.

Two ways the store goes away: a store whose every method raises (fast, and lets the test put a
secret in the error to prove it is redacted), and the real SQLite file locked by another
process holding ``BEGIN EXCLUSIVE`` while our busy timeout is tiny.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from connectors.signatures.shopify import SCHEME as SHOPIFY
from engine.store.base import StoreError
from engine.store.sqlite import SqliteStore
from tests.engine.server_support import SECRETS, SHOP_FLOW, hook_app, serving

BODY = b'{"id": 1001}'


def headers(delivery: str = "d-1") -> dict[str, str]:
    out = SHOPIFY.sign(SHOPIFY.config(), BODY, SECRETS["SHOP"], 0)
    out.update({"Content-Type": "application/json", "X-Shopify-Webhook-Id": delivery})
    return out


class BrokenStore:
    """Every call fails the way *error* says; the test switches it on and off."""

    def __init__(self, inner: SqliteStore, error: Exception):
        self.inner, self.error, self.broken = inner, error, False

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target) or name == "close":
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.broken:
                raise self.error
            return target(*args, **kwargs)

        return call


@pytest.mark.parametrize("error", [
    StoreError("the state database is locked by another process"),
    RuntimeError(f"driver exploded while using {SECRETS['SHOP']}"),
])
def test_store_failure_is_503_with_retry_after_and_nothing_leaks(
        tmp_path: Path, error: Exception, caplog: pytest.LogCaptureFixture) -> None:
    inner = SqliteStore(tmp_path / "state.db")
    store = BrokenStore(inner, error)
    app = hook_app(tmp_path, {"shop-orders": SHOP_FLOW}, store=store)  # type: ignore[arg-type]
    with serving(app) as server:
        store.broken = True
        response = server.post("/hooks/shop", BODY, headers())
        assert response.status_code == 503
        assert response.headers["Retry-After"].isdigit()
        assert set(response.json()) == {"error"}
        assert "Traceback" not in response.text and SECRETS["SHOP"] not in response.text
        assert server.counter("unavailable") == 1
        assert server.http.get(server.url + "/readyz").status_code == 503
        store.broken = False
        # the sender's retry succeeds once the store is back: the 503 recorded nothing
        response = server.post("/hooks/shop", BODY, headers())
        assert response.status_code == 202
        assert server.runs() == 1
    assert "delivery not recorded" in caplog.text
    assert SECRETS["SHOP"] not in caplog.text


LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
"""


def test_sqlite_locked_by_another_process_is_503(tmp_path: Path) -> None:
    app = hook_app(tmp_path, {"shop-orders": SHOP_FLOW}, busy_timeout=0.05)
    with serving(app) as server:
        locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(app.settings.state_db)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
            response = server.post("/hooks/shop", BODY, headers())
            assert response.status_code == 503
            assert int(response.headers["Retry-After"]) >= 1
            ready = server.http.get(server.url + "/readyz")
            assert ready.status_code == 503
            assert ready.json() == {"status": "not ready",
                                    "reason": "the state store is unavailable"}
        finally:
            assert locker.stdin is not None
            locker.stdin.write("\n")
            locker.stdin.flush()
            locker.wait(30)
        response = server.post("/hooks/shop", BODY, headers())
        assert response.status_code == 202
        assert server.http.get(server.url + "/readyz").status_code == 200
        assert [s.run_id for s in server.app.wait_for(response.json()["run_id"], 30)] == [
            json.loads(response.text)["run_id"]]
