"""What each step left of the message, kept in the run's timeline for people to see.

A step's record keeps its *output* only: the body after the step (or the value it put in a
variable, for ``output: vars.x``). Its input is the previous step's output, or the original
message for the first step, so nothing is kept twice. A step that left the body as it found it
(the same object: steps assign a new body, they never change one in place) keeps a marker, not
a copy; the step that made the body the run still holds keeps a reference to it, encoded only
once a later step replaces that body (engine/runner), so the run's last body is not kept twice.
A snapshot is the first few KiB of the value's JSON with its size: a 50 MB order costs one
encoding per step that replaced it and 4 KiB of record. Secrets are masked when the snapshot is
taken — by the values the secrets store has handed out and by field names such as ``password``
or ``authorization`` — so the stored snapshots never hold them. (The body a reference points to
is the run's envelope, masked like the envelope when it is shown.)
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from engine.refs import REDACTED, Redactor

#: bytes of a step's output kept by default (FLOWRUN_STEP_SNAPSHOTS; 0 turns snapshots off)
LIMIT = 4096
#: a run that loops through many steps keeps snapshots of its first steps only
MOST_STEPS = 100
#: read past the cut before masking, so a secret that straddles it is masked whole
_MARGIN = 256
#: parts of field names that say the value is a secret (lower case; matched as substrings)
_NAMES = (b"password", b"passwd", b"passphrase", b"token", b"secret", b"authorization",
          b"apikey", b"api_key", b"api-key", b"privatekey", b"private_key", b"private-key",
          b"cookie")
# a field and its scalar value (or a string the cut left open); under a secret's name, every
# value of a list or object is masked (`_inside`), elsewhere they are entered for their fields
_STRING = rb'"[^"\\]*(?:\\.[^"\\]*)*'  # a JSON string without its closing quote, unrolled
_FIELD = re.compile(rb'(' + _STRING + rb'"\s*:\s*)(' + _STRING +
                    rb'(?:"|$)|-?[0-9][0-9.eE+-]*|true|false)')
_KEY = re.compile(_STRING + rb'"\s*:\s*')
#: a scalar inside a list or object, or one of its brackets and separators
_TOKEN = re.compile(rb'\s*(?:(' + _STRING + rb'(?:"|$)|-?[0-9][0-9.eE+-]*|true|false|null)|'
                    rb'([\[{])|([\]}])|(:)|(,))')
_NULL = b"null"


def _inside(data: bytes, start: int) -> list[tuple[int, int]]:
    """The spans of the values inside the list or object opening at *start*, however deep
    (keys and nulls left out), up to its closing bracket or the end of a cut."""
    spans: list[tuple[int, int]] = []
    stack: list[bytes] = []
    at, key = start, False
    while at < len(data):
        token = _TOKEN.match(data, at)
        if token is None:
            break
        at = token.end()
        opening, closing, colon, comma = token.group(2, 3, 4, 5)
        if opening:
            stack.append(opening)
            key = opening == b"{"
        elif closing:
            stack.pop()
            if not stack:
                break
            key = False
        elif colon:
            key = False
        elif comma:
            key = stack[-1] == b"{"
        elif not key and token.group(1) != _NULL:
            spans.append(token.span(1))
    return spans


def _mask_names(data: bytes) -> bytes:
    """*data* with the values of fields named like secrets replaced. Only where a name occurs
    is a field parsed: most messages hold none, and a pass over every field cost a millisecond
    for a 4 KiB order."""
    low = data.lower()
    spans: dict[int, tuple[int, int]] = {}
    for name in _NAMES:
        at = low.find(name)
        while at != -1:
            opening = data.rfind(b'"', 0, at)
            field = _KEY.match(data, opening) if opening != -1 else None
            if field is not None and at < field.end():  # the name is in the key
                scalar = _FIELD.match(data, opening)
                if scalar is not None:
                    spans[scalar.start(2)] = scalar.span(2)
                elif data[field.end():field.end() + 1] in (b"[", b"{"):
                    # a list or an object under a secret's name: every value in it
                    spans.update((begin, (begin, end))
                                 for begin, end in _inside(data, field.end()))
            at = low.find(name, at + len(name))
    for begin, end in sorted(spans.values(), reverse=True):
        data = data[:begin] + b'"' + REDACTED.encode() + b'"' + data[end:]
    return data


def mask(text: str | bytes, redactor: Redactor | None = None) -> str:
    """*text* (JSON, possibly cut short) with secret-named fields' values and known secret
    values replaced by ``***``."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    masked = _mask_names(data).decode("utf-8", "ignore")
    return redactor.text(masked) if redactor is not None else masked


def encode(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # an integer past 64 bits: the standard library writes it exactly
        return json.dumps(value, default=str, ensure_ascii=False).encode("utf-8", "replace")


def take(value: Any, redactor: Redactor | None, limit: int = LIMIT,
         to: str = "body") -> dict[str, Any]:
    """The snapshot of *value*: {json, size, truncated, to}; *size* is the whole JSON's bytes."""
    data = encode(value)
    cut = len(data) > limit
    text = mask(data[:limit + _MARGIN] if cut else data, redactor)
    if cut:
        text = text[:limit]
    return {"json": text, "size": len(data), "truncated": cut, "to": to}


def timeline(steps: list[dict[str, Any]], original: Any,
             body: Any = None) -> list[dict[str, Any] | None]:
    """Each step's (input, output) snapshots from the records' outputs, in order: a step's
    input is what the step before it left (*original*, the original body's snapshot, for the
    first); a step that kept the body as it was shows its input again; a step whose output is
    still the envelope's body (``{"ref": "body"}``) shows *body*, that body's snapshot. None
    where nothing was recorded (snapshots off, a compacted run, a step past `MOST_STEPS`)."""
    out: list[dict[str, Any] | None] = []
    current = original
    for record in steps:
        output = record.get("output")
        if output is not None and output.get("ref"):
            output = body
        if output is None:
            failed = record.get("status") == "failed" and current is not None
            out.append({"input": current, "output": None} if failed else None)
            current = None  # what a step without a snapshot left is not known
            continue
        if output.get("unchanged"):
            out.append({"input": current, "output": current, "unchanged": True})
            continue
        out.append({"input": current, "output": output})
        if output.get("to", "body") == "body":
            current = output
    return out
