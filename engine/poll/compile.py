"""Compile a flow's ``trigger.poll`` when the flow is loaded: schedule, source, retry policy.

Everything that can be wrong with a poll trigger is reported here, at load, with its line and
column: a cron expression croniter refuses, an unknown time zone, pagination styles mixed up,
source options that do not apply. The scheduler receives a `CompiledPoll` and never re-parses.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from engine.dsl.retry import RetryPolicy
from engine.dsl.triggers import PollTrigger
from engine.poll.schedule import Schedule
from engine.poll.source import Source
from engine.problems import Path, did_you_mean
from engine.registry import registry
from engine.types import BuildContext


@dataclass
class CompiledPoll:
    trigger: PollTrigger
    schedule: Schedule
    source: Source
    retry: RetryPolicy


def compile_poll(trigger: PollTrigger, ctx: BuildContext,
                 path: Path = ("trigger", "poll")) -> CompiledPoll | None:
    """The compiled poll, or None after reporting its problems through *ctx*."""
    ok = True
    try:
        ZoneInfo(trigger.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        ok = False
        ctx.problem((*path, "timezone"), f"unknown time zone '{trigger.timezone}'"
                    + (did_you_mean(trigger.timezone, available_timezones())
                       or "; write an IANA name such as 'Europe/Berlin' or 'UTC'"))
    if trigger.cron is not None:
        try:
            Schedule(cron=trigger.cron)
        except ValueError as exc:
            ok = False
            ctx.problem((*path, "cron"), f"'{trigger.cron}' is not a cron schedule ({exc}); "
                        "write five fields: minute hour day-of-month month day-of-week, e.g. "
                        "'*/5 * * * *'")
    elif trigger.timezone != "UTC":
        ctx.problem((*path, "timezone"), "timezone applies to cron: schedules only; every: "
                    "intervals are counted from the epoch", severity="warning")
    # the source kinds are the registered ones (entry-point group flowrunner.poll_sources)
    source = registry().poll_sources[trigger.source].build(trigger, ctx, path)
    if trigger.every is not None and trigger.every <= 0:
        ok = False
        ctx.problem((*path, "every"), "every: must be longer than zero, e.g. '30s' or '5m'")
    if not ok:
        return None
    return CompiledPoll(trigger=trigger,
                        schedule=Schedule(every=trigger.every, cron=trigger.cron,
                                          timezone=trigger.timezone),
                        source=source, retry=trigger.retry or RetryPolicy())
