"""The text log keeps one record on one line: a payload value written by a real ``log`` step,
or a correlation id from a sender, cannot forge a line by carrying a newline or another control
character. A traceback below a record still spans its lines, as Python writes it."""

from __future__ import annotations

import io
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
