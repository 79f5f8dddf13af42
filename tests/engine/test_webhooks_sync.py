"""`respond: sync`: the sender waits for the run and gets its final body (200), its error for a
failed run (502), or the usual 202 when the run outlasts `sync_timeout`.
"""

from __future__ import annotations

import threading
from pathlib import Path

from tests.engine.server_support import hook_app, serving

SYNC_FLOW = """
flow: quote
trigger:
  webhook:
    path: /hooks/quote
    respond: sync
    sync_timeout: {timeout}
steps:
  - id: check
    route:
      - when: qty > 0
        goto: price
      - otherwise: reject
  - id: reject
    fail: {{reason: '"no quantity for " & sku'}}
  - id: price
    transform: '{{"sku": sku, "total": qty * 2.5}}'
"""


def app_for(tmp_path: Path, timeout: str = "30s"):  # type: ignore[no-untyped-def]
    return hook_app(tmp_path, {"quote": SYNC_FLOW.format(timeout=timeout)})


def test_sync_returns_the_final_body(tmp_path: Path) -> None:
    with serving(app_for(tmp_path)) as server:
        response = server.post("/hooks/quote", b'{"sku": "A-1", "qty": 4}',
                               {"Content-Type": "application/json"})
        assert response.status_code == 200, response.text
        assert response.json() == {"sku": "A-1", "total": 10}
        assert response.headers["X-Run-Status"] == "succeeded"
        state = server.app.store.get_run(response.headers["X-Run-ID"])
        assert state is not None and state.status == "succeeded"


def test_sync_failed_run_is_502_with_its_error(tmp_path: Path) -> None:
    with serving(app_for(tmp_path)) as server:
        response = server.post("/hooks/quote", b'{"sku": "B-2", "qty": 0}',
                               {"Content-Type": "application/json"})
        assert response.status_code == 502
        data = response.json()
        assert data["status"] == "dead_lettered"
        assert data["error"] == "step 'reject': no quantity for B-2"  # no server file path
        assert set(data) == {"run_id", "correlation_id", "status", "error"}
        assert "Traceback" not in response.text


def test_sync_wait_that_times_out_is_202(tmp_path: Path) -> None:
    # no executor: the run is recorded but nothing advances it, so the wait must time out
    with serving(app_for(tmp_path, "200ms"), executor=False) as server:
        response = server.post("/hooks/quote", b'{"sku": "C-3", "qty": 1}',
                               {"Content-Type": "application/json"})
        assert response.status_code == 202
        assert set(response.json()) == {"run_id", "correlation_id"}
        assert server.counter("sync_timeout") == 1
        state = server.app.store.get_run(response.json()["run_id"])
        assert state is not None and state.status == "queued"


def test_waiting_senders_do_not_block_the_server(tmp_path: Path) -> None:
    # a sync request waits in a worker thread; meanwhile the event loop answers others
    with serving(app_for(tmp_path, "120s"), executor=False) as server:
        outcome: list[int] = []
        waiting = threading.Thread(target=lambda: outcome.append(server.post(
            "/hooks/quote", b'{"sku": "D-4", "qty": 1}',
            {"Content-Type": "application/json"}).status_code))
        waiting.start()
        for _ in range(500):  # until the waiting request's run is recorded
            if server.runs():
                break
            threading.Event().wait(0.01)
        assert server.http.get(server.url + "/healthz").status_code == 200
        assert waiting.is_alive()  # still waiting: the health answer did not queue behind it
        server.app.executor.start(resume=True)
        waiting.join(60)
        assert outcome == [200]
