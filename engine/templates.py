"""String templates and values that may be expressions, for connector configs.

A template is a plain string where ``{{ expression }}`` parts are JSONata evaluated against the
message and ``${env:...}``/``${secret:...}`` are substituted when the step runs, e.g.
``"${env:ERP_URL}/orders/{{ order_id }}/ack"``. A value written as ``{jsonata: ...}`` or
``{jmespath: ...}`` is an expression whose result is used as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from engine.dsl.base import ExprSpec, parse_expr
from engine.envelope import Envelope
from engine.expressions import Compiled
from engine.problems import Path
from engine.refs import interpolate
from engine.types import BuildContext

_PLACEHOLDER = re.compile(r"\{\{(.+?)\}\}", re.S)


def _parse_value(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("jsonata", "jmespath"):
        return parse_expr(value)
    if isinstance(value, str | ExprSpec):
        return value
    if isinstance(value, int | float | bool):
        return str(value).lower() if isinstance(value, bool) else str(value)
    raise ValueError("expected a text (with optional {{ expression }} parts) or "
                     "{jsonata: ...} / {jmespath: ...}")


Value = Annotated[
    str | ExprSpec,
    BeforeValidator(_parse_value),
    PlainSerializer(lambda v: v if isinstance(v, str) else {v.lang: v.source}),
    WithJsonSchema({"anyOf": [
        {"type": "string", "description": "Text; {{ expr }} parts are JSONata, ${env:X} and "
                                          "${secret:X} are substituted."},
        {"type": "number"}, {"type": "boolean"},
        {"type": "object", "properties": {"jsonata": {"type": "string"}},
         "required": ["jsonata"], "additionalProperties": False},
        {"type": "object", "properties": {"jmespath": {"type": "string"}},
         "required": ["jmespath"], "additionalProperties": False},
    ]}),
]

Render = Callable[[Envelope, Callable[[str], str]], Any]


def compile_value(value: str | ExprSpec, ctx: BuildContext, path: Path) -> Render:
    """Compile *value* at load time into ``render(envelope, secrets) -> value``."""
    if isinstance(value, ExprSpec):
        expr = ctx.expr(value, path)
        return lambda envelope, secrets: expr.evaluate(envelope)
    parts: list[str | Compiled] = []
    last = 0
    for match in _PLACEHOLDER.finditer(value):
        parts.append(value[last:match.start()])
        source = match.group(1).strip()
        parts.append(ctx.expr(ExprSpec("jsonata", source), path))
        last = match.end()
    parts.append(value[last:])
    if len(parts) == 1:
        text = value
        if "${" not in text:
            return lambda envelope, secrets: text
        return lambda envelope, secrets: interpolate(text, secrets)

    def render(envelope: Envelope, secrets: Callable[[str], str]) -> str:
        out = []
        for part in parts:
            if isinstance(part, str):
                out.append(interpolate(part, secrets) if "${" in part else part)
            else:
                result = part.evaluate(envelope)
                out.append("" if result is None else _text(result))
        return "".join(out)

    return render


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
