"""Core conversions ($boolean, $string, $number) and the string functions.

Kept free of compiler imports so operators and paths can use the
conversions directly.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .errors import JsonataError
from .limits import (
    INT_BITS,
    MAX_STRING,
    checked_int,
    checked_length,
    int_error,
    int_text,
    string_error,
)
from .values import (
    MAX_EXACT,
    UNDEFINED,
    Seq,
    finite_arg,
    format_number15,
    is_function,
    is_number,
)


def to_boolean(arg: Any) -> Any:
    """JSONata truthiness (``$boolean``); undefined stays undefined."""
    if arg is UNDEFINED:
        return UNDEFINED
    t = type(arg)
    if t is bool:
        return arg
    if t is str:
        return len(arg) > 0
    if t is int or t is float:
        return arg != 0
    if isinstance(arg, list):
        if len(arg) == 1:
            return to_boolean(arg[0])
        return any(to_boolean(v) for v in arg)
    if isinstance(arg, dict):
        return len(arg) > 0
    return False


def _json(value: Any, indent: int, level: int, out: list[str], budget: list[int]) -> None:
    """``value`` as JSON text onto ``out``; ``budget[0]`` counts down the characters
    written, so that text over the bound fails (D2015) before it is made: an
    array holding one array twice, nested thirty times, has a billion leaves."""
    t = type(value)
    if t is str:
        budget[0] -= len(value) + 2  # before the quoted copy is made; escapes are added after
        if budget[0] < 0:
            raise string_error(MAX_STRING - budget[0], "the text of $string", token="string")
        text = _quote(value)
        budget[0] -= len(text) - len(value) - 2
        out.append(text)
    elif t is bool:
        out.append("true" if value else "false")
    elif t is int or t is float:
        if t is float and (math.isinf(value) or value != value):
            raise JsonataError("D1001", value=value)
        else:
            text = format_number15(value)
            budget[0] -= len(text)
            out.append(text)
    elif value is None:
        out.append("null")
    elif isinstance(value, list):
        if not value:
            out.append("[]")
            return
        budget[0] -= len(value) * (1 + (indent * (level + 1) + 1 if indent else 0))
        if budget[0] < 0:
            raise string_error(MAX_STRING - budget[0], "the text of $string", token="string")
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            if indent:
                out.append("\n" + " " * (indent * (level + 1)))
            if v is UNDEFINED:
                out.append("null")
            else:
                _json(v, indent, level + 1, out, budget)
        if indent:
            out.append("\n" + " " * (indent * level))
        out.append("]")
    elif isinstance(value, dict):
        items = [(k, v) for k, v in value.items() if v is not UNDEFINED]
        if not items:
            out.append("{}")
            return
        budget[0] -= len(items) * (4 + (indent * (level + 1) + 2 if indent else 0))
        out.append("{")
        for i, (k, v) in enumerate(items):
            if i:
                out.append(",")
            if indent:
                out.append("\n" + " " * (indent * (level + 1)))
            key = _quote(str(k))
            budget[0] -= len(key)
            out.append(key + (": " if indent else ":"))
            _json(v, indent, level + 1, out, budget)
        if indent:
            out.append("\n" + " " * (indent * level))
        out.append("}")
    elif is_function(value) or hasattr(value, "search"):
        out.append('""')
    else:
        out.append("null")


_ESC = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NEEDS_ESC = re.compile(r'["\\\x00-\x1f]')


def _quote(s: str) -> str:
    if not _NEEDS_ESC.search(s):
        return '"' + s + '"'
    return '"' + _NEEDS_ESC.sub(
        lambda m: _ESC.get(m.group(0), f"\\u{ord(m.group(0)):04x}"), s) + '"'


def to_string(arg: Any, prettify: Any = False) -> Any:
    """``$string``: JSON text for non-strings, numbers to 15 significant digits."""
    if arg is UNDEFINED:
        return UNDEFINED
    t = type(arg)
    if t is str:
        return arg
    if t is int:
        return int_text(arg)
    if t is float:
        if math.isinf(arg) or arg != arg:
            raise JsonataError("D3001", value=arg)
        return format_number15(arg)
    if is_function(arg) or hasattr(arg, "search"):
        return ""
    if type(arg) is Seq and arg.outer_wrapper:
        arg = arg[0]
    out: list[str] = []
    _json(arg, 2 if prettify is True else 0, 0, out, [MAX_STRING])
    return "".join(out)


_NUMBER_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?([Ee][-+]?[0-9]+)?")
# at most 15 digits, no exponent: float() is exact-enough and finite
DECIMAL_RE = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,15})?")
_PREFIXED_RE = re.compile(r"0([xXoObB])([0-9a-fA-F]+)")


def to_number(arg: Any) -> Any:
    """``$number``: JSON number syntax plus 0x/0o/0b prefixes."""
    t = type(arg)
    if t is str and DECIMAL_RE.fullmatch(arg):
        # "19.99", "42": the overwhelmingly common case, without the general parse
        v = float(arg)
        if v.is_integer():
            return int(v) if -MAX_EXACT < v < MAX_EXACT else v
        return v
    if arg is UNDEFINED:
        return UNDEFINED
    if t is int or t is float:
        return arg
    if t is bool:
        return 1 if arg else 0
    if t is str:
        # the common case first: no surrounding white space
        m = _NUMBER_RE.fullmatch(arg) or _NUMBER_RE.fullmatch(arg.strip())
        if m:
            return _parsed_number(m, arg)
        m = _PREFIXED_RE.fullmatch(arg.strip())
        if m:
            base = {"x": 16, "o": 8, "b": 2}[m.group(1).lower()]
            subject = "the number read by $number has"
            if len(m.group(2).lstrip("0")) > INT_BITS:  # refused unread: see limits.py
                raise int_error(subject)
            try:
                return checked_int(int(m.group(2), base), subject)
            except ValueError:
                pass
    raise JsonataError("D3030", value=arg)


def _parsed_number(m: re.Match[str], arg: str) -> Any:
    s = m.group(0)
    if m.lastindex is None:  # integer syntax: exact while a double would be
        if len(s) < 16:
            return int(s)
        v = float(s)
        if v - v != 0:
            raise JsonataError("D3030", value=arg)
        # int(v), not int(s): exact here, and a long run of leading zeros is no
        # text Python refuses to read
        return int(v) if -MAX_EXACT < v < MAX_EXACT else v
    v = float(s)
    if v - v != 0:
        raise JsonataError("D3030", value=arg)
    if v.is_integer() and -MAX_EXACT < v < MAX_EXACT:
        return int(v)
    return v


# string functions -------------------------------------------------------------

def _chars(s: str) -> list[str]:
    # JSONata counts Unicode code points; Python str indexing already does.
    return list(s)


def _js_index(v: float, n: int) -> int:
    i = int(v) if v > -math.inf and v < math.inf else (n if v > 0 else -n)
    if i < 0:
        return max(0, n + i)
    return min(i, n)


def substring(s: Any, start: Any, length: Any = UNDEFINED) -> Any:
    if s is UNDEFINED:
        return UNDEFINED
    if type(start) is int and start >= 0 and type(length) is int and length > 0:
        return s[start:start + length]  # the usual `$substring(x, 0, 40)`
    n = len(s)
    if n + start < 0:
        start = 0
    if length is UNDEFINED:
        return s[_js_index(start, n):]
    if length <= 0:
        return ""
    end = start + length if start >= 0 else n + start + length
    return s[_js_index(start, n):_js_index(end, n)]


def substring_before(s: Any, chars: Any) -> Any:
    if s is UNDEFINED:
        return UNDEFINED
    i = s.find(chars)
    return s[:i] if i > -1 else s


def substring_after(s: Any, chars: Any) -> Any:
    if s is UNDEFINED:
        return UNDEFINED
    i = s.find(chars)
    return s[i + len(chars):] if i > -1 else s


def lowercase(s: Any) -> Any:
    return UNDEFINED if s is UNDEFINED else s.lower()


def uppercase(s: Any) -> Any:
    return UNDEFINED if s is UNDEFINED else s.upper()


def length(s: Any) -> Any:
    return UNDEFINED if s is UNDEFINED else len(s)


_RUNS_OF_SPACE = re.compile(r"[ \t\n\r]+")


def trim(s: Any) -> Any:
    if s is UNDEFINED:
        return UNDEFINED
    if "  " not in s and "\t" not in s and "\n" not in s and "\r" not in s:
        return s.strip(" ")  # no run to fold: four scans beat the regular expression
    return _RUNS_OF_SPACE.sub(" ", s).strip(" ")


def pad(s: Any, width: Any, char: Any = UNDEFINED) -> Any:
    if s is UNDEFINED:
        return UNDEFINED
    if char is UNDEFINED or char == "":
        char = " "
    w = math.trunc(finite_arg(width, "pad"))
    # the width may come from the message: the bound is checked before the padding is made
    checked_length(abs(w), "the result of $pad", token="pad")
    missing = abs(w) - len(s)
    if missing <= 0:
        return s
    padding = (char * (missing // len(char) + 1))[:missing]
    return s + padding if w > 0 else padding + s


def join(strs: Any, sep: Any = UNDEFINED) -> Any:
    if strs is UNDEFINED:
        return UNDEFINED
    sep = "" if sep is UNDEFINED else sep
    size = sum(map(len, strs)) + len(sep) * max(len(strs) - 1, 0)
    checked_length(size, "the result of $join", token="join")
    return sep.join(strs)


def is_numeric_value(v: Any) -> bool:
    return is_number(v) and not (type(v) is float and (math.isinf(v) or v != v))
