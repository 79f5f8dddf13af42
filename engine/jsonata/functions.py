"""The JSONata function library: registration of every built-in with its
signature and arity, plus the small encoding and ``$eval`` functions.

``ROOT`` is the immutable frame holding the built-ins; each evaluation hangs
its own frame (bindings, ``$$``) below it.
"""

from __future__ import annotations

import base64
import urllib.parse
from typing import Any

from . import datetime_fns as dt
from . import functions_coll as fc
from . import functions_core as core
from . import functions_num as num
from . import regex as rx
from .errors import JsonataError
from .runtime import Builtin, Frame, State
from .values import UNDEFINED, Seq, append


def b64encode(s: Any) -> Any:
    return UNDEFINED if s is UNDEFINED else base64.b64encode(s.encode("utf-8")).decode("ascii")


def b64decode(s: Any) -> Any:
    if s is UNDEFINED:
        return UNDEFINED
    return base64.b64decode(s + "=" * (-len(s) % 4)).decode("utf-8", errors="replace")


def _url_encode(s: Any, safe: str, name: str) -> Any:
    if s is UNDEFINED:
        return UNDEFINED
    try:
        return urllib.parse.quote(s.encode("utf-8"), safe=safe)
    except UnicodeEncodeError:
        raise JsonataError("D3140", token=name, value=s) from None


def encode_url_component(s: Any) -> Any:
    return _url_encode(s, "-_.!~*'()", "encodeUrlComponent")


def encode_url(s: Any) -> Any:
    return _url_encode(s, ";,/?:@&=+$-_.!~*'()#", "encodeUrl")


_RESERVED = set(";/?:@&=+$,#")


def _url_decode(s: Any, keep_reserved: bool, name: str) -> Any:
    if s is UNDEFINED:
        return UNDEFINED
    out = bytearray()
    i = 0
    raw = s.encode("utf-8")
    while i < len(raw):
        c = raw[i]
        if c == 0x25:  # '%'
            hexpart = raw[i + 1:i + 3]
            try:
                b = int(hexpart, 16) if len(hexpart) == 2 else -1
            except ValueError:
                b = -1
            if b < 0:
                raise JsonataError("D3140", token=name, value=s)
            if keep_reserved and chr(b) in _RESERVED:
                out += raw[i:i + 3]
            else:
                out.append(b)
            i += 3
        else:
            out.append(c)
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise JsonataError("D3140", token=name, value=s) from None


def decode_url_component(s: Any) -> Any:
    return _url_decode(s, False, "decodeUrlComponent")


def decode_url(s: Any) -> Any:
    return _url_decode(s, True, "decodeUrl")


def feval(env: Frame, inp: Any, expr: Any, focus: Any = UNDEFINED) -> Any:
    from .api import compile_ast
    from .parse import parse
    if expr is UNDEFINED:
        return UNDEFINED
    try:
        fn = compile_ast(parse(expr), expr)
    except JsonataError as err:
        raise JsonataError("D3120", value=err.message) from None
    # the evaluated text may assign to a library function's name in our frame
    env.state.shadow = True
    ctx = inp if focus is UNDEFINED else focus
    if isinstance(ctx, list) and type(ctx) is not Seq:
        ctx = Seq([ctx])
        ctx.outer_wrapper = True
    try:
        return fn(ctx, env)
    except JsonataError as err:
        raise JsonataError("D3121", value=err.message) from None


# name, implementation, signature, arity (the reference's function.length), needs_env
_TABLE: list[tuple[str, Any, str | None, int, int]] = [
    ("sum", fc.fsum, "<a<n>:n>", 1, 0),
    ("count", fc.count, "<a:n>", 1, 0),
    ("max", fc.fmax, "<a<n>:n>", 1, 0),
    ("min", fc.fmin, "<a<n>:n>", 1, 0),
    ("average", fc.average, "<a<n>:n>", 1, 0),
    ("string", core.to_string, "<x-b?:s>", 1, 0),
    ("substring", core.substring, "<s-nn?:s>", 3, 0),
    ("substringBefore", core.substring_before, "<s-s:s>", 2, 0),
    ("substringAfter", core.substring_after, "<s-s:s>", 2, 0),
    ("lowercase", core.lowercase, "<s-:s>", 1, 0),
    ("uppercase", core.uppercase, "<s-:s>", 1, 0),
    ("length", core.length, "<s-:n>", 1, 0),
    ("trim", core.trim, "<s-:s>", 1, 0),
    ("pad", core.pad, "<s-ns?:s>", 3, 0),
    ("match", rx.fmatch, "<s-f<s:o>n?:a<o>>", 3, 1),
    ("contains", rx.contains, "<s-(sf):b>", 2, 1),
    ("replace", rx.replace, "<s-(sf)(sf)n?:s>", 4, 1),
    ("split", rx.split, "<s-(sf)n?:a<s>>", 3, 1),
    ("join", core.join, "<a<s>s?:s>", 2, 0),
    ("formatNumber", num.format_number, "<n-so?:s>", 3, 0),
    ("formatBase", num.format_base, "<n-n?:s>", 2, 0),
    ("formatInteger", dt.format_integer, "<n-s:s>", 2, 0),
    ("parseInteger", dt.parse_integer, "<s-s:n>", 2, 0),
    ("number", core.to_number, "<(nsb)-:n>", 1, 0),
    ("floor", num.floor, "<n-:n>", 1, 0),
    ("ceil", num.ceil, "<n-:n>", 1, 0),
    ("round", num.fround, "<n-n?:n>", 2, 0),
    ("abs", num.fabs, "<n-:n>", 1, 0),
    ("sqrt", num.sqrt, "<n-:n>", 1, 0),
    ("power", num.power, "<n-n:n>", 2, 0),
    ("random", num.frandom, "<:n>", 0, 0),
    ("boolean", core.to_boolean, "<x-:b>", 1, 0),
    ("not", fc.fnot, "<x-:b>", 1, 0),
    ("map", fc.fmap, "<af>", 2, 1),
    ("zip", fc.zip_, "<a+>", 0, 0),
    ("filter", fc.ffilter, "<af>", 2, 1),
    ("single", fc.single, "<af?>", 2, 1),
    ("reduce", fc.fold_left, "<afj?:j>", 3, 1),
    ("sift", fc.sift, "<o-f?:o>", 2, 1),
    ("keys", fc.keys, "<x-:a<s>>", 1, 0),
    ("lookup", fc.lookup, "<x-s:x>", 2, 0),
    ("append", append, "<xx:a>", 2, 0),
    ("exists", fc.exists, "<x:b>", 1, 0),
    ("spread", fc.spread, "<x-:a<o>>", 1, 0),
    ("merge", fc.merge, "<a<o>:o>", 1, 0),
    ("reverse", fc.reverse, "<a:a>", 1, 0),
    ("each", fc.each, "<o-f:a>", 2, 1),
    ("error", fc.error, "<s?:x>", 1, 0),
    ("assert", fc.fassert, "<bs?:x>", 2, 0),
    ("type", fc.type_of, "<x:s>", 1, 0),
    ("sort", fc.fsort, "<af?:a>", 2, 1),
    ("shuffle", fc.shuffle, "<a:a>", 1, 0),
    ("distinct", fc.distinct, "<x:x>", 1, 0),
    ("base64encode", b64encode, "<s-:s>", 1, 0),
    ("base64decode", b64decode, "<s-:s>", 1, 0),
    ("encodeUrlComponent", encode_url_component, "<s-:s>", 1, 0),
    ("encodeUrl", encode_url, "<s-:s>", 1, 0),
    ("decodeUrlComponent", decode_url_component, "<s-:s>", 1, 0),
    ("decodeUrl", decode_url, "<s-:s>", 1, 0),
    ("eval", feval, "<sx?:x>", 2, 2),
    ("toMillis", dt.to_millis, "<s-s?:n>", 2, 0),
    ("fromMillis", dt.from_millis, "<n-s?s?:s>", 3, 0),
    ("clone", fc.clone, "<(oa)-:o>", 1, 0),
    ("now", dt.now, "<s?s?:s>", 2, 1),
    ("millis", dt.millis, "<:n>", 0, 1),
]


def _build_root() -> Frame:
    variables: dict[str, Any] = {}
    for name, impl, sig, arity, env in _TABLE:
        variables[name] = Builtin(name, impl, sig, arity, env)
    return Frame(None, State(None, None), variables)


ROOT = _build_root()
