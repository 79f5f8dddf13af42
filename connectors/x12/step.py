"""The ``x12`` step: EDI X12 interchanges to JSON analysts can map, and back.

``x12: {parse: {}}`` turns the body (one interchange or several, text or bytes in ``encoding``)
into the structure documented in the README, widened by ``allow_segments`` and ``unwrap``;
``x12: {render: {}}`` writes such a structure back byte for byte; ``x12: {build: {...}}`` builds
an outbound interchange from typed views with fresh control numbers; ``x12: {ack: {}}``
makes the 997 functional acknowledgment for a parsed interchange; ``x12: {correlate: {sent: ...}}``
reads a parsed 997 back into accepted/rejected statuses matched to the interchanges we sent.
Malformed EDI fails the step with the segment number and element, and is not retried.
"""

from __future__ import annotations

import codecs
import functools
import os
import re
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from connectors.x12 import (
    ControlNumbers,
    RedisControlNumbers,
    SqliteControlNumbers,
    X12Error,
    build_interchange,
    correlate_997,
    generate_997,
    parse,
    render,
)
from connectors.x12.envelope import SEGMENT_ID
from engine.dsl.base import Encoding, Expr, Model
from engine.envelope import Envelope
from engine.home import private_file
from engine.types import BuildContext, Outcome, Resources, StepError, StepFn, StepKind, result

_SET_ID = re.compile(r"\d{3}")


class ParseOptions(Model):
    strict: bool = Field(True, description="Fail on the first error; false collects errors "
                                           "(for a 997 that rejects) instead.")
    allow_segments: list[str] | dict[str, list[str]] = Field(
        default_factory=list,
        description="Segments a partner sends beyond the standard's list for the set: "
                    "[MTX, ...] for every set, or per set {'850': [MTX], ...}.")
    unwrap: bool = Field(False, description="Join lines a VAN wrapped at a fixed width "
                                            "(80 columns) or an ISA broken over two lines.")
    encoding: Encoding = Field("utf-8", description="How text given as bytes is decoded: utf-8, "
                                               "latin-1, cp1252, ...")
    check_elements: bool = Field(True, description="Check every element of the typed sets "
                                 "against the standard's dictionary (mandatory, type, length); "
                                 "false for a partner whose guideline departs from it.")

    @field_validator("allow_segments")
    @classmethod
    def _segment_ids(cls, value: list[str] | dict[str, list[str]]) -> Any:
        by_set = value if isinstance(value, dict) else {"*": value}
        for set_id, ids in by_set.items():
            if set_id != "*" and not _SET_ID.fullmatch(set_id):
                raise ValueError(f"'{set_id}' is not a transaction set id; write three digits "
                                 "such as '850' (quoted, so YAML keeps it text)")
            for seg_id in ids:
                if not isinstance(seg_id, str) or not SEGMENT_ID.fullmatch(seg_id):
                    raise ValueError(f"'{seg_id}' is not a segment id; write 2 or 3 capital "
                                     "letters or digits starting with a letter, e.g. MTX")
        return value

    def extra_segments(self) -> dict[str, list[str]]:
        if isinstance(self.allow_segments, dict):
            return self.allow_segments
        return {"*": self.allow_segments} if self.allow_segments else {}


class RenderOptions(Model):
    recount: bool = Field(False, description="Recompute SE/GE/IEA counts after edits.")


class BuildOptions(Model):
    sender: str = Field(description="Our interchange id, e.g. 'ZZ:DISTRIBUTOR'.")
    receiver: str = Field(description="The partner's interchange id, e.g. 'ZZ:SUPPLIER1'.")
    usage_indicator: str = Field("P", pattern="^[PT]$", description="P production, T test.")


class AckOptions(Model):
    include_accepted: bool = Field(True, description="Acknowledge accepted sets too.")


class CorrelateOptions(Model):
    sent: Expr | None = Field(None, description="Expression giving the parsed interchange(s) we "
                                                "sent; adds `matched` and the sets the 997 left "
                                                "unlisted.")


class X12Step(Model):
    model_config = ConfigDict(json_schema_extra={"examples": [{"parse": {"strict": True}}]})
    parse: ParseOptions | None = Field(None, description="Interchange text → JSON.")
    render: RenderOptions | None = Field(None, description="Parsed JSON → interchange text.")
    build: BuildOptions | None = Field(None, description="Typed views → a new interchange.")
    ack: AckOptions | None = Field(None, description="Parsed interchange → its 997.")
    correlate: CorrelateOptions | None = Field(
        None, description="Parsed 997 → per group: status, accepted, sets, matched.")
    value: Expr | None = Field(None, description="Input; the body if omitted.")

    @model_validator(mode="after")
    def _one(self) -> X12Step:
        chosen = [n for n in ("parse", "render", "build", "ack", "correlate")
                  if getattr(self, n) is not None]
        if len(chosen) != 1:
            raise ValueError("give exactly one of parse, render, build, ack or correlate")
        return self


def _control_numbers(resources: Resources) -> ControlNumbers:
    """The deployment's control numbers: in Redis when the app keeps its state there (every
    worker on every machine draws from one sequence), else a SQLite file under the app's home
    (``FLOWRUN_HOME`` when a step runs outside an app)."""
    client = resources.services.get("redis")
    if client is not None:
        return _redis_numbers(client)
    home = Path(resources.services.get("home") or os.environ.get("FLOWRUN_HOME", ".flowrun"))
    return _sqlite_numbers(str(home.resolve() / "x12-control-numbers.db"))


@functools.lru_cache(maxsize=16)
def _sqlite_numbers(path: str) -> SqliteControlNumbers:
    private_file(Path(path))  # 0600 in a 0700 folder, like the state database beside it
    return SqliteControlNumbers(path)  # one connection per file for the process, not per step


@functools.lru_cache(maxsize=16)
def _redis_numbers(client: Any) -> RedisControlNumbers:
    return RedisControlNumbers(client)


def _text(data: Any, encoding: str) -> str:
    """The interchange as text; bytes (a file read as it is) decoded with ``encoding``."""
    if isinstance(data, bytes | bytearray):
        raw = bytes(data)
        if raw.startswith(codecs.BOM_UTF8):
            raw, encoding = raw[3:], "utf-8"
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise StepError(f"EDI X12: byte 0x{raw[exc.start]:02X} at offset {exc.start} is not "
                            f"{encoding}; set encoding: latin-1 (or cp1252) on the x12 step "
                            "for a partner that sends that", kind="invalid_input") from None
    if not isinstance(data, str):
        raise StepError("expected interchange text to parse", kind="invalid_input")
    return data


def _parsed(data: Any) -> bool:
    """A parsed interchange, or a parsed file of several."""
    return isinstance(data, dict) and ("groups" in data or "interchanges" in data)


def _correlate_input(data: Any, sent: Any, envelope: Envelope) -> tuple[Any, Any]:
    """The parsed 997 and the parsed interchanges we sent (one or a list), checked."""
    ours = sent.evaluate(envelope) if sent else None
    ours = [ours] if isinstance(ours, dict) else ours
    if not _parsed(data):
        raise StepError("correlate expects a parsed 997: parse it first with x12: {parse: {}}",
                        kind="invalid_input")
    if ours is not None and not (isinstance(ours, list) and all(_parsed(d) for d in ours)):
        raise StepError("correlate: sent must give the parsed interchange(s) we sent",
                        kind="invalid_input")
    return data, ours


def build(config: X12Step, ctx: BuildContext) -> StepFn:
    value = ctx.expr(config.value, ("value",)) if config.value else None
    sent = (ctx.expr(config.correlate.sent, ("correlate", "sent"))
            if config.correlate is not None and config.correlate.sent is not None else None)

    def x12(envelope: Envelope, resources: Resources) -> Outcome:
        data: Any = value.evaluate(envelope) if value else envelope.body
        try:
            if config.parse is not None:
                options = config.parse
                return result(parse(_text(data, options.encoding), strict=options.strict,
                                    extra_segments=options.extra_segments(),
                                    unwrap=options.unwrap,
                                    check_elements=options.check_elements))
            if config.render is not None:
                return result(render(data, recount=config.render.recount))
            if config.build is not None:
                transactions = data if isinstance(data, list) else [data]
                return result(build_interchange(
                    transactions, sender=config.build.sender, receiver=config.build.receiver,
                    control_numbers=_control_numbers(resources),
                    usage_indicator=config.build.usage_indicator))
            if config.correlate is not None:
                return result(correlate_997(*_correlate_input(data, sent, envelope)))
            assert config.ack is not None
            return result(generate_997(data, _control_numbers(resources),
                                       include_accepted=config.ack.include_accepted))
        except X12Error as exc:
            raise StepError(f"EDI X12: {exc}", kind="invalid_input",
                            detail={"interchange": exc.interchange, "segment": exc.segment_index,
                                    "segment_id": exc.segment_id,
                                    "element": exc.element_index}) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise StepError(f"EDI X12: the input does not have the expected shape: {exc}",
                            kind="invalid_input") from None

    return x12


STEP = StepKind(name="x12", config=X12Step, build=build,
                description="EDI X12 (850, 855, 856, 810, 846, 860, 940, 945, 997): parse to "
                            "JSON, render back, build outbound interchanges, make the 997 for "
                            "a received one, "
                            "or correlate a received 997 with what was sent.")
