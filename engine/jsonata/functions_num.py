"""Numeric functions: rounding, powers, $formatBase and $formatNumber (the
XPath ``format-number`` picture-string language)."""

from __future__ import annotations

import math
import random
from functools import reduce
from typing import Any

from .errors import JsonataError
from .values import (
    MAX_EXACT,
    UNDEFINED,
    finite,
    finite_arg,
    js_number_str,
    narrow,
    number_label,
)


def _js_round(x: float) -> float:
    return math.floor(x + 0.5)


def fround(arg: Any, precision: Any = UNDEFINED) -> Any:
    if arg is UNDEFINED:
        return UNDEFINED
    original = finite_arg(arg, "round")
    prec = 0 if precision is UNDEFINED else int(precision)
    if prec:
        # shift the decimal point in the text form: multiplying by 10**n would
        # introduce binary rounding errors
        mant, _, exp = js_number_str(arg).partition("e")
        arg = float(f"{mant}e{int(exp) + prec if exp else prec}")
    result = _js_round(arg)
    if abs(result - arg) == 0.5 and abs(result % 2) == 1:
        result -= 1
    if prec:
        mant, _, exp = js_number_str(narrow(result)).partition("e")
        result = float(f"{mant}e{int(exp) - prec if exp else -prec}")
    if result == 0:
        return 0
    return finite(float(result), f"$round({number_label(original)}, {prec})")


def _whole(result: int, arg: Any) -> Any:
    # math.floor/ceil answer an exact int; a float argument beyond 2**53 keeps
    # its float form, as it would in JavaScript
    return result if type(arg) is int or -MAX_EXACT < result < MAX_EXACT else float(result)


def floor(arg: Any) -> Any:
    return UNDEFINED if arg is UNDEFINED else _whole(math.floor(finite_arg(arg, "floor")), arg)


def ceil(arg: Any) -> Any:
    return UNDEFINED if arg is UNDEFINED else _whole(math.ceil(finite_arg(arg, "ceil")), arg)


def fabs(arg: Any) -> Any:
    return UNDEFINED if arg is UNDEFINED else abs(finite_arg(arg, "abs"))


def sqrt(arg: Any) -> Any:
    if arg is UNDEFINED:
        return UNDEFINED
    if finite_arg(arg, "sqrt") < 0:
        raise JsonataError("D3060", value=arg, index=1)
    return narrow(math.sqrt(arg))


_POWER_BITS = 1100


def power(base: Any, exp: Any) -> Any:
    if base is UNDEFINED:
        return UNDEFINED
    if type(base) is int and type(exp) is int and exp > 0 and \
            (abs(base).bit_length() - 1) * exp > _POWER_BITS:
        # over 2**1100, beyond any double, so D3061 below: said before the integer
        # power is computed, which no time bound could interrupt ($power(3, 1e9))
        raise JsonataError("D3061", value=base, exp=exp)
    try:
        result = base ** exp if type(base) is int and type(exp) is int and exp >= 0 \
            else math.pow(base, exp)
    except (OverflowError, ValueError):
        raise JsonataError("D3061", value=base, exp=exp) from None
    if type(result) is int and abs(result) >= 2**53:
        try:
            result = float(result)
        except OverflowError:
            raise JsonataError("D3061", value=base, exp=exp) from None
    if isinstance(result, float) and (math.isinf(result) or result != result):
        raise JsonataError("D3061", value=base, exp=exp)
    return narrow(result)


def frandom() -> Any:
    return random.random()


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def format_base(value: Any, radix: Any = UNDEFINED) -> Any:
    if value is UNDEFINED:
        return UNDEFINED
    value = int(fround(finite_arg(value, "formatBase")))
    radix = 10 if radix is UNDEFINED else int(fround(radix))
    if radix < 2 or radix > 36:
        raise JsonataError("D3100", value=radix)
    n = abs(value)
    out = ""
    while True:
        n, r = divmod(n, radix)
        out = _DIGITS[r] + out
        if n == 0:
            break
    return ("-" if value < 0 else "") + out


_DEFAULTS = {
    "decimal-separator": ".", "grouping-separator": ",", "exponent-separator": "e",
    "infinity": "Infinity", "minus-sign": "-", "NaN": "NaN", "percent": "%",
    "per-mille": "\u2030", "zero-digit": "0", "digit": "#", "pattern-separator": ";",
}


def format_number(value: Any, picture: Any, options: Any = UNDEFINED) -> Any:
    if value is UNDEFINED:
        return UNDEFINED
    finite_arg(value, "formatNumber")
    props = dict(_DEFAULTS)
    if isinstance(options, dict):
        props.update(options)
    return _Formatter(props).format(value, picture)


class _Formatter:
    def __init__(self, props: dict[str, str]) -> None:
        self.p = props
        zero = ord(props["zero-digit"])
        self.family = [chr(c) for c in range(zero, zero + 10)]
        self.active = [*self.family, props["decimal-separator"], props["exponent-separator"],
                       props["grouping-separator"], props["digit"], props["pattern-separator"]]

    def _split(self, sub: str) -> dict[str, Any]:
        p, active = self.p, self.active
        expsep = p["exponent-separator"]
        prefix = next((sub[:i] for i, ch in enumerate(sub) if ch in active and ch != expsep), "")
        suffix = next((sub[i + 1:] for i in range(len(sub) - 1, -1, -1)
                       if sub[i] in active and sub[i] != expsep), "")
        active_part = sub[len(prefix):len(sub) - len(suffix)]
        exp_pos = sub.find(expsep, len(prefix))
        if exp_pos == -1 or exp_pos > len(sub) - len(suffix):
            mantissa, exponent = active_part, None
        else:
            mantissa, exponent = active_part[:exp_pos], active_part[exp_pos + 1:]
        dp = mantissa.find(p["decimal-separator"])
        if dp == -1:
            integer, fractional = mantissa, suffix
        else:
            integer, fractional = mantissa[:dp], mantissa[dp + 1:]
        return {"prefix": prefix, "suffix": suffix, "active": active_part, "mantissa": mantissa,
                "exponent": exponent, "integer": integer, "fractional": fractional, "sub": sub}

    def _validate(self, parts: dict[str, Any]) -> None:
        p, fam = self.p, self.family
        sub = parts["sub"]
        err = None
        ds, gs, digit = p["decimal-separator"], p["grouping-separator"], p["digit"]
        if sub.find(ds) != sub.rfind(ds):
            err = "D3081"
        if sub.find(p["percent"]) != sub.rfind(p["percent"]):
            err = "D3082"
        if sub.find(p["per-mille"]) != sub.rfind(p["per-mille"]):
            err = "D3083"
        if p["percent"] in sub and p["per-mille"] in sub:
            err = "D3084"
        if not any(ch in fam or ch == digit for ch in parts["mantissa"]):
            err = "D3085"
        if any(ch not in self.active for ch in parts["active"]):
            err = "D3086"
        dpos = sub.find(ds)
        if dpos != -1:
            if (dpos > 0 and sub[dpos - 1] == gs) or sub[dpos + 1:dpos + 2] == gs:
                err = "D3087"
        elif parts["integer"][-1:] == gs:
            err = "D3088"
        if gs + gs in sub:
            err = "D3089"
        opt = parts["integer"].find(digit)
        if opt != -1 and any(ch in fam for ch in parts["integer"][:opt]):
            err = "D3090"
        opt = parts["fractional"].rfind(digit)
        if opt != -1 and any(ch in fam for ch in parts["fractional"][opt:]):
            err = "D3091"
        exp = parts["exponent"]
        if exp is not None and exp and (p["percent"] in sub or p["per-mille"] in sub):
            err = "D3092"
        if exp is not None and (not exp or any(ch not in fam for ch in exp)):
            err = "D3093"
        if err:
            raise JsonataError(err)

    def _grouping(self, part: str, integer: str, to_left: bool) -> list[int]:
        gs, fam, digit = self.p["grouping-separator"], self.family, self.p["digit"]
        positions = []
        pos = part.find(gs)
        while pos != -1:
            seg = part[:pos] if to_left else part[pos:]
            positions.append(sum(1 for ch in seg if ch in fam or ch == digit))
            pos = integer.find(gs, pos + 1)
        return positions

    def _analyse(self, parts: dict[str, Any]) -> dict[str, Any]:
        fam, digit = self.family, self.p["digit"]
        int_groups = self._grouping(parts["integer"], parts["integer"], False)
        regular = 0
        if int_groups:
            factor = reduce(math.gcd, int_groups)
            regular = factor if all(i * factor in int_groups
                                    for i in range(1, len(int_groups) + 1)) else 0
        frac_groups = self._grouping(parts["fractional"], parts["integer"], True)
        min_int = sum(1 for ch in parts["integer"] if ch in fam)
        scaling = min_int
        min_frac = sum(1 for ch in parts["fractional"] if ch in fam)
        max_frac = sum(1 for ch in parts["fractional"] if ch in fam or ch == digit)
        has_exp = parts["exponent"] is not None
        if min_int == 0 and max_frac == 0:
            if has_exp:
                min_frac = max_frac = 1
            else:
                min_int = 1
        if has_exp and min_int == 0 and digit in parts["integer"]:
            min_int = 1
        if min_int == 0 and min_frac == 0:
            min_frac = 1
        min_exp = sum(1 for ch in parts["exponent"] if ch in fam) if has_exp else 0
        return {"int_groups": int_groups, "regular": regular, "min_int": min_int,
                "scaling": scaling, "prefix": parts["prefix"], "frac_groups": frac_groups,
                "min_frac": min_frac, "max_frac": max_frac, "min_exp": min_exp,
                "suffix": parts["suffix"], "picture": parts["sub"]}

    def _digits(self, value: float, dp: int) -> str:
        s = f"{abs(value):.{dp}f}"
        if self.p["zero-digit"] != "0":
            s = "".join(self.family[ord(c) - 48] if "0" <= c <= "9" else c for c in s)
        return s

    def format(self, value: Any, picture: str) -> str:
        p = self.p
        subs = picture.split(p["pattern-separator"])
        if len(subs) > 2:
            raise JsonataError("D3080")
        parts = [self._split(s) for s in subs]
        for part in parts:
            self._validate(part)
        pics = [self._analyse(part) for part in parts]
        if len(pics) == 1:
            neg = dict(pics[0])
            neg["prefix"] = p["minus-sign"] + neg["prefix"]
            pics.append(neg)
        pic = pics[0] if value >= 0 else pics[1]
        zero, ds, gs = p["zero-digit"], p["decimal-separator"], p["grouping-separator"]
        if p["percent"] in pic["picture"]:
            adjusted = value * 100
        elif p["per-mille"] in pic["picture"]:
            adjusted = value * 1000
        else:
            adjusted = value
        exponent = None
        if pic["min_exp"] == 0:
            mantissa = adjusted
        else:
            max_m, min_m = 10 ** pic["scaling"], 10 ** (pic["scaling"] - 1)
            mantissa, exponent = abs(adjusted), 0
            while 0 < mantissa < min_m:
                mantissa *= 10
                exponent -= 1
            while mantissa > max_m:
                mantissa /= 10
                exponent += 1
        from .functions_num import fround
        rounded = fround(mantissa, pic["max_frac"])
        s = self._digits(rounded, pic["max_frac"])
        s = s + ds if "." not in s else s.replace(".", ds, 1)
        s = s.lstrip(zero) if zero else s
        s = s.rstrip(zero) if zero else s
        dpos = s.find(ds)
        pad_left = pic["min_int"] - dpos
        pad_right = pic["min_frac"] - (len(s) - dpos - 1)
        s = zero * max(pad_left, 0) + s + zero * max(pad_right, 0)
        dpos = s.find(ds)
        if pic["regular"] > 0:
            groups = (dpos - 1) // pic["regular"]
            for g in range(1, groups + 1):
                cut = dpos - g * pic["regular"]
                s = s[:cut] + gs + s[cut:]
        else:
            for pos in pic["int_groups"]:
                s = s[:dpos - pos] + gs + s[dpos - pos:]
                dpos += 1
        dpos = s.find(ds)
        for pos in pic["frac_groups"]:
            s = s[:pos + dpos + 1] + gs + s[pos + dpos + 1:]
        dpos = s.find(ds)
        if pic["min_frac"] == 0 and dpos == len(s) - 1:
            s = s[:-1]
        if exponent is not None:
            se = self._digits(exponent, 0)
            se = zero * max(pic["min_exp"] - len(se), 0) + se
            s = s + p["exponent-separator"] + (p["minus-sign"] if exponent < 0 else "") + se
        return str(pic["prefix"]) + s + str(pic["suffix"])
