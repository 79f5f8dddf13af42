"""Regular-expression functions: $match, $replace, $split, $contains, and the
matches of a regex or of a custom matcher function.

Regex literals are compiled once by the parser (Python ``re``); iteration
follows the reference ``lastIndex`` rules, including error D1004 when a
pattern keeps matching the empty string.

Searches (`engine.jsonata.runtime.search`, beside the application of a regex
as a function) run on the ``regex`` package's engine, compiled from the same
pattern text and flags: unlike ``re``, it takes a timeout, so a pattern that
backtracks without end on some input stops at the evaluation's deadline with
U1001 instead of holding the worker.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from .errors import JsonataError
from .limits import checked_length
from .runtime import Frame, State, apply_fn, search
from .values import UNDEFINED, Seq


class _Match:
    __slots__ = ("end", "groups", "match", "start")

    def __init__(self, match: str, start: int, end: int, groups: list[Any]) -> None:
        self.match = match
        self.start = start
        self.end = end
        self.groups = groups


def _pattern_matches(pattern: re.Pattern[str], s: str, state: State) -> Iterator[_Match]:
    pos = 0
    first = True
    while True:
        m = search(pattern, s, pos, state)
        if m is None:
            return
        if not first and m.group(0) == "":
            raise JsonataError("D1004", value=pattern.pattern)
        yield _Match(m.group(0), m.start(), m.end(),
                     [g if g is not None else UNDEFINED for g in m.groups()])
        first = False
        pos = m.end()
        if pos >= len(s):
            return


def _custom_matches(env: Frame, matcher: Any, s: str) -> Iterator[_Match]:
    result = apply_fn(matcher, [s], None, env)
    while isinstance(result, dict):
        if not (isinstance(result.get("start"), int) or isinstance(result.get("end"), int)
                or isinstance(result.get("groups"), list) or callable(result.get("next"))):
            raise JsonataError("T1010")
        yield _Match(result.get("match", ""), result.get("start", 0), result.get("end", 0),
                     result.get("groups", []))
        nxt = result.get("next")
        if nxt is None or nxt is UNDEFINED:
            return
        result = apply_fn(nxt, [], None, env)
    if result is not UNDEFINED and result is not None:
        raise JsonataError("T1010")


def matches(env: Frame, matcher: Any, s: str) -> Iterator[_Match]:
    if isinstance(matcher, re.Pattern):
        return _pattern_matches(matcher, s, env.state)
    return _custom_matches(env, matcher, s)


def fmatch(env: Frame, s: Any, regex: Any, limit: Any = UNDEFINED) -> Any:
    if s is UNDEFINED:
        return UNDEFINED
    if limit is not UNDEFINED and limit < 0:
        raise JsonataError("D3040", value=limit)
    result = Seq()
    if limit is UNDEFINED or limit > 0:
        for m in matches(env, regex, s):
            result.append({"match": m.match, "index": m.start, "groups": m.groups})
            if limit is not UNDEFINED and len(result) >= limit:
                break
    return result


def contains(env: Frame, s: Any, token: Any) -> Any:
    if s is UNDEFINED or token is UNDEFINED:
        return UNDEFINED
    if isinstance(token, str):
        return token in s
    return next(iter(matches(env, token, s)), None) is not None


def _substitute(replacement: str, m: _Match) -> str:
    out = []
    pos = 0
    n = len(replacement)
    index = replacement.find("$", pos)
    while index != -1 and pos < n:
        out.append(replacement[pos:index])
        pos = index + 1
        c = replacement[pos:pos + 1]
        if c == "$":
            out.append("$")
            pos += 1
        elif c == "0":
            out.append(m.match)
            pos += 1
        else:
            ng = len(m.groups)
            max_digits = 1 if ng == 0 else math.floor(math.log10(ng)) + 1
            digits = re.match(r"\d+", replacement[pos:pos + max_digits])
            idx = int(digits.group(0)) if digits else None
            if max_digits > 1 and idx is not None and idx > ng:
                digits = re.match(r"\d+", replacement[pos:pos + max_digits - 1])
                idx = int(digits.group(0)) if digits else None
            if idx is not None:
                if ng > 0 and 0 < idx <= ng:
                    g = m.groups[idx - 1]
                    if g is not UNDEFINED:
                        out.append(g)
                pos += len(str(idx))
            else:
                out.append("$")
        index = replacement.find("$", pos)
    out.append(replacement[pos:])
    return "".join(out)


def replace(env: Frame, s: Any, pattern: Any, replacement: Any, limit: Any = UNDEFINED) -> Any:
    if s is UNDEFINED:
        return UNDEFINED
    if pattern == "":
        raise JsonataError("D3010", value=pattern, index=2)
    if limit is not UNDEFINED and limit < 0:
        raise JsonataError("D3011", value=limit, index=4)
    if limit is not UNDEFINED and limit == 0:
        return s
    if isinstance(pattern, str):
        count = -1 if limit is UNDEFINED else math.ceil(limit)
        if len(replacement) > len(pattern):  # the result may grow: its size first
            n = s.count(pattern) if count < 0 else min(count, s.count(pattern))
            checked_length(len(s) + n * (len(replacement) - len(pattern)),
                           "the result of $replace", token="replace")
        return s.replace(pattern, replacement, count)
    out = []
    pos = 0
    size = len(s)
    for done, m in enumerate(matches(env, pattern, s)):
        if limit is not UNDEFINED and done >= limit:
            break
        out.append(s[pos:m.start])
        if isinstance(replacement, str):
            rep = _substitute(replacement, m)
        else:
            rep = apply_fn(replacement, [{"match": m.match, "index": m.start, "start": m.start,
                                          "end": m.end, "groups": m.groups}], None, env)
        if not isinstance(rep, str):
            raise JsonataError("D3012", value=rep)
        size += len(rep) - len(m.match)
        checked_length(size, "the result of $replace", token="replace")
        out.append(rep)
        pos = m.start + len(m.match)
    out.append(s[pos:])
    return "".join(out)


def split(env: Frame, s: Any, sep: Any, limit: Any = UNDEFINED) -> Any:
    if s is UNDEFINED:
        return UNDEFINED
    if limit is not UNDEFINED and limit < 0:
        raise JsonataError("D3020", value=limit)
    if limit is not UNDEFINED and limit == 0:
        return []
    lim = None if limit is UNDEFINED else int(limit)
    if isinstance(sep, str):
        parts = list(s) if sep == "" else s.split(sep)
        return parts if lim is None else parts[:lim]
    result = []
    start = 0
    count = 0
    for m in matches(env, sep, s):
        if lim is not None and count >= lim:
            break
        result.append(s[start:m.start])
        start = m.end
        count += 1
    if lim is None or count < lim:
        result.append(s[start:])
    return result
