"""Retry decisions as pure functions: back-off, jitter bounds, Retry-After, give-up rules, and
how a step's ``retry:`` merges with the flow's ``defaults.retry``."""

from __future__ import annotations

import random

import pytest

from engine.dsl.base import format_duration, parse_duration
from engine.dsl.retry import RetryPolicy
from engine.loader import Loader
from engine.retry import base_delay, give_up_reason, is_retryable, jittered, next_delay
from engine.types import StepError


def policy(**data: object) -> RetryPolicy:
    return RetryPolicy.model_validate(data)


def http(status: int, retry_after: float | None = None) -> StepError:
    return StepError(f"HTTP {status}", kind="http", retryable=True, status=status,
                     retry_after=retry_after)


def err(kind: str, retryable: bool = True) -> StepError:
    return StepError(kind, kind=kind, retryable=retryable)


FLOW_POLICY = policy(max_attempts=6, backoff={"initial": "2s", "multiplier": 2, "max": "10m",
                                              "jitter": "full"},
                     retry_on={"http_status": [429, "5xx"], "errors": ["timeout", "connection"]})


# -- back-off and jitter ---------------------------------------------------------------------

def test_base_delay_grows_geometrically_and_is_capped() -> None:
    assert [base_delay(FLOW_POLICY, n) for n in range(1, 11)] == [
        2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 600.0]
    assert base_delay(FLOW_POLICY, 60) == 600.0


@pytest.mark.parametrize(("jitter", "low", "high"), [("full", 0.0, 1.0), ("equal", 0.5, 1.0),
                                                      ("none", 1.0, 1.0)])
def test_jitter_stays_within_its_bounds(jitter: str, low: float, high: float) -> None:
    p = policy(backoff={"jitter": jitter})
    source = random.Random(7)
    for delay in (0.5, 3.0, 300.0):
        values = [jittered(p, delay, source.random) for _ in range(500)]
        assert all(low * delay <= v <= high * delay for v in values)
        if jitter != "none":
            assert max(values) - min(values) > 0.4 * delay * (high - low)  # really random


@pytest.mark.parametrize(("jitter", "at_zero", "at_one"), [("full", 0.0, 40.0),
                                                           ("equal", 20.0, 40.0),
                                                           ("none", 40.0, 40.0)])
def test_jitter_ends_with_a_controlled_source(jitter: str, at_zero: float, at_one: float) -> None:
    p = policy(backoff={"jitter": jitter})
    assert jittered(p, 40.0, lambda: 0.0) == at_zero
    assert jittered(p, 40.0, lambda: 1.0) == at_one
    assert jittered(p, 40.0, lambda: 0.5) == {"full": 20.0, "equal": 30.0, "none": 40.0}[jitter]


def test_next_delay_uses_the_attempt_number_and_the_random_source() -> None:
    assert next_delay(FLOW_POLICY, http(503), 1, 0.0, lambda: 0.5) == 1.0
    assert next_delay(FLOW_POLICY, http(503), 3, 0.0, lambda: 0.5) == 4.0
    assert next_delay(FLOW_POLICY, http(503), 5, 0.0, lambda: 1.0) == 32.0


# -- what is retried -------------------------------------------------------------------------

def test_statuses_and_classes_in_retry_on() -> None:
    assert is_retryable(FLOW_POLICY, http(429))
    assert is_retryable(FLOW_POLICY, http(500))
    assert is_retryable(FLOW_POLICY, http(503))
    assert not is_retryable(FLOW_POLICY, http(408))  # not named by this policy
    assert not is_retryable(FLOW_POLICY, http(302))


def test_give_up_on_wins_over_retry_on() -> None:
    p = policy(retry_on={"http_status": ["4xx", 503]}, give_up_on=[404, 409])
    assert is_retryable(p, http(400))
    assert is_retryable(p, http(429))
    assert not is_retryable(p, http(404))
    assert not is_retryable(p, http(409))
    assert next_delay(p, http(404), 1, 0.0, lambda: 1.0) is None
    assert give_up_reason(p, http(404), 1) == "not retryable"


def test_error_kinds_and_non_retryable_errors() -> None:
    assert is_retryable(FLOW_POLICY, err("timeout"))
    assert is_retryable(FLOW_POLICY, err("connection"))
    assert not is_retryable(FLOW_POLICY, err("dns"))  # the flow narrowed the default list
    assert not is_retryable(FLOW_POLICY, err("timeout", retryable=False))
    assert not is_retryable(FLOW_POLICY, StepError("bad", kind="validation"))
    assert is_retryable(RetryPolicy(), err("dns"))  # the default list has it


def test_file_and_sftp_io_failures_are_retried_only_when_listed() -> None:
    assert not is_retryable(RetryPolicy(), err("io"))
    listed = RetryPolicy.model_validate({"retry_on": {"errors": ["timeout", "io"]}})
    assert is_retryable(listed, err("io"))


def test_attempts_are_counted_with_the_first_included() -> None:
    p = policy(max_attempts=3, backoff={"jitter": "none", "initial": "1s"})
    assert next_delay(p, err("timeout"), 1, 0.0) == 1.0
    assert next_delay(p, err("timeout"), 2, 1.0) == 2.0
    assert next_delay(p, err("timeout"), 3, 3.0) is None
    assert give_up_reason(p, err("timeout"), 3) == "gave up after 3 attempt(s)"
    assert next_delay(policy(max_attempts=1), err("timeout"), 1, 0.0) is None


# -- Retry-After and max_elapsed -------------------------------------------------------------

def test_retry_after_is_a_lower_bound() -> None:
    p = policy(backoff={"jitter": "none", "initial": "2s"})
    assert next_delay(p, http(429, retry_after=30.0), 1, 0.0) == 30.0
    assert next_delay(p, http(429, retry_after=0.5), 1, 0.0) == 2.0
    ignoring = policy(backoff={"jitter": "none", "initial": "2s"}, respect_retry_after=False)
    assert next_delay(ignoring, http(429, retry_after=30.0), 1, 0.0) == 2.0


def test_max_elapsed_stops_when_the_next_attempt_would_start_too_late() -> None:
    p = policy(max_attempts=50, max_elapsed="1m", backoff={"jitter": "none", "initial": "10s",
                                                           "multiplier": 1})
    assert next_delay(p, err("timeout"), 1, 0.0) == 10.0
    assert next_delay(p, err("timeout"), 5, 50.0) == 10.0  # starts at exactly 60 s: allowed
    assert next_delay(p, err("timeout"), 6, 51.0) is None
    assert give_up_reason(p, err("timeout"), 6) == "retry window (max_elapsed) exhausted"
    # a Retry-After beyond the window gives up too, instead of waiting past it
    assert next_delay(p, http(503, retry_after=120.0), 1, 0.0) is None


# -- merging a step's retry with the flow's --------------------------------------------------

def test_step_override_keeps_the_flows_back_off() -> None:
    merged = FLOW_POLICY.merged(policy(max_attempts=10))
    assert merged.max_attempts == 10
    assert merged.backoff == FLOW_POLICY.backoff
    assert merged.retry_on == FLOW_POLICY.retry_on
    assert merged.give_up_on == FLOW_POLICY.give_up_on


def test_nested_override_replaces_only_the_keys_it_names() -> None:
    merged = FLOW_POLICY.merged(policy(backoff={"initial": "5s"}, retry_on={"errors": ["dns"]}))
    assert merged.max_attempts == 6
    assert (merged.backoff.initial, merged.backoff.multiplier, merged.backoff.max,
            merged.backoff.jitter) == (5.0, 2.0, 600.0, "full")
    assert merged.retry_on.errors == ["dns"]
    assert merged.retry_on.http_status == [429, "5xx"]


def test_merge_without_override_is_the_flow_policy() -> None:
    assert FLOW_POLICY.merged(None) is FLOW_POLICY


@pytest.mark.parametrize("text", ["30d", "1.5ms", "250ms", "0.4ms", "1h30m", "12345678s"])
def test_merge_keeps_every_duration_exactly(text: str) -> None:
    """The merge once went through the serialised form: '30d' became '2.592e+06s' (unreadable,
    so loading the flow raised) and '1.5ms' became '2ms'."""
    flow = policy(max_elapsed=text, backoff={"initial": text})
    merged = flow.merged(policy(max_attempts=4))
    assert merged.max_elapsed == parse_duration(text)
    assert merged.backoff.initial == parse_duration(text)


@pytest.mark.parametrize("seconds", [0.0, 0.0004, 0.0015, 0.25, 1.0, 1.5, 90.125, 600.0,
                                     2_592_000.0, 1e9])
def test_durations_format_to_text_that_reads_back(seconds: float) -> None:
    text = format_duration(seconds)
    assert "e" not in text
    assert parse_duration(text) == pytest.approx(seconds, abs=1e-6)


def test_loader_merges_step_retry_with_defaults(loader: Loader) -> None:
    flow, problems = loader.load_file("<input>", raw=b"""
flow: merges
defaults:
  retry:
    max_attempts: 6
    max_elapsed: 30d
    backoff: {initial: 2s, multiplier: 3, max: 10m, jitter: equal}
steps:
  - id: plain
    set: {x: '1'}
  - id: patient
    set: {x: '2'}
    retry: {max_attempts: 10}
""")
    assert problems == [] and flow is not None
    plain, patient = flow.steps
    assert plain.retry.max_attempts == 6
    assert patient.retry.max_attempts == 10
    assert patient.retry.backoff == plain.retry.backoff
    assert patient.retry.backoff.multiplier == 3.0 and patient.retry.backoff.jitter == "equal"
    assert patient.retry.max_elapsed == 30 * 86400.0
