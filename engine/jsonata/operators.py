"""Operators: arithmetic, comparison, equality, boolean, string concatenation,
``in``, range, and the array / object constructors.

Each operator is chosen at compile time and returned as a closure; operands
that are literals are folded into the closure so the common ``x * 2`` or
``status = "paid"`` costs one call plus the operation itself.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import JsonataError
from .functions_core import to_boolean, to_string
from .limits import (
    MAX_ARRAY,
    MAX_STRING,
    array_error,
    int_error,
    int_fits,
    product_too_large,
    string_error,
)
from .paths import compile_group
from .runtime import PACE, Frame, State
from .values import (
    UNDEFINED,
    ConsArray,
    append,
    deep_equal,
    is_number,
    js_number_str,
    narrow,
    number_label,
    out_of_range,
    strict_equal,
)

if TYPE_CHECKING:
    from .compiler import Compiler

Fn = Callable[[Any, Frame], Any]


def _arith(op: str, position: int) -> Callable[[Any, Any], Any]:
    def check(lhs: Any, rhs: Any) -> bool:
        tl, tr = type(lhs), type(rhs)
        if lhs is not UNDEFINED and tl is not int and tl is not float:
            raise JsonataError("T2001", position=position, token=op, value=lhs)
        if rhs is not UNDEFINED and tr is not int and tr is not float:
            raise JsonataError("T2002", position=position, token=op, value=rhs)
        if tl is float and lhs - lhs != 0:
            raise out_of_range(lhs, js_number_str(lhs), position, op)
        if tr is float and rhs - rhs != 0:
            raise out_of_range(rhs, js_number_str(rhs), position, op)
        return lhs is not UNDEFINED and rhs is not UNDEFINED

    def overflow(a: Any, b: Any, result: Any = None) -> Exception:
        # a result JSON cannot carry (Infinity, NaN, or an int too large for a float)
        what = f"{number_label(a)} {op} {number_label(b)}"
        return out_of_range(result, what, position, op)

    def too_long(a: Any, b: Any) -> Exception:
        return int_error(f"the result of {number_label(a)} {op} {number_label(b)} would have",
                         position, op)

    def finite(a: Any, b: Any, v: Any) -> Any:
        if type(v) is float:
            if v - v != 0:
                raise overflow(a, b, v)
            return narrow(v)
        if type(v) is int and not int_fits(v):
            raise too_long(a, b)
        return v

    fn = _OPS[op]
    multiply = op == "*"

    def compute(a: Any, b: Any) -> Any:
        # a product too large is refused unmade: one multiplication of two huge
        # integers takes seconds no time bound can interrupt
        if multiply and type(a) is int and type(b) is int and product_too_large(a, b):
            raise too_long(a, b)
        try:
            return finite(a, b, fn(a, b))
        except (OverflowError, ZeroDivisionError):
            raise overflow(a, b) from None

    def arith(a: Any, b: Any) -> Any:
        return compute(a, b) if check(a, b) else UNDEFINED
    return arith


def _divide(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int and not a % b:
        return a // b  # exact, also beyond 2**53
    return a / b


def _remainder(a: Any, b: Any) -> Any:
    if type(a) is float or type(b) is float:
        return math.fmod(a, b)
    # JavaScript remainder: the result takes the sign of the dividend
    return (abs(a) % abs(b)) * (1 if a >= 0 else -1)


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": _divide, "%": _remainder}


def _compare(op: str, position: int) -> Callable[[Any, Any], Any]:
    fn = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[op]

    def cmp(lhs: Any, rhs: Any) -> Any:
        tl, tr = type(lhs), type(rhs)
        l_ok = tl is str or tl is int or tl is float
        r_ok = tr is str or tr is int or tr is float
        if (not l_ok and lhs is not UNDEFINED) or (not r_ok and rhs is not UNDEFINED):
            bad = lhs if not l_ok else rhs
            raise JsonataError("T2010", position=position, token=op, value=bad)
        if lhs is UNDEFINED or rhs is UNDEFINED:
            return UNDEFINED
        if (tl is str) != (tr is str):
            raise JsonataError("T2009", position=position, token=op, value=lhs, value2=rhs)
        return fn(lhs, rhs)
    return cmp


def compile_binary(c: Compiler, node: Any) -> Fn:
    op = node.value
    lhs = c.compile(node.lhs)
    rhs = c.compile(node.rhs)
    position = node.position
    if op in ("and", "or"):
        is_and = op == "and"

        def boolean(inp: Any, env: Frame) -> Any:
            left = to_boolean(lhs(inp, env))
            if is_and and not left:
                return False
            if not is_and and left:
                return True
            return bool(to_boolean(rhs(inp, env)))
        return boolean

    if op == "..":
        rng = _range(position)

        def range_(inp: Any, env: Frame) -> Any:
            return rng(lhs(inp, env), rhs(inp, env), env.state)
        return range_
    f = binary_function(op, position)
    if node.rhs.type in ("number", "string"):
        const = rhs(None, None)  # type: ignore[arg-type]

        def binary_const(inp: Any, env: Frame) -> Any:
            return f(lhs(inp, env), const)
        return binary_const

    def binary(inp: Any, env: Frame) -> Any:
        return f(lhs(inp, env), rhs(inp, env))
    return binary


def binary_function(op: str, position: int) -> Callable[[Any, Any], Any]:
    """The operation of a value operator on its two evaluated operands."""
    f: Callable[[Any, Any], Any]
    if op in ("+", "-", "*", "/", "%"):
        f = _arith(op, position)
    elif op in ("<", "<=", ">", ">="):
        f = _compare(op, position)
    elif op == "=":
        def f(a: Any, b: Any) -> Any:
            if a is UNDEFINED or b is UNDEFINED:
                return False
            return deep_equal(a, b)
    elif op == "!=":
        def f(a: Any, b: Any) -> Any:
            if a is UNDEFINED or b is UNDEFINED:
                return False
            return not deep_equal(a, b)
    elif op == "&":
        def f(a: Any, b: Any) -> Any:
            left = to_string(a) if a is not UNDEFINED else ""
            right = to_string(b) if b is not UNDEFINED else ""
            size = len(left) + len(right)
            if size > MAX_STRING:
                raise string_error(size, "the result of &", position, op)
            return left + right
    elif op == "in":
        def f(a: Any, b: Any) -> Any:
            if a is UNDEFINED or b is UNDEFINED:
                return False
            if not isinstance(b, list):
                b = [b]
            return any(strict_equal(x, a) for x in b)
    else:
        raise JsonataError("S0204", position=position, token=op)
    return f


def _range(position: int) -> Callable[[Any, Any, State], Any]:
    def rng(a: Any, b: Any, state: State) -> Any:
        if a is not UNDEFINED and not _is_int(a):
            raise JsonataError("T2003", position=position, value=a)
        if b is not UNDEFINED and not _is_int(b):
            raise JsonataError("T2004", position=position, value=b)
        if a is UNDEFINED or b is UNDEFINED or a > b:
            return UNDEFINED
        size = b - a + 1
        if size > 1e7:
            raise JsonataError("D2014", position=position, value=size)
        return _paced_range(int(a), int(b) + 1, state)
    return rng


def _paced_range(start: int, stop: int, state: State) -> list[int]:
    # up to 1e7 items: built in slices with a clock check between them
    out: list[int] = []
    for lo in range(start, stop, PACE):
        state.tick()
        out.extend(range(lo, min(lo + PACE, stop)))
    return out


def _is_int(v: Any) -> bool:
    return type(v) is int or (type(v) is float and v.is_integer())


def compile_unary(c: Compiler, node: Any) -> Fn:
    op = node.value
    position = node.position
    if op == "-":
        expr = c.compile(node.expression)

        def negate(inp: Any, env: Frame) -> Any:
            v = expr(inp, env)
            if v is UNDEFINED:
                return UNDEFINED
            if not is_number(v):
                raise JsonataError("D1002", position=position, token="-", value=v)
            if type(v) is float and v - v != 0:
                raise out_of_range(v, js_number_str(v), position, "-")
            return -v
        return negate
    if op == "[":
        items = [(c.compile(e), e.value == "[" and e.type == "unary") for e in node.expressions]
        cons = bool(node.consarray)

        def array(inp: Any, env: Frame) -> Any:
            result: Any = ConsArray() if cons else []
            for fn, nested in items:
                v = fn(inp, env)
                if v is UNDEFINED:
                    continue
                if nested or not isinstance(v, list):
                    result.append(v)
                else:
                    if len(result) + len(v) > MAX_ARRAY:  # [1..1e7, 1..1e7, ...]
                        raise array_error(len(result) + len(v), "the array constructed",
                                          position, "[")
                    result.extend(v)
            return result
        return array
    if op == "{":
        return compile_group(c, _Pairs(node))
    raise JsonataError("S0211", position=position, token=op)


class _Pairs:
    """Adapter giving an object-constructor node the shape of a group node."""

    def __init__(self, node: Any) -> None:
        self.lhs_object = node.lhs_object
        self.position = node.position


__all__ = ["append", "compile_binary", "compile_unary"]
