"""Function signature validation (``<s-n?:s>`` style type strings).

A signature is compiled once into a regular expression over one-letter type
symbols; validation maps the actual arguments to their symbols, matches, and
then applies the two coercions the language defines: a missing argument
marked ``-`` takes the context value, and an ``a`` parameter wraps a
non-array argument into an array.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import JsonataError
from .values import UNDEFINED, ConsArray, Seq, is_function

_ARRAY_OF = {"a": "arrays", "b": "booleans", "f": "functions", "n": "numbers",
             "o": "objects", "s": "strings"}


def type_symbol(value: Any) -> str:
    """The one-letter signature type of a value (``m`` for undefined)."""
    if value is UNDEFINED:
        return "m"
    t = type(value)
    if t is str:
        return "s"
    if t is bool:
        return "b"
    if t is int or t is float:
        return "n"
    if value is None:
        return "l"
    if isinstance(value, list):
        return "a"
    if isinstance(value, dict):
        return "o"
    if is_function(value):
        return "f"
    return "m"


_IDENTITY = object()
_SLOW = object()


_SYMBOLS: dict[type, str] = {str: "s", int: "n", float: "n", bool: "b", type(None): "l",
                             list: "a", dict: "o", Seq: "a", ConsArray: "a"}


class _Param:
    __slots__ = ("context", "context_regex", "regex", "subtype", "type")

    def __init__(self, regex: str, typ: str) -> None:
        self.regex = regex
        self.type = typ
        self.context = False
        self.context_regex: re.Pattern[str] | None = None
        self.subtype: str | None = None


def _closing(text: str, start: int, open_c: str, close_c: str) -> int:
    depth = 1
    pos = start
    while pos < len(text) - 1:
        pos += 1
        c = text[pos]
        if c == close_c:
            depth -= 1
            if depth == 0:
                return pos
        elif c == open_c:
            depth += 1
    return pos


class Signature:
    """A parsed signature; :meth:`validate` returns the coerced argument list."""

    def __init__(self, definition: str) -> None:
        self.definition = definition
        params: list[_Param] = []
        prev: _Param | None = None
        pos = 1
        while pos < len(definition):
            c = definition[pos]
            if c == ":":
                break
            p: _Param | None = None
            if c in "snblo":
                p = _Param(f"[{c}m]", c)
            elif c == "a":
                p = _Param("[asnblfom]", c)
            elif c == "f":
                p = _Param("f", c)
            elif c == "j":
                p = _Param("[asnblom]", c)
            elif c == "x":
                p = _Param("[asnblfom]", c)
            elif c == "-" and prev is not None:
                prev.context = True
                prev.context_regex = re.compile(prev.regex)
                prev.regex += "?"
            elif c in "?+" and prev is not None:
                prev.regex += c
            elif c == "(":
                end = _closing(definition, pos, "(", ")")
                choice = definition[pos + 1:end]
                if "<" in choice:
                    raise JsonataError("S0402", value=choice, position=pos)
                p = _Param(f"[{choice}m]", f"({choice})")
                pos = end
            elif c == "<" and prev is not None:
                if prev.type not in ("a", "f"):
                    raise JsonataError("S0401", value=prev.type, position=pos)
                end = _closing(definition, pos, "<", ">")
                prev.subtype = definition[pos + 1:end]
                pos = end
            if p is not None:
                params.append(p)
                prev = p
            pos += 1
        self.params = params
        self._plans: dict[str, object] = {}
        self._needs_context = any(p.context for p in params)
        self.regex = re.compile("^" + "".join(f"({p.regex})" for p in params) + "$")

    def validate(self, args: list[Any], context: Any) -> list[Any]:
        sym = _SYMBOLS.get
        supplied = "".join([sym(type(a)) or type_symbol(a) for a in args])
        plan = self._plans.get(supplied)
        if plan is _IDENTITY:
            return args
        if plan is not None and not self._needs_context:
            # only array checks/wrapping remain: redo them for these values
            return self._validate_slow(args, context, supplied)
        if plan is None:
            self._validate_slow(args, context, supplied)  # raises on mismatch
            if len(self._plans) < 64:
                self._plans[supplied] = self._plan_for(supplied)
            return self._validate_slow(args, context, supplied)
        return self._validate_slow(args, context, supplied)

    def _plan_for(self, supplied: str) -> object:
        # identity when every parameter took exactly one argument as-is
        m = self.regex.match(supplied)
        assert m is not None
        for i, param in enumerate(self.params):
            matched = m.group(i + 1)
            if len(matched) != 1:
                return _SLOW
            if param.type == "a" and (matched != "a" or param.subtype is not None):
                return _SLOW
        return _IDENTITY

    def _validate_slow(self, args: list[Any], context: Any, supplied: str) -> list[Any]:
        m = self.regex.match(supplied)
        if m is None:
            self._fail(args, supplied)
        out: list[Any] = []
        idx = 0
        for i, param in enumerate(self.params):
            matched = m.group(i + 1)  # type: ignore[union-attr]
            if matched == "":
                if param.context and param.context_regex is not None:
                    if param.context_regex.match(type_symbol(context)):
                        out.append(context)
                    else:
                        raise JsonataError("T0411", value=context, index=idx + 1)
                else:
                    out.append(args[idx] if idx < len(args) else UNDEFINED)
                    idx += 1
                continue
            for single in matched:
                arg = args[idx] if idx < len(args) else UNDEFINED
                if param.type == "a":
                    if single == "m":
                        arg = UNDEFINED
                    else:
                        self._check_array(param, single, matched, arg, idx)
                        if single != "a":
                            arg = [arg]
                out.append(arg)
                idx += 1
        return out

    @staticmethod
    def _check_array(param: _Param, single: str, matched: str, arg: Any, idx: int) -> None:
        sub = param.subtype
        if sub is None:
            return
        ok = True
        if single != "a" and matched != sub:
            ok = False
        elif single == "a" and len(arg) > 0:
            first = type_symbol(arg[0])
            ok = first == sub[0] and all(type_symbol(v) == first for v in arg)
        if not ok:
            raise JsonataError("T0412", value=arg, index=idx + 1, type=_ARRAY_OF.get(sub, sub))

    def _fail(self, args: list[Any], supplied: str) -> None:
        pattern = "^"
        good = 0
        for p in self.params:
            pattern += p.regex
            m = re.match(pattern, supplied)
            if m is None:
                break
            good = len(m.group(0))
        raise JsonataError("T0410", value=args[good] if good < len(args) else UNDEFINED,
                           index=good + 1)
