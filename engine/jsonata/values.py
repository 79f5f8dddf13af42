"""Value model shared by the JSONata compiler and its function library.

JSONata values map onto JSON-decoded Python values (dict, list, str, int,
float, bool, None).  Two extra notions are needed:

* ``UNDEFINED`` - JSONata's "no value", distinct from JSON ``null`` (None);
* :class:`Seq` - a result *sequence* (a list subclass carrying the flags the
  reference implementation attaches to arrays), which collapses to a single
  value or to undefined at node boundaries.

Numbers: JSON integers stay ``int`` (exact, so large ids survive); whole
floats produced by arithmetic are narrowed back to ``int`` while they are
exactly representable.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .limits import MAX_ARRAY, MAX_INT_DIGITS, array_error, int_error, int_fits, int_text


class _Undefined:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Any = _Undefined()


def is_undefined(value: Any) -> bool:
    """True when ``value`` is JSONata's undefined."""
    return value is UNDEFINED


class Seq(list):
    """A JSONata sequence: a list that flattens into its parent and collapses
    to its single member (unless ``keep_singleton``).

    The flags are class-level defaults, set on an instance only when true:
    sequences are made in every loop, and a Python ``__init__`` setting three
    slots tripled the cost of making one."""

    keep_singleton = False
    outer_wrapper = False
    tuple_stream = False


class ConsArray(list):
    """An array built by an array constructor that must not be flattened by
    a following path step (the reference implementation's ``cons`` flag)."""

    __slots__ = ()


MAX_EXACT = 2**53


def is_number(v: Any) -> bool:
    t = type(v)
    return t is int or t is float


def narrow(v: float | int) -> float | int:
    """Return whole, exactly representable floats as int (JS has one number type)."""
    if type(v) is float:
        if v != v or v in (math.inf, -math.inf):
            return v
        if v.is_integer() and -MAX_EXACT < v < MAX_EXACT:
            return int(v)
    return v


def out_of_range(value: Any, what: str, position: int | None = None,
                 token: Any = None) -> Exception:
    """The D1001 error for a computation that left the finite numbers.

    JSON has no Infinity or NaN, so flowrunner fails at the operator or
    function that produced one instead of letting it travel on (the
    reference returns it and fails only where it is used again)."""
    from .errors import JsonataError
    return JsonataError("D1001", f"Number out of range: {what} is not a finite number",
                        position=position, token=token, value=value)


def float_overflow(position: int | None = None, token: Any = None) -> Exception:
    """D1001 for Python's OverflowError: an integer too large for a float."""
    return out_of_range(None, "an integer too large for a floating-point operation",
                        position, token)


def is_finite_float(v: float) -> bool:
    # inf - inf and nan - nan are both nan, which is unequal to everything
    return v - v == 0


def finite(v: Any, what: str) -> Any:
    """``v`` narrowed (see :func:`narrow`), or D1001 when it is infinite or NaN."""
    if type(v) is float:
        if v - v != 0:
            raise out_of_range(v, what)
        if v.is_integer() and -MAX_EXACT < v < MAX_EXACT:
            return int(v)
    return v


def number_label(v: float | int) -> str:
    """A number as an error message shows it: JavaScript form, huge integers cut short."""
    if type(v) is int and not int_fits(v):
        return f"(an integer of more than {MAX_INT_DIGITS:,} digits)"
    s = js_number_str(v)
    return s if len(s) <= 24 else f"{s[:12]}...({len(s)} digits)"


def finite_arg(v: Any, function: str) -> Any:
    """``v`` unchanged, or D1001 when a library function is handed a
    non-finite number, D1011 an integer over the bound (see limits.py; both
    possible only through input data or a binding)."""
    t = type(v)
    if t is float and v - v != 0:
        raise out_of_range(v, f"argument {number_label(v)} of ${function}", token=function)
    if t is int and not int_fits(v):
        raise int_error(f"the argument of ${function} has", token=function)
    return v


def is_function(v: Any) -> bool:
    return (callable(v) and not isinstance(v, type)) or isinstance(v, re.Pattern)


def collapse(result: Any, keep_array: bool = False) -> Any:
    """Apply the per-node sequence rule: empty -> undefined, singleton -> item."""
    if type(result) is Seq and not result.tuple_stream:
        if keep_array:
            result.keep_singleton = True
        n = len(result)
        if n == 0:
            return UNDEFINED
        if n == 1 and not result.keep_singleton:
            return result[0]
    return result


def append(a: Any, b: Any) -> Any:
    """The reference ``fn.append``: concatenate, promoting scalars to arrays."""
    if a is UNDEFINED:
        return b
    if b is UNDEFINED:
        return a
    if not isinstance(a, list):
        a = [a]
    if not isinstance(b, list):
        b = [b]
    if len(a) + len(b) > MAX_ARRAY:  # $append of a range to itself, doubled in a loop
        raise array_error(len(a) + len(b), "the appended array")
    return [*a, *b]


def deep_equal(a: Any, b: Any) -> bool:
    """JSON deep equality where booleans never equal numbers."""
    ta, tb = type(a), type(b)
    if ta is bool or tb is bool:
        return ta is tb and a == b
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return False
        return all(deep_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        if not isinstance(b, dict) or len(a) != len(b):
            return False
        return all(k in b and deep_equal(v, b[k]) for k, v in a.items())
    if is_number(a):
        return is_number(b) and a == b
    if isinstance(b, (list, dict)) or is_number(b):
        return False
    if is_function(a) or is_function(b):
        return a is b
    return bool(a == b)


def strict_equal(a: Any, b: Any) -> bool:
    """JavaScript ``===`` on JSON values (identity for containers)."""
    if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
        return a is b
    ta, tb = type(a), type(b)
    if ta is bool or tb is bool:
        return ta is tb and a == b
    if is_number(a):
        return is_number(b) and a == b
    return ta is tb and a == b


def charge_export(state: Any) -> None:
    """The loop budget ran out while a result was copied: check the clock, and
    the room left for result values (D2016 past MAX_ARRAY values in all)."""
    state.tick()
    if state.room < 0:
        raise array_error(MAX_ARRAY - state.room, "the result (its objects and arrays together)")


def js_number_str(v: float | int) -> str:
    """Format a number the way JavaScript's Number#toString does."""
    if type(v) is int:
        return int_text(v)
    if v != v:
        return "NaN"
    if v in (math.inf, -math.inf):
        return "Infinity" if v > 0 else "-Infinity"
    if v == 0:
        return "0"
    r = repr(v)
    sign = ""
    if r[0] == "-":
        sign, r = "-", r[1:]
    mant, _, exp_s = r.partition("e")
    exp = int(exp_s) if exp_s else 0
    int_part, _, frac_part = mant.partition(".")
    if frac_part == "0":
        frac_part = ""
    digits = (int_part + frac_part).lstrip("0")
    # decimal exponent of the first significant digit
    if int_part != "0":
        point = len(int_part) + exp
    else:
        point = exp - (len(frac_part) - len(frac_part.lstrip("0")))
    digits = digits.rstrip("0") or "0"
    n = point  # position of decimal point relative to digits start
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    es = f"e+{e}" if e >= 0 else f"e-{-e}"
    if k == 1:
        return sign + digits + es
    return sign + digits[0] + "." + digits[1:] + es


def format_number15(v: float | int) -> str:
    """Number rendering used by $string: 15 significant digits, JS style."""
    if type(v) is int:
        return int_text(v)
    return js_number_str(float(f"{v:.15g}"))


def export(value: Any, state: Any = None) -> Any:
    """Copy a result into plain JSON containers (no aliasing of input, no
    internal list subclasses, undefined members dropped as JSON does).

    A non-finite number can only arrive here from input data or a binding
    (every operator and function rejects producing one); JSON cannot carry
    it, so it fails the evaluation rather than reach the next step.

    *state* (the evaluation's): the values copied are charged to its loop
    budget and its room for result values (see :func:`charge_export`). A result
    may hold one object many times over - an object holding the one before it
    twice, thirty deep, is a billion values once copied - so the copy is
    bounded in time and in size like a loop."""
    if isinstance(value, dict):
        if state is not None:
            state.room -= len(value)
            state.budget -= len(value)
            if state.budget < 0:
                charge_export(state)
        out = {}
        for k, v in value.items():
            t = type(v)
            # scalars copied inline: a call per leaf would double the cost
            if t is str or t is int or t is bool or v is None:
                out[k] = v
            elif v is not UNDEFINED:
                out[k] = export(v, state)
        return out
    if isinstance(value, list):
        if state is not None:
            state.room -= len(value)
            state.budget -= len(value)
            if state.budget < 0:
                charge_export(state)
        return [v if type(v) is str else None if v is UNDEFINED else export(v, state)
                for v in value]
    if type(value) is float and value - value != 0:
        raise out_of_range(value, js_number_str(value))
    return value
