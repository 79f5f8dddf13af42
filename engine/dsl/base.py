"""Building blocks shared by every DSL model: the closed base model, durations and expressions."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    WithJsonSchema,
)

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


class Model(BaseModel):
    """Closed model: an unknown key is an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def parse_duration(value: Any) -> float:
    """``"2s"``, ``"10m"``, ``"1h30m"``, ``"250ms"`` or a number of seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like '30s', '5m' or '1h30m'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text)  # environment variables are text: FLOWRUN_BUSY_TIMEOUT=5
        if text and _DURATION.sub("", text) == "":
            return sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))
    raise ValueError(f"'{value}' is not a duration; write e.g. '500ms', '30s', '5m', '1h30m' "
                     "or '2d'")


def format_duration(seconds: float) -> str:
    """Text that `parse_duration` reads back (to the microsecond); never exponent notation."""
    if seconds and seconds < 1:
        return f"{seconds * 1000:.3f}".rstrip("0").rstrip(".") + "ms"
    return f"{seconds:.6f}".rstrip("0").rstrip(".") + "s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({
        "anyOf": [
            {"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"},
            {"type": "number", "minimum": 0},
        ],
        "description": "A duration: '500ms', '30s', '5m', '1h30m', '2d' or a number of seconds.",
    }),
]


@dataclass(frozen=True)
class ExprSpec:
    """An expression as written: its language and source text (compiled later, at load)."""

    lang: Literal["jsonata", "jmespath"]
    source: str
    #: key under which the source sits in YAML (``jsonata``/``jmespath``), or None for a bare string
    key: str | None = None


def parse_expr(value: Any) -> ExprSpec:
    if isinstance(value, ExprSpec):
        return value
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("empty expression")
        return ExprSpec("jsonata", value)
    if isinstance(value, dict) and len(value) == 1:
        (lang, source), = value.items()
        if lang in ("jsonata", "jmespath") and isinstance(source, str) and source.strip():
            return ExprSpec(lang, source, key=lang)
        if lang in ("jsonata", "jmespath"):
            raise ValueError(f"the {lang} expression must be a non-empty string")
    if isinstance(value, int | float | bool) or value is None:
        raise ValueError(f"expected an expression (a JSONata string), got {value!r}; quote "
                         "literals inside the expression, e.g. '\"DE\"' or 'true'")
    raise ValueError("expected an expression: a JSONata string, {jsonata: ...} or {jmespath: ...}")


def _dump_expr(spec: ExprSpec) -> Any:
    return {spec.key: spec.source} if spec.key else spec.source


Expr = Annotated[
    ExprSpec,
    BeforeValidator(parse_expr),
    PlainSerializer(_dump_expr),
    WithJsonSchema({
        # no description on the string branch: an editor shows the innermost description it
        # finds, and the field's own (what this expression decides) is the one to read
        "anyOf": [
            {"type": "string"},
            {"type": "object", "properties": {"jsonata": {
                "type": "string", "description": "A JSONata expression (the default language)."}},
             "required": ["jsonata"], "additionalProperties": False},
            {"type": "object", "properties": {"jmespath": {
                "type": "string", "description": "A JMESPath expression; $headers, $vars and "
                                                "$meta are top-level names."}},
             "required": ["jmespath"], "additionalProperties": False},
        ],
        "description": "An expression over the message: JSONata by default (a bare string or "
                       "{jsonata: ...}), or {jmespath: ...}. $headers, $vars and $meta are bound.",
    }),
]


def _known_encoding(value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown encoding '{value}'; write e.g. utf-8, latin-1 or "
                         "cp1252") from None
    return value


#: a text encoding Python knows (utf-8, latin-1, cp1252, ...), checked when the flow is loaded
Encoding = Annotated[str, AfterValidator(_known_encoding)]
