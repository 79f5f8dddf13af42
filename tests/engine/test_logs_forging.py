"""The text log keeps one record on one line: a payload value written by a real ``log`` step,
or a correlation id from a sender, cannot forge a line by carrying a newline or another control
character. A traceback below a record still spans its lines, as Python writes it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from engine.logs import bind
from tests.connectors.test_http import run_flow
from tests.engine.test_metrics_observability import capture_logs

FORGED = "2026-11-20T10:00:00.000Z ERROR   flowrunner.flow [payments] refund approved"
FLOW = """
flow: notes
steps:
  - id: note
    log: {message: '"customer note: " & note', level: warning}
"""


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    with capture_logs("text") as buffer:
        yield buffer


@pytest.mark.parametrize(("breaker", "shown"), [
    ("\n", "\\n"), ("\r\n", "\\r\\n"), ("\r", "\\r"), ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"), ("\x85", "\\x85"), ("\x0b", "\\x0b"), ("\x1b[2K", "\\x1b[2K")])
def test_a_payload_value_cannot_forge_a_log_line(text_log: io.StringIO, breaker: str,
                                                 shown: str) -> None:
    state = run_flow(FLOW, {"note": f"leave at door{breaker}{FORGED}"})
    assert state.status == "succeeded", state.error
    lines = [line for line in text_log.getvalue().splitlines() if "customer note" in line
             or "refund approved" in line]
    assert len(lines) == 1, text_log.getvalue()
    assert "[notes/note run=" in lines[0]
    assert lines[0].endswith(f"customer note: leave at door{shown}{FORGED}")
    # str.splitlines breaks at every separator Unicode knows: the whole output is whole lines
    assert all(line.startswith("20") for line in text_log.getvalue().splitlines())


def test_context_fields_are_escaped_and_a_traceback_keeps_its_lines(
        text_log: io.StringIO) -> None:
    with bind(correlation_id="abc\nFORGED"):
        try:
            raise ValueError("bad\nvalue")
        except ValueError:
            logging.getLogger("flowrunner.flow").exception("failed:\n%s", FORGED)
    first, *rest = text_log.getvalue().splitlines()
    assert first.endswith(f"[cid=abc\\nFORGED] failed:\\n{FORGED}")
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-2:] == ["ValueError: bad", "value"]  # the exception's own text, as Python prints


def test_a_json_line_masks_a_secret_in_its_own_fields_as_in_its_message() -> None:
    from engine.records import RunState
    from engine.refs import Redactor
    from engine.runlog import RunLog

    secret = "s3cr3t-learned-late"
    state = RunState("r1", "orders", "v1", {"body": {}, "headers": {}, "vars": {}, "meta": {}},
                     {"body": {}, "headers": {}}, status="dead_lettered")
    state.key, state.correlation_id = f"key-{secret}", f"cid-{secret}"
    # recorded before this process's secrets store handed the value out
    state.error = {"step": "send", "message": f"answered 401 for token {secret}", "status": 401}
    redactor = Redactor()
    redactor.add(secret)
    with capture_logs("json") as buffer:
        RunLog().dead_lettered(state)
    line = json.loads(buffer.getvalue())
    assert line["event"] == "run.dead_lettered" and line["http_status"] == 401
    assert line["reason"] == line["message"].split(": ", 1)[1] == "answered 401 for token ***"
    assert line["key"] == "key-***" and line["correlation_id"] == "cid-***"
    assert secret not in buffer.getvalue()
    with capture_logs("text") as text:
        RunLog().dead_lettered(state)
    assert "key=key-***" in text.getvalue() and "cid=cid-***" in text.getvalue()
    assert secret[:8] not in text.getvalue()
