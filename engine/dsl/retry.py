"""The retry policy and failure handling: declared once, used by every step and trigger.

A flow sets them in ``defaults``; a step overrides only the keys it names, so
``retry: {max_attempts: 10}`` keeps the flow's back-off.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from engine.dsl.base import Duration, Model

_STATUS_CLASS = re.compile(r"^[1-5]xx$")


def _status(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    if isinstance(value, str):
        if value.isdigit() and 100 <= int(value) <= 599:
            return int(value)
        if _STATUS_CLASS.match(value.lower()):
            return value.lower()
    raise ValueError(f"'{value}' is not an HTTP status; write a code like 503 or a class "
                     "like '5xx'")


HttpStatus = Annotated[int | str, BeforeValidator(_status)]
#: ``io``: a file or SFTP read/write failed (disk full, remote I/O error) — not retried unless
#: listed, since a full disk rarely clears within a back-off
ErrorKind = Literal["timeout", "connection", "dns", "tls", "http", "invalid_response",
                    "rate_limited", "io"]


def status_matches(status: int, patterns: list[int | str]) -> bool:
    for pattern in patterns:
        if isinstance(pattern, int) and pattern == status:
            return True
        if isinstance(pattern, str) and str(status)[0] == pattern[0]:
            return True
    return False


class Backoff(Model):
    """How long to wait between attempts: initial × multiplier^(attempt-1), capped, with jitter."""

    initial: Duration = Field(1.0, description="Delay before the second attempt.")
    multiplier: float = Field(2.0, ge=1.0, le=10.0, description="Growth factor per attempt.")
    max: Duration = Field(300.0, description="Longest delay between two attempts.")
    jitter: Literal["full", "equal", "none"] = Field(
        "full", description="Randomisation: full (0..delay), equal (delay/2..delay) or none.")


class RetryOn(Model):
    """Which failures are worth another attempt."""

    http_status: list[HttpStatus] = Field(
        default_factory=lambda: [408, 429, "5xx"],  # type: ignore[arg-type]
        description="Response statuses that are retried: codes (429) or classes ('5xx').")
    errors: list[ErrorKind] = Field(
        default_factory=lambda: ["timeout", "connection", "dns"],  # type: ignore[arg-type]
        description="Error kinds that are retried: timeout, connection, dns, tls, ...")


class RetryPolicy(Model):
    """Attempts, back-off and which failures to retry; unknown keys are errors."""

    max_attempts: int = Field(3, ge=1, le=100, description="Attempts in all, the first included.")
    max_elapsed: Duration | None = Field(
        None, description="Give up when the next attempt would start later than this after the "
                          "first one.")
    backoff: Backoff = Field(default_factory=Backoff, description="Delay between attempts.")
    retry_on: RetryOn = Field(default_factory=RetryOn, description="Failures that are retried.")
    give_up_on: list[HttpStatus] = Field(
        default_factory=lambda: [400, 401, 403, 404, 409, 422],  # type: ignore[arg-type]
        description="Statuses never retried, whatever retry_on says.")
    respect_retry_after: bool = Field(
        True, description="Wait at least as long as a Retry-After response header asks.")

    def merged(self, override: RetryPolicy | None) -> RetryPolicy:
        """This policy with the keys *override* names replaced (nested blocks merged too)."""
        if override is None:
            return self
        # copy validated values instead of dumping and re-validating: the round trip through
        # the serialised form rounded short durations and could not read long ones back
        update: dict[str, Any] = {}
        for name in override.model_fields_set:
            value = getattr(override, name)
            if isinstance(value, Model):
                base = getattr(self, name)
                changed = {k: getattr(value, k) for k in value.model_fields_set}
                value = base.model_copy(update=changed)
            update[name] = value
        return self.model_copy(update=update)


class GotoOnFailure(Model):
    goto: str = Field(description="Step that handles the failure; $vars.error holds the reason.")


class FlowOnFailure(Model):
    flow: str = Field(description="Flow that receives the failed message with the failure reason.")


def _on_failure(value: Any) -> Any:
    if value in ("dead_letter", "drop") or isinstance(value, GotoOnFailure | FlowOnFailure):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (key, target), = value.items()
        if key in ("goto", "flow") and isinstance(target, str) and target:
            return GotoOnFailure(goto=target) if key == "goto" else FlowOnFailure(flow=target)
    raise ValueError(f"{value!r} is not a failure handling; write dead_letter, drop, "
                     "{goto: step_id} or {flow: flow_id}")


#: described where it is used (defaults, a step): an editor shows every description it meets
OnFailure = Annotated[
    Literal["dead_letter", "drop"] | GotoOnFailure | FlowOnFailure,
    BeforeValidator(_on_failure),
]


class Defaults(Model):
    """Flow-wide defaults that steps may override."""

    retry: RetryPolicy = Field(default_factory=RetryPolicy,
                               description="Retry policy of every step.")
    on_failure: OnFailure = Field(
        "dead_letter", description="What happens when a step fails for good: dead_letter "
                                   "(default), drop, {goto: step} or {flow: other-flow}; a "
                                   "step's own on_failure overrides it.")
    timeout: Duration = Field(30.0, description="Default timeout of a step's outbound call.")
