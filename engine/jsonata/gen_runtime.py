"""Run-time support for the Python functions codegen.py writes.

codegen.py decides, at compile time, what code to write; the functions here
are what that code calls at run time for the less common paths (a value of an
unexpected type, a library call needing its signature's checks, a closure
built on first use) and the namespace each generated function runs in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import JsonataError
from .functions_core import to_boolean, to_string
from .limits import INT_LIMIT, int_error
from .paths import lookup
from .runtime import Builtin, Frame, apply_at_depth, mark_error, pace
from .values import UNDEFINED, ConsArray, Seq, collapse, export, float_overflow

if TYPE_CHECKING:
    from .compiler import Compiler

Fn = Callable[[Any, Frame], Any]


class Deferred:
    """The closure of a generated node, built on first use: it serves only
    the slow paths (another type, a shadowed name), which most expressions
    never take, so building it at load would double the compile time."""

    __slots__ = ("_bound", "_depth", "_fn", "_node", "_source")

    def __init__(self, c: Compiler, node: Any, depth: int) -> None:
        self._source, self._bound, self._depth, self._node = c.source, c.bound, depth, node
        self._fn: Fn | None = None

    def __call__(self, inp: Any, env: Frame) -> Any:
        fn = self._fn
        if fn is None:
            from .compiler import Compiler
            c = Compiler(self._source)
            c.bound, c.depth, c.codegen = self._bound, self._depth, False
            fn = self._fn = c.compile(self._node, False)
        return fn(inp, env)


def overflow(position: int) -> Exception:
    # int operand too large to convert to a float in mixed arithmetic
    return float_overflow(position)


def int_text_error(err: ValueError) -> Exception:
    """D1011 for the ValueError of ``str()`` on an integer over Python's limit
    (one from the input or a binding: results are bounded), else ``err`` itself."""
    if "integer string conversion" in str(err):
        return int_error("an integer to be written as text has")
    return err


def call_generic(b: Builtin, vals: list[Any], inp: Any, position: int) -> Any:
    """A library call whose arguments need the signature's checks or coercions."""
    try:
        if b.signature is not None:
            vals = b.signature.validate(vals, inp)
        return b.impl(*vals)
    except JsonataError as err:
        mark_error(err, position, b.name)
        raise


def call_env(b: Builtin, vals: list[Any], inp: Any, env: Frame, position: int,
              static_depth: int) -> Any:
    """A library function that takes the frame (``$map``, ``$sort``, ...), applied
    as the closure ``call`` in compiler.py applies it, depth bound included."""
    return apply_at_depth(b, vals, inp, env, static_depth, position, b.name)


def mark_line(err: JsonataError, sites: dict[int, tuple[int, str]]) -> None:
    tb = err.__traceback__  # its first entry is the generated function's own frame
    site = sites.get(tb.tb_lineno) if tb is not None else None
    if site is not None:
        mark_error(err, *site)




def flat(items: list[Any]) -> Seq:
    out = Seq()
    for v in items:
        if isinstance(v, list) and type(v) is not ConsArray:
            out.extend(v)
        else:
            out.append(v)
    return out


def concat_part(v: Any) -> str:
    return "" if v is UNDEFINED else to_string(v)


def export_deferred(value: Any, state: Any) -> Any:
    """``export(value)`` for a value going into a result still being built.

    A number that is not finite is the only thing export() fails on; its error
    is held in ``state.pending`` and raised by the generated code once the
    result is complete, where the closures' export() of the finished result
    raises it, so that an error met later in the evaluation is the one reported."""
    try:
        return export(value, state)
    except JsonataError as err:
        if err.code != "D1001":  # a bound (time, size): fails at once
            raise
        if state.pending is None:
            state.pending = err
        return value  # never seen: the evaluation fails


def first_step_items(v: Any) -> Any:
    """The sequence a path's first step yields from one object's field value."""
    if type(v) is Seq:
        v = collapse(v)
    t = type(v)
    if t is list or t is Seq:
        return v
    return () if v is UNDEFINED else (v,)


def to_number_call(v: Any, b: Builtin, inp: Any, position: int) -> Any:
    """``$number`` of what the generated decimal test did not take: a string goes to
    the library function itself, anything else through the signature's checks."""
    if type(v) is str:
        try:
            return b.impl(v)
        except JsonataError as err:
            mark_error(err, position, b.name)
            raise
    return call_generic(b, [v], inp, position)


def numbers_of(v: Any) -> Any:
    """``v`` as the array of numbers an ``a<n>`` parameter wants, or None."""
    t = type(v)
    if t is list or t is Seq:
        for x in v:
            tx = type(x)
            if tx is not int and tx is not float:
                return None
        return v
    if t is int or t is float:
        return [v]
    return None


def namespace() -> dict[str, Any]:
    """The globals of one generated function (it adds its own constants)."""
    return {
        "U": UNDEFINED, "Seq": Seq, "_collapse": collapse,
        "_lookup": lookup, "_tobool": to_boolean, "_cat": concat_part, "_flat": flat,
        "_pace": pace, "_JErr": JsonataError, "_mark_line": mark_line, "_call": call_generic,
        "_call_env": call_env, "_SLOW": SLOW, "_NUM": (int, float),
        "_SI": (str, int),  # values exported as they are
        "_numbers": numbers_of, "_overflow": overflow, "_Frame": Frame,
        "_items": first_step_items, "_to_number": to_number_call,
        "_ex": export, "_exd": export_deferred, "_IL": INT_LIMIT, "_NIL": -INT_LIMIT,
        "_int_text": int_text_error,
    }


#: marks a field path that met something other than an object on the way
SLOW = object()
