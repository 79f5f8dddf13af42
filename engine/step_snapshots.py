"""What each step left of the message, kept in the run's timeline for people to see.

A step's record keeps its *output* only: the body after the step (or the value it put in a
variable, for ``output: vars.x``). Its input is the previous step's output, or the original
message for the first step, so nothing is kept twice. A step that left the body as it found it
(the same object: steps assign a new body, they never change one in place) keeps a marker, not
a copy. A snapshot is the first few KiB of the value's JSON with its size, so a 50 MB order
costs one encoding per step that changed it and 4 KiB of record; secrets are masked when the
snapshot is taken — by the values the secrets store has handed out and by field names such as
``password`` or ``authorization`` — so the stored record never holds them.
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
_NAMES = r"password|passwd|passphrase|token|secret|authorization|api[_-]?key|private[_-]?key"
# a field whose name says it holds a secret: its scalar value, or a string the cut left open
_SENSITIVE = re.compile(
    r'("[^"\\]*(?:' + _NAMES + r')[^"\\]*"\s*:\s*)'
    r'("(?:[^"\\]|\\.)*"|"(?:[^"\\]|\\.)*$|-?[0-9][0-9.eE+-]*|true|false)', re.IGNORECASE)


def mask(text: str, redactor: Redactor | None = None) -> str:
    """*text* (JSON, possibly cut short) with secret-named fields' values and known secret
    values replaced by ``***``."""
    text = _SENSITIVE.sub(lambda m: f'{m[1]}"{REDACTED}"', text)
    return redactor.text(text) if redactor is not None else text


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
    text = data[:limit + _MARGIN].decode("utf-8", "ignore") if cut else data.decode("utf-8")
    text = mask(text, redactor)
    if cut:
        text = text[:limit]
    return {"json": text, "size": len(data), "truncated": cut, "to": to}


def timeline(steps: list[dict[str, Any]], original: Any) -> list[dict[str, Any] | None]:
    """Each step's (input, output) snapshots from the records' outputs, in order: a step's
    input is what the step before it left (the original body for the first); a step that kept
    the body as it was shows its input again. None where nothing was recorded (snapshots off,
    a compacted run, a step past `MOST_STEPS`)."""
    out: list[dict[str, Any] | None] = []
    current = original
    for record in steps:
        output = record.get("output")
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
