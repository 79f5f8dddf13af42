"""`flowrun poll FLOW --once`: one poll now, what it took in, and a backfill with --from.

A real `flowrun` subprocess polls a loopback partner API (pytest-httpserver) that answers the
records updated after the cursor it is sent, on the embedded store of a temporary home.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.conftest import ROOT
from tests.engine.terminal import in_terminal
from tests.engine.test_cli import flowrun

RECORDS = [{"id": "A-1", "updated_at": "2026-03-01T10:00:00Z", "qty": 1},
           {"id": "A-2", "updated_at": "2026-03-02T10:00:00Z", "qty": 2}]

FLOW = """\
flow: partner-items
key: id
trigger:
  poll:
    every: 5m
    http:
      url: "{url}/items"
      params: {{since: "{{{{cursor}}}}"}}
    items: data
    cursor: {{field: updated_at, start: "2026-01-01T00:00:00Z"}}
    idempotency_key: id & "@" & updated_at
steps:
  - id: shape
    transform: '{{"item": id, "qty": qty}}'
"""

HOOK = """\
flow: not-polled
trigger:
  webhook: {path: /hooks/x}
steps:
  - id: noop
    set: {seen: 'true'}
"""


@pytest.fixture
def partner(httpserver: HTTPServer) -> list[str]:
    """The partner API; the list of `since` values it was asked for."""
    asked: list[str] = []

    def answer(request: Request) -> Response:
        since = request.args["since"]
        asked.append(since)
        newer = [r for r in RECORDS if r["updated_at"] > since]
        return Response(json.dumps({"data": newer}), content_type="application/json")

    httpserver.expect_request("/items").respond_with_handler(answer)
    return asked


@pytest.fixture
def env(tmp_path: Path, httpserver: HTTPServer) -> dict[str, str]:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "partner-items.yaml").write_text(FLOW.format(url=httpserver.url_for("").rstrip("/")))
    (flows / "not-polled.yaml").write_text(HOOK)
    return {"FLOWRUN_FLOWS": str(flows), "FLOWRUN_HOME": str(tmp_path / "home")}


def _poll(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = flowrun("poll", "partner-items", "--once", "--json", *args, env=env)
    assert result.code == 0, result.both
    out: dict[str, Any] = json.loads(result.out)
    return out


def test_one_poll_takes_records_in_runs_them_and_moves_the_cursor(
        partner: list[str], env: dict[str, str]) -> None:
    first = _poll(env)
    assert (first["records"], first["duplicates"], first["cursor"]) == (
        2, 0, "2026-03-02T10:00:00Z")
    assert [(r["key"], r["status"]) for r in first["runs"]] == [("A-1", "succeeded"),
                                                                 ("A-2", "succeeded")]
    again = _poll(env)
    assert (again["records"], again["runs"]) == (0, [])
    assert partner == ["2026-01-01T00:00:00Z", "2026-03-02T10:00:00Z"]


def test_a_backfill_reads_from_the_given_cursor_and_duplicates_start_no_run(
        partner: list[str], env: dict[str, str]) -> None:
    _poll(env)
    backfill = _poll(env, "--from", "2026-03-01T12:00:00Z")
    assert partner[-1] == "2026-03-01T12:00:00Z"
    assert [(r["duplicate"], r["status"]) for r in backfill["runs"]] == [(True, "duplicate")]
    # the stored cursor never moves back: the next poll reads on from where the first ended
    _poll(env)
    assert partner[-1] == "2026-03-02T10:00:00Z"


def test_text_output_lists_the_runs_and_the_cursor(partner: list[str],
                                                   env: dict[str, str]) -> None:
    result = flowrun("poll", "partner-items", "--once", env=env)
    assert result.code == 0, result.both
    lines = result.out.splitlines()
    assert lines[-1] == ("partner-items: 2 record(s) taken in, 0 duplicate(s), 1 page(s); "
                         "cursor now 2026-03-02T10:00:00Z")
    assert [line.split()[1:] for line in lines[:-1]] == [["A-1", "succeeded"],
                                                         ["A-2", "succeeded"]]


@pytest.mark.parametrize(("args", "message"), [
    (["poll", "partner-items"], "add --once"),
    (["poll", "not-polled", "--once"], "flow 'not-polled' is not a polling flow"),
    (["poll", "partner-item", "--once"], "did you mean 'partner-items'?"),
])
def test_what_cannot_be_polled_is_one_clear_line(env: dict[str, str], args: list[str],
                                                 message: str) -> None:
    result = flowrun(*args, env=env)
    assert result.code in (1, 2)
    assert message in result.err


def test_on_a_terminal_the_wait_for_the_runs_is_a_progress_bar(partner: list[str],
                                                               env: dict[str, str]) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLOWRUN_")}
    code, shown = in_terminal([sys.executable, "-m", "engine.cli", "poll", "partner-items",
                               "--once"], {**base, **env, "PYTHONPATH": str(ROOT)}, str(ROOT))
    assert code == 0, shown
    assert "waiting for the runs" in shown and "2/2" in shown
    assert "\x1b[32msucceeded" in shown  # in colour, as a terminal shows it
