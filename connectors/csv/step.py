"""The ``csv`` and ``fixed_width`` steps: flat files to records and back.

``csv: {parse: {...}}`` turns the body (text) into a list of records; ``csv: {render: {...}}``
turns a list of records into text. Every error of a file is reported at once, with row and
column, and the message is dead-lettered with them (not retried: the file will not change).
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, model_validator

from connectors.csv.config import CsvParseConfig, CsvRenderConfig, FixedWidthConfig
from connectors.csv.errors import FlatFileError
from engine.dsl.base import Expr, Model
from engine.envelope import Envelope
from engine.types import BuildContext, Outcome, Resources, StepError, StepFn, StepKind, result


class _OneAction(Model):
    value: Expr | None = Field(None, description="What to parse or render; the body if omitted.")

    @model_validator(mode="after")
    def _one(self) -> _OneAction:
        chosen = [name for name in ("parse", "render") if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError("give exactly one of 'parse:' or 'render:'")
        return self


class CsvStep(_OneAction):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"parse": {"delimiter": "semicolon", "header": True}}]})
    parse: CsvParseConfig | None = Field(None, description="Parse delimited text to records.")
    render: CsvRenderConfig | None = Field(None, description="Render records as delimited text.")


class FixedWidthStep(_OneAction):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"parse": {"fields": [{"name": "sku", "start": 1, "length": 10},
                              {"name": "qty", "start": 11, "length": 5, "type": "integer"}]}}]})
    parse: FixedWidthConfig | None = Field(None, description="Parse fixed-width records.")
    render: FixedWidthConfig | None = Field(None, description="Render fixed-width records.")


def _errors(exc: FlatFileError) -> list[dict[str, Any]]:
    found = getattr(exc, "errors", None) or [exc]
    return [{"row": e.row, "column": e.column, "message": str(e)} for e in found]


def build(config: CsvStep | FixedWidthStep, ctx: BuildContext) -> StepFn:
    value = ctx.expr(config.value, ("value",)) if config.value else None

    def flat_file(envelope: Envelope, resources: Resources) -> Outcome:
        data = value.evaluate(envelope) if value else envelope.body
        try:
            if config.parse is not None:
                if not isinstance(data, str | bytes):
                    raise StepError(f"expected text to parse, got {type(data).__name__}",
                                    kind="invalid_input")
                return result(config.parse.parse(data))
            assert config.render is not None
            if not isinstance(data, list):
                raise StepError(f"expected a list of records to render, got "
                                f"{type(data).__name__}", kind="invalid_input")
            return result(config.render.render(data))
        except FlatFileError as exc:
            found = _errors(exc)
            listing = "; ".join(e["message"] for e in found[:10])
            raise StepError(f"{len(found)} flat-file error(s): {listing}", kind="invalid_input",
                            detail={"errors": found}) from None

    return flat_file


STEP = StepKind(name="csv", config=CsvStep, build=build,
                description="Parse delimited text into records or render records as text "
                            "(dialect, header or declared typed columns, encoding).")
FIXED_WIDTH = StepKind(name="fixed_width", config=FixedWidthStep, build=build,
                       description="Parse or render fixed-width partner files, with record "
                                   "types for header, detail and trailer lines.")
