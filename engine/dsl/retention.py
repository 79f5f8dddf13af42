"""How long a flow's records are kept: the ``retention:`` block of a flow, and its duration type.

The same `KeepFor` type reads the process-wide defaults (``FLOWRUN_RETENTION_*``); a flow's
block overrides only the keys it names, like ``retry:``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

from engine.dsl.base import Model, format_duration, parse_duration

FOREVER = "forever"


def parse_keep_for(value: Any) -> float | None:
    """A duration (``14d``, ``36h``, seconds) or ``forever`` (None: never removed)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == FOREVER):
        return None
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f"'{value}' is not a retention; write a duration like '14d', '36h' "
                         "or '90s', or 'forever'") from None


KeepFor = Annotated[
    float | None,
    BeforeValidator(parse_keep_for),
    PlainSerializer(lambda s: FOREVER if s is None else format_duration(s), return_type=str),
    WithJsonSchema({
        "anyOf": [
            {"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"},
            {"type": "number", "minimum": 0},
            {"const": FOREVER},
        ],
        "description": "How long to keep: '14d', '36h', '90s', a number of seconds, or "
                       "'forever'.",
    }),
]


class RetentionSpec(Model):
    """A flow's own retention; keys it leaves out keep the process-wide setting."""

    runs: KeepFor = Field(None, description="How long a finished run (succeeded, filtered, "
                          "dropped, handed off, failed) is kept after it finished; default "
                          "FLOWRUN_RETENTION_RUNS (14d).")
    bodies: KeepFor = Field(None, description="How long a finished run keeps its message "
                            "(body, headers, envelope); after that only its summary stays "
                            "(status, keys, timings, steps). Default FLOWRUN_RETENTION_BODIES "
                            "(forever: bodies go with their run).")
    dead_letters: KeepFor = Field(None, description="How long a dead-letter entry is kept "
                                  "after it was resolved (replayed or discarded); open entries "
                                  "are never removed. Default FLOWRUN_RETENTION_DEAD_LETTERS "
                                  "(30d).")

    def given(self) -> dict[str, float | None]:
        """The keys this flow names (a key set to ``forever`` counts as named)."""
        return {name: getattr(self, name) for name in self.model_fields_set}
