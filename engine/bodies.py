"""What a webhook request hands its flow: the body parsed by its media type, and the headers a
run record keeps.

A body that cannot become JSON-safe data is refused here with the status its sender must get —
415 for a media type or charset, 400 for content — so it is never recorded, and never later
fails the store as if the store were down (a 503 that senders would retry forever).
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
from collections.abc import Iterable
from typing import Any, Protocol
from urllib.parse import parse_qsl

import orjson

from engine.xmlbody import XmlBodyError, parse_xml

log = logging.getLogger("flowrunner.server")

MAX_FORM_FIELDS = 1000
DROPPED = "x-flowrun-dropped-headers"  # names the headers a run record left out
# only a body holding a \uD800-\uDFFF escape can parse to a lone surrogate; the rest skip the walk
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# every digit as "0", every other byte as " ": a run of 19 digits is then a substring search,
# about ten times faster than a regular expression over a 3 KB body
_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"0" * 19
_BOM = b"\xef\xbb\xbf"
_SURROGATE = re.compile("[\ud800-\udfff]")
_HINT = "send text as valid Unicode (a \\ud800-\\udbff escape must be followed by its pair)"


class BodyError(Exception):
    """A body the flow cannot be given: 415 for its media type, 400 when it does not parse."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message
        self.outcome = "unsupported_media_type" if status == 415 else "malformed"


def _no_constant(name: str) -> Any:
    # NaN and Infinity parse in Python but are not JSON; the run record must stay JSON
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    # 1e400 parses to infinity, which the run record cannot hold either
    value = float(text)
    if math.isinf(value):
        shown = text if len(text) <= 24 else f"{text[:12]}…({len(text)} characters)"
        raise BodyError(400, f"malformed JSON: the number {shown} is out of range "
                             "(a JSON number must fit a 64-bit float)")
    return value


def parse_body(raw: bytes, content_type: str | None) -> Any:
    """The body as the flow sees it, chosen by media type (parameters such as charset honoured)."""
    media, _, params = (content_type or "").partition(";")
    media = media.strip().lower()
    charset = "utf-8"
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value.strip('"').lower()
    if not media:
        if not raw:
            return None  # e.g. a GET ping: nothing to parse
        raise BodyError(415, "a Content-Type header is required")
    try:
        if media == "application/json" or media.endswith("+json"):
            return _json(raw)
        if media in ("application/xml", "text/xml") or media.endswith("+xml"):
            return parse_xml(raw)
        if media == "application/x-www-form-urlencoded":
            return _form(_text(raw, charset))
        if media == "text/plain":
            return _text(raw, charset)
    except json.JSONDecodeError as exc:
        raise BodyError(400, f"malformed JSON: {exc}") from None
    except (XmlBodyError, UnicodeDecodeError) as exc:
        raise BodyError(400, str(exc)) from None
    except LookupError:
        raise BodyError(415, f"unknown charset '{charset}'") from None
    except RecursionError:
        raise BodyError(400, "malformed JSON: nested too deeply") from None
    except ValueError as exc:  # a NaN, an integer over Python's digit limit, too many form fields
        if "integer string conversion" in str(exc):
            raise BodyError(400, "malformed JSON: an integer has more than "
                                 f"{sys.get_int_max_str_digits()} digits") from None
        raise BodyError(400, f"malformed body: {exc}") from None
    raise BodyError(415, f"unsupported media type '{media}'; send application/json, "
                         "application/xml, application/x-www-form-urlencoded or text/plain")


def _json(raw: bytes) -> Any:
    # orjson parses a body about four times faster, and refuses NaN, Infinity, numbers out of a
    # double's range, lone surrogates and invalid UTF-8 itself (the standard parser then says
    # why); but it reads an integer past 64 bits as a float, so a body with a run of 19 or more
    # digits takes the standard parser, which keeps every digit
    fast = raw[3:] if raw.startswith(_BOM) else raw
    if _LONG_RUN not in fast.translate(_DIGITS_ONLY):
        try:
            return orjson.loads(fast)
        except orjson.JSONDecodeError:
            pass
    # the utf-8-sig codec drops a leading byte order mark, which some senders write
    data = json.loads(raw.decode("utf-8-sig"), parse_constant=_no_constant, parse_float=_finite)
    if _SURROGATE_ESCAPE.search(raw):
        where = _lone_surrogate(data)
        if where is not None:
            raise BodyError(400, f"malformed JSON: {where} holds a lone UTF-16 surrogate; {_HINT}")
    return data


def _lone_surrogate(data: Any) -> str | None:
    """Where the first string (or key) holding a lone surrogate is, as a JSON path; else None.
    A loop, not recursion: the document may be nested as deeply as the parser allowed."""
    todo: list[tuple[str, Any]] = [("$", data)]
    while todo:
        path, value = todo.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return path
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                if _SURROGATE.search(key):
                    return f"a key of {path}"
                todo.append((f"{path}.{key}", item))
        elif isinstance(value, list):
            todo.extend((f"{path}[{i}]", item) for i, item in reversed(list(enumerate(value))))
    return None


def _text(raw: bytes, charset: str) -> str:
    text = raw.decode(charset)
    # utf-8 never decodes to a surrogate, but charsets such as utf-7 can
    if _SURROGATE.search(text):
        raise BodyError(400, f"the body holds a lone UTF-16 surrogate; {_HINT}")
    return text


def _form(text: str) -> dict[str, Any]:
    """A form as a dict; a field sent more than once becomes a list."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS):
        if key not in out:
            out[key] = value
        elif isinstance(out[key], list):
            out[key].append(value)
        else:
            out[key] = [out[key], value]
    return out


# -- headers -----------------------------------------------------------------------------------
class HeaderLimits(Protocol):
    """The two settings that bound a request's headers (`engine.settings.Settings` has both)."""

    max_header_bytes: int
    max_headers: int


def record_headers(items: Iterable[tuple[str, str]], limits: HeaderLimits) -> dict[str, str]:
    """The headers as a run record keeps them: a repeated name joined with ", ", and at most
    `max_headers` names and `max_header_bytes` bytes. Over either, the largest are left out (the
    ordinary short ones, such as a delivery id, stay) and DROPPED names those left out."""
    headers: dict[str, str] = {}
    for name, value in items:  # names arrive lower-cased from ASGI
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    size = sum(len(name) + len(value) for name, value in headers.items())
    if len(headers) <= limits.max_headers and size <= limits.max_header_bytes:
        return headers
    kept: set[str] = set()
    room = limits.max_header_bytes - len(DROPPED) - 256  # 256: room for DROPPED's value
    for name, value in sorted(headers.items(), key=lambda item: len(item[0]) + len(item[1])):
        if len(kept) + 1 < limits.max_headers and len(name) + len(value) <= room:
            kept.add(name)
            room -= len(name) + len(value)
    dropped = [name for name in headers if name not in kept]
    log.warning("request headers over the run record's limit (%d headers, %d bytes): left out %s",
                limits.max_headers, limits.max_header_bytes, ", ".join(dropped)[:512])
    out = {name: value for name, value in headers.items() if name in kept}
    out[DROPPED] = ", ".join(dropped)[:256]
    return out
