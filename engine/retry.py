"""Retry decisions: given a policy, a failure and the attempts so far, when to try again (or not).

Pure functions of their inputs (the random source is a parameter), so tests can check jitter
bounds and the executor can schedule the next attempt for its due time instead of sleeping.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from engine.dsl.retry import RetryPolicy, status_matches
from engine.types import StepError


def base_delay(policy: RetryPolicy, attempt: int) -> float:
    """Delay after failed attempt number *attempt* (1-based), before jitter."""
    backoff = policy.backoff
    return float(min(backoff.max, backoff.initial * backoff.multiplier ** (attempt - 1)))


def jittered(policy: RetryPolicy, delay: float, rand: Callable[[], float] = random.random) -> float:
    if policy.backoff.jitter == "full":
        return delay * rand()
    if policy.backoff.jitter == "equal":
        return delay / 2 + (delay / 2) * rand()
    return delay


def is_retryable(policy: RetryPolicy, error: StepError) -> bool:
    if not error.retryable:
        return False
    if error.status is not None:
        if status_matches(error.status, policy.give_up_on):
            return False
        return status_matches(error.status, policy.retry_on.http_status)
    return error.kind in policy.retry_on.errors


def next_delay(policy: RetryPolicy, error: StepError, attempt: int, elapsed: float,
               rand: Callable[[], float] = random.random) -> float | None:
    """Seconds until the next attempt, or None to give up.

    *attempt* is the number of the attempt that just failed; *elapsed* the seconds since the
    first attempt of this step started.
    """
    if attempt >= policy.max_attempts or not is_retryable(policy, error):
        return None
    delay = jittered(policy, base_delay(policy, attempt), rand)
    if policy.respect_retry_after and error.retry_after is not None:
        delay = max(delay, error.retry_after)
    if policy.max_elapsed is not None and elapsed + delay > policy.max_elapsed:
        return None
    return delay


def give_up_reason(policy: RetryPolicy, error: StepError, attempt: int) -> str:
    if not is_retryable(policy, error):
        return "not retryable"
    if attempt >= policy.max_attempts:
        return f"gave up after {attempt} attempt(s)"
    return "retry window (max_elapsed) exhausted"


#: the classes of failure that logs and metrics name (a fixed set: a label, never free text)
REASON_KINDS = ("http_status", "timeout", "connection", "invalid_response", "rate_limited",
                "validation", "expression", "config", "auth", "io", "rejected", "route",
                "subscription", "poison", "unrecordable", "flow_missing", "internal", "other")
#: error kinds of steps and records that fall in a broader class
_KIND_CLASS = {"http": "http_status", "dns": "connection", "tls": "connection",
               "host_key": "connection", "invalid_input": "validation",
               "request_invalid": "validation",
               "undecodable": "validation", "permission": "io", "not_found": "io",
               "exists": "io", "too_deep": "unrecordable", "too_large": "unrecordable",
               "loop": "internal"}


def reason_kind(kind: str | None, status: int | None = None) -> str:
    """The class of a failure (`REASON_KINDS`) from its recorded kind and HTTP status: any
    failure with a status is ``http_status``; an unknown kind is ``other``."""
    if status is not None:
        return "http_status"
    kind = _KIND_CLASS.get(kind or "", kind or "other")
    return kind if kind in REASON_KINDS else "other"
