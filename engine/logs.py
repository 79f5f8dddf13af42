"""Log output for every flowrunner process: JSON lines or a terminal format, secrets masked.

`setup_logging` installs one handler on the root logger, chosen by ``FLOWRUN_LOG_FORMAT``
(``json`` or ``text``) and ``FLOWRUN_LOG_LEVEL``. Every line carries flow, run id, step and
correlation id when they are known: a `StepLog` puts them on its records, and `bind` puts them in
a context variable for everything logged meanwhile — the webhook intake binds the request's
correlation id, and the execution core (engine/processing) binds the run it advances. The existing
`RedactingFilter` sits on the handler, so it sees the records of every logger, not only ours.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import IO, Any

import orjson

from engine.log_batching import BatchingHandler
from engine.refs import MESSAGE, RedactingFilter, redact_known

FIELDS = ("flow", "run_id", "step", "key", "correlation_id")
#: the record attribute holding a line's own structured fields (``extra={"fields": {...}}``):
#: the JSON format adds them to the object; the text format has them in its message already
EXTRA = "fields"
FORMATS = ("json", "text")
# an immutable default: bind() always sets a new dict, never changes the one it found
_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "flowrun_log_context", default=MappingProxyType({}))
_HANDLER_MARK = "_flowrun_handler"


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add *fields* (flow, run_id, step, key, correlation_id) to every record logged inside."""
    merged = {**_context.get(), **{k: str(v) for k, v in fields.items() if v}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Fills the correlation fields of a record from `bind`, unless the record has its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


#: the formatted second of the last line (most lines share it with the one before): its
#: number and its text up to the seconds, so only the milliseconds are formatted again
_second: tuple[int, str] = (-1, "")


def _time(record: logging.LogRecord) -> str:
    global _second
    # rounded to the microsecond first, as datetime.fromtimestamp does, then cut to the ms
    whole, micros = divmod(round(record.created * 1_000_000), 1_000_000)
    seen, prefix = _second
    if whole != seen:
        prefix = dt.datetime.fromtimestamp(whole, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second = (whole, prefix)  # one tuple: a thread never sees half of it
    return f"{prefix}.{micros // 1000:03d}Z"


def _message(record: logging.LogRecord) -> str:
    """The record's message, as the handler's `RedactingFilter` left it (formatted once)."""
    message = getattr(record, MESSAGE, None)
    return message if message is not None else record.getMessage()


def _masked(value: Any) -> Any:
    return redact_known(value) if isinstance(value, str) else value


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a traceback goes in ``exc``, never across lines."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": _time(record), "level": record.levelname,
                               "logger": record.name, "message": _message(record)}
        # the fields are masked like the message (RedactingFilter sees the message only): a
        # line's reason repeats its message's text, and a key or correlation id comes from a
        # payload or a sender
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = _masked(value)
        extra = getattr(record, EXTRA, None)
        if isinstance(extra, dict):
            for name, value in extra.items():
                if value is not None:
                    out.setdefault(name, _masked(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = redact_known(record.exc_text)
        try:  # orjson: a tenth of json's time, on the path of every logged request and run
            return orjson.dumps(out, default=str).decode()
        except TypeError:  # what orjson refuses (an integer over 64 bits, a key not a string)
            return json.dumps(out, ensure_ascii=False, default=str)


#: every C0 and C1 control character, DEL and the Unicode line/paragraph separators: any of them
#: in a message could start what looks like a line of its own in a text log
_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7f, 0xa0)]}
_CONTROLS.update({0x0a: "\\n", 0x0d: "\\r", 0x09: "\\t", 0x2028: "\\u2028",
                  0x2029: "\\u2029"})


def one_line(text: str) -> str:
    """*text* with its control characters escaped (a newline as ``\\n``), so it stays one line."""
    return text.translate(_CONTROLS)


class TextFormatter(logging.Formatter):
    """``2026-11-20T10:00:00.123Z INFO  flowrunner.runs [shop/erp run=3f2a9c key=#1 cid=…] …``.

    A record is one line: control characters in the message and the context fields (which can
    come from a payload or a sender's header) are escaped, so no message can forge a line. Only
    the traceback below it spans lines, as written by Python."""

    def format(self, record: logging.LogRecord) -> str:
        where = "/".join(str(getattr(record, n)) for n in ("flow", "step")
                         if getattr(record, n, None))
        ids = " ".join(f"{label}={_masked(str(getattr(record, n)))[:12]}" for n, label in
                       (("run_id", "run"), ("key", "key"), ("correlation_id", "cid"))
                       if getattr(record, n, None))
        context = one_line(" ".join(part for part in (where, ids) if part))
        line = (f"{_time(record)} {record.levelname:<7} {record.name}"
                + (f" [{context}]" if context else "") + f" {one_line(_message(record))}")
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + redact_known(record.exc_text)
        return line


def setup_logging(level: str | int | None = None, fmt: str | None = None,
                  stream: IO[str] | None = None, default: str = "WARNING",
                  batch: bool = False) -> logging.Handler:
    """Install (or replace) flowrunner's handler on the root logger and return it.

    *level* and *fmt* default to ``FLOWRUN_LOG_LEVEL`` (else *default*: the services log at
    INFO, one-off commands at WARNING) and ``FLOWRUN_LOG_FORMAT`` (``text``); an unknown value
    fails here, naming the variable. With *batch* (``flowrun serve``) the lines are written in
    batches (engine/log_batching), unless the stream is a terminal.
    """
    fmt = (fmt or os.environ.get("FLOWRUN_LOG_FORMAT") or "text").lower()
    if fmt not in FORMATS:
        raise ValueError(f"FLOWRUN_LOG_FORMAT={fmt!r}: use json or text")
    level = level if level is not None else os.environ.get("FLOWRUN_LOG_LEVEL") or default
    if isinstance(level, str):
        named = logging.getLevelName(level.upper())
        if not isinstance(named, int):
            raise ValueError(f"FLOWRUN_LOG_LEVEL={level!r}: use DEBUG, INFO, WARNING or ERROR")
        level = named
    stream = stream or sys.stderr
    handler: logging.Handler
    if batch and not (hasattr(stream, "isatty") and stream.isatty()):
        handler = BatchingHandler(stream)
    else:  # a terminal shows each line as it comes
        handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()  # writes what a batching handler still holds; the stream stays open
    root.addHandler(handler)
    root.setLevel(level)
    return handler
