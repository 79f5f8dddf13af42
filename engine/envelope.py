"""The message every run carries: body, headers, vars and meta, JSON-serialisable end to end."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Envelope:
    """One message on its way through a flow.

    ``body`` is what expressions see as their input; ``headers`` are the trigger's headers (webhook)
    or record metadata (poll); ``vars`` holds values steps stored for later steps; ``meta`` holds
    the run id, flow id and version, correlation id, trigger, received-at and attempt.
    """

    body: Any = None
    headers: dict[str, Any] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"body": self.body, "headers": self.headers, "vars": self.vars, "meta": self.meta}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Envelope:
        return cls(
            body=data.get("body"),
            headers=dict(data.get("headers") or {}),
            vars=dict(data.get("vars") or {}),
            meta=dict(data.get("meta") or {}),
        )

    def copy(self) -> Envelope:
        """A deep copy, so a fork or a checkpoint never shares mutable parts with the original."""
        return Envelope.from_dict(copy.deepcopy(self.to_dict()))
