"""What the log's fast path must not change: the time stamp of every line, a message formatted
once and masked, JSON lines for values orjson refuses, secrets learnt after the first line."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from collections.abc import Iterator

import pytest

from engine.logs import JsonFormatter, TextFormatter, _time, setup_logging
from engine.refs import Redactor, redact_known
from tests.conftest import logger_with


def expected_time(created: float) -> str:
    moment = dt.datetime.fromtimestamp(created, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.mark.parametrize("created", [
    0.0, 1765140000.0, 1765140000.0004, 1765140000.0009996, 1765140000.1229999,
    1765140000.9994, 1765140000.9999994, 1765140000.9999996, 1765140001.5, 1796000000.123456])
def test_the_time_of_a_line_is_the_datetime_one(created: float) -> None:
    record = logging.makeLogRecord({"created": created})
    assert _time(record) == expected_time(created)


def test_lines_within_one_second_and_across_seconds_keep_their_own_time() -> None:
    times = [1765140000.25, 1765140000.75, 1765140001.0, 1765139999.5, 1765140000.5]
    assert [_time(logging.makeLogRecord({"created": t})) for t in times] == \
        [expected_time(t) for t in times]


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    """flowrunner's JSON handler alone (no other handler formats the records meanwhile)."""
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = setup_logging("INFO", "json", stream=stream)
    root.removeHandler(handler)
    root.setLevel(level)
    with logger_with("flowrunner.test.fastpath", handler) as log:
        yield log, stream, handler


class Counted:
    """An argument that counts how often it is formatted."""

    def __init__(self, text: str):
        self.text, self.calls = text, 0

    def __str__(self) -> str:
        self.calls += 1
        return self.text


def test_a_message_is_formatted_once_and_masked(
        logger: tuple[logging.Logger, io.StringIO, logging.Handler]) -> None:
    log, stream, _ = logger
    redactor = Redactor()
    redactor.add("s3cr3t-value")
    argument = Counted("token s3cr3t-value sent")
    log.info("call: %s", argument)
    line = json.loads(stream.getvalue())
    assert line["message"] == "call: token *** sent"
    assert argument.calls == 1


def test_a_secret_learnt_after_the_first_lines_is_masked_in_the_next(
        logger: tuple[logging.Logger, io.StringIO, logging.Handler]) -> None:
    log, stream, _ = logger
    log.info("before: late-secret-1 and late-secret-2")
    first = Redactor()  # a new redactor
    first.add("late-secret-1")
    log.info("after one: late-secret-1 and late-secret-2")
    known = Redactor()
    known.add("unrelated-secret")
    known.add("late-secret-2")  # a value learnt by a redactor already known
    log.info("after both: late-secret-1 and late-secret-2")
    messages = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    assert messages == ["before: late-secret-1 and late-secret-2",
                        "after one: *** and late-secret-2",
                        "after both: *** and ***"]
    assert redact_known("late-secret-2") == "***"
    del first  # a redactor gone takes its values with it, as before
    assert redact_known("late-secret-1") == "late-secret-1"


@pytest.mark.parametrize(("value", "shown"), [
    (2 ** 70, 2 ** 70),  # over 64 bits: orjson refuses it, the standard library writes it
    ("lone \udc80 surrogate", "lone \udc80 surrogate"),
    ({1: "a key not a string"}, {"1": "a key not a string"}),
    (dt.timedelta(seconds=3), "0:00:03"),  # neither knows it: written as its text
    ("ünïcödé ✓", "ünïcödé ✓"),
])
def test_a_json_line_holds_values_orjson_refuses(value: object, shown: object) -> None:
    record = logging.makeLogRecord({"msg": "note", "name": "flowrunner.test",
                                    "levelname": "INFO", "fields": {"value": value}})
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line)["value"] == shown


def test_both_formats_use_the_message_the_filter_left(
        logger: tuple[logging.Logger, io.StringIO, logging.Handler]) -> None:
    _, _, handler = logger
    record = logging.makeLogRecord({"msg": "raw %s", "args": ("x",), "name": "flowrunner.t",
                                    "levelname": "INFO", "created": 1765140000.5})
    assert all(f.filter(record) for f in handler.filters)  # as the handler does first
    assert json.loads(JsonFormatter().format(record))["message"] == "raw x"
    assert TextFormatter().format(record).endswith(" flowrunner.t raw x")
