"""String templates and values that may be expressions, for connector configs.

A template is a plain string where ``{{ expression }}`` parts are JSONata evaluated against the
message and ``${env:...}``/``${secret:...}`` are substituted when the step runs, e.g.
``"${env:ERP_URL}/orders/{{ order_id }}/ack"``. A value written as ``{jsonata: ...}`` or
``{jmespath: ...}`` is an expression whose result is used as it is.

A URL template (`compile_url`) encodes what it inserts: a ``{{ }}`` value in the path is one
percent-encoded segment (``/``, ``?``, ``#`` and ``%`` included), so message data can never
climb out of the base path or start a query; anything inserted after the template's own ``?``
(values and ``${secret:…}`` alike) is encoded as a query value, so a ``+`` stays a plus. The
``${env:…}`` before the ``?`` is left as it is: that is where base URLs come from. A URL that is
one ``{{ }}`` and nothing else, or ``{jsonata: ...}``, is a computed whole URL, used as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from engine.dsl.base import ExprSpec, parse_expr
from engine.envelope import Envelope
from engine.expressions import Compiled
from engine.problems import Path
from engine.refs import REF, interpolate
from engine.types import BuildContext, StepError

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
    # the field's description is what an editor shows, so the branches carry none of their own
    WithJsonSchema({"anyOf": [
        {"type": "string"},
        {"type": "number"}, {"type": "boolean"},
        {"type": "object", "properties": {"jsonata": {
            "type": "string", "description": "A JSONata expression computing the value."}},
         "required": ["jsonata"], "additionalProperties": False},
        {"type": "object", "properties": {"jmespath": {
            "type": "string", "description": "A JMESPath expression computing the value."}},
         "required": ["jmespath"], "additionalProperties": False},
    ], "description": "Text; {{ expr }} parts are JSONata, ${env:X} and ${secret:X} are "
                      "substituted; or {jsonata: ...} / {jmespath: ...} for a computed value."}),
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


def compile_url(value: str | ExprSpec, ctx: BuildContext, path: Path) -> Render:
    """Like `compile_value`, for a URL or a connection path: inserted values are encoded (see
    the module docstring) and a rendered URL with a ``.``/``..`` segment is refused."""
    whole = _PLACEHOLDER.fullmatch(value.strip()) if isinstance(value, str) else None
    if isinstance(value, ExprSpec) or whole:
        # a computed URL ({jsonata: ...}, or one "{{ }}" and nothing else: a link taken from an
        # answer) is the whole URL, used as it is; only the dot-segment check applies
        return _checked(compile_value(value, ctx, path))
    pieces: list[tuple[bool, str | Compiled]] = []  # (in the query?, literal or expression)
    in_query, last = False, 0
    for match in [*_PLACEHOLDER.finditer(value), None]:
        literal = value[last:match.start() if match else len(value)]
        if not in_query and ("?" in literal or "#" in literal):
            cut = min(i for i in (literal.find("?"), literal.find("#")) if i >= 0) + 1
            pieces.append((False, literal[:cut]))
            literal, in_query = literal[cut:], True
        pieces.append((in_query, literal))
        if match is not None:
            pieces.append((in_query, ctx.expr(ExprSpec("jsonata", match.group(1).strip()), path)))
            last = match.end()

    def render(envelope: Envelope, secrets: Callable[[str], str]) -> str:
        out = []
        for query, part in pieces:
            if isinstance(part, str):
                out.append(_query_refs(part, secrets) if query else
                           interpolate(part, secrets) if "${" in part else part)
            else:
                result = part.evaluate(envelope)
                out.append(quote("" if result is None else _text(result), safe=""))
        return "".join(out)

    return _checked(render)


def interpolate_url(text: str, secrets: Callable[[str], str]) -> str:
    """*text* with its references substituted, those after its ``?`` encoded as query values."""
    head, mark, query = text.partition("?")
    return interpolate(head, secrets) + mark + _query_refs(query, secrets)


def _query_refs(text: str, secrets: Callable[[str], str]) -> str:
    return REF.sub(lambda m: quote(interpolate(m.group(0), secrets), safe=""), text)


def _checked(render: Render) -> Render:
    def checked(envelope: Envelope, secrets: Callable[[str], str]) -> Any:
        url = render(envelope, secrets)
        segments = urlsplit(str(url)).path.split("/")
        if "." in segments or ".." in segments:
            # requests and servers fold these away: '/orders/../x' would leave the base path
            raise StepError(f"the URL '{url}' has a '.' or '..' segment, which would leave its "
                            "base path; check the values put into it", kind="request_invalid")
        return url

    return checked


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
