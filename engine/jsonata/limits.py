"""Size bounds on the values one evaluation builds: integers, strings, arrays.

The time bound is checked between steps, so a single step that takes seconds
(one multiplication of two huge integers) or allocates a gigabyte at once
(`$pad("x", 1e9)`, with the width taken from the message) escapes it.  Each
bound here is checked before the allocation wherever its size is known in
advance, and fails the evaluation with a JSONata-style code (see
CONFORMANCE.md): D1011 an integer, D2015 a string, D2016 an array (D2014 is
the reference's bound on a range).

Integers are exact in flowrunner (jsonata-js would turn these into Infinity);
the bound is the most digits Python writes as text, so every integer result
can be stored and printed.  A JSON document cannot bring in a longer one.
"""

from __future__ import annotations

from .errors import JsonataError

MAX_INT_DIGITS = 4300
MAX_STRING = 10_000_000
MAX_ARRAY = 10_000_000

#: the smallest integer with one digit too many
INT_LIMIT = 10**MAX_INT_DIGITS
#: an integer with more bits than this has more than MAX_INT_DIGITS digits
INT_BITS = INT_LIMIT.bit_length()


def int_fits(v: int) -> bool:
    return -INT_LIMIT < v < INT_LIMIT


def product_too_large(a: int, b: int) -> bool:
    """Whether ``a * b`` has too many digits, known before multiplying: a product
    has at least ``a.bit_length() + b.bit_length() - 1`` bits."""
    return a.bit_length() + b.bit_length() - 1 > INT_BITS


def int_error(subject: str, position: int | None = None, token: object = None) -> JsonataError:
    """D1011; *subject* ends in its verb: "the result of n * n would have"."""
    return JsonataError(
        "D1011", f"Integer out of range: {subject} more than {MAX_INT_DIGITS:,} digits",
        position=position, token=token)


def checked_int(v: int, subject: str) -> int:
    """``v``, or D1011 when it has more than MAX_INT_DIGITS digits."""
    if -INT_LIMIT < v < INT_LIMIT:
        return v
    raise int_error(subject)


def int_text(v: int) -> str:
    """``str(v)``; Python refuses the text of a longer integer with a ValueError."""
    try:
        return str(v)
    except ValueError:
        raise int_error("an integer to be written as text has") from None


def string_error(size: int, what: str, position: int | None = None,
                 token: object = None) -> JsonataError:
    return JsonataError(
        "D2015", f"String too long: {what} would have {size:,} characters; "
        f"the limit is {MAX_STRING:,}", position=position, token=token, value=size)


def checked_length(size: int, what: str, position: int | None = None,
                   token: object = None) -> None:
    """D2015 when a string of ``size`` characters is over the bound."""
    if size > MAX_STRING:
        raise string_error(size, what, position, token)


def array_error(size: int, what: str, position: int | None = None,
                token: object = None) -> JsonataError:
    return JsonataError(
        "D2016", f"Array too long: {what} would have {size:,} items; the limit is {MAX_ARRAY:,}",
        position=position, token=token, value=size)
