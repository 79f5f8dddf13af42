"""What "on time" means for a flow: the ``sla:`` block — a deadline from receipt to success, rules
that give some runs a deadline of their own, and the flow that hears of each breach.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, model_validator

from engine.dsl.base import Duration, Expr, Model


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("a deadline must be longer than 0s; write e.g. '15m' or '4h'")
    return seconds


#: a deadline: a duration longer than zero
Within = Annotated[Duration, AfterValidator(_positive)]


class SlaRule(Model):
    """A deadline for the runs it matches; the first rule that matches a run wins."""

    key: str | None = Field(None, min_length=1, description="Glob on the run's business key "
                            "(`key:` of the flow), e.g. 'B2B-*'; * and ? match any text and any "
                            "one character, case matters.")
    when: Expr | None = Field(None, description="An expression on the message as received; the "
                              "rule matches when it is true, e.g. "
                              "'$headers.\"x-partner\" = \"acme\"' or 'body.priority = \"high\"'.")
    within: Within = Field(description="The deadline of the runs this rule matches, from "
                           "receipt to success: '1h', '4h', '30m'.")

    @model_validator(mode="after")
    def _matches_something(self) -> SlaRule:
        if self.key is None and self.when is None:
            raise ValueError("a rule needs key: (a glob on the business key) or when: (an "
                             "expression); without either it would match every run")
        return self


class SlaAlert(Model):
    """Who hears of a breach: a hand-off of the late run's summary to a flow, once per breach."""

    @model_validator(mode="before")
    @classmethod
    def _a_flow_calls(cls, data: Any) -> Any:
        if isinstance(data, dict) and "call" in data:
            raise ValueError("an alert is a hand-off to a flow: write alert: {flow: NAME} and "
                             "call the pager from that flow's steps, where the call is retried "
                             "and dead-lettered like any other")
        return data

    flow: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", description="Flow that receives the "
                      "summary of each late run (body `sla`: run_id, flow, key, deadline, "
                      "late_by_s, status); its steps call the pager or ticket system, with "
                      "their retries and dead-letter queue.")


class SlaSpec(Model):
    """The flow's service level: each run must succeed within its deadline, counted from the
    moment it was received. A run still open (waiting, retrying, dead-lettered) past its
    deadline, or one that succeeded after it, is late: counted, marked and announced once."""

    within: Within = Field(description="Deadline of every run no rule matches, from receipt "
                           "to success: '15m', '2h', '90s'.")
    rules: list[SlaRule] = Field(default_factory=list, description="Deadlines of their own for "
                                 "some runs (by business key or by an expression); the first "
                                 "that matches wins.")
    alert: SlaAlert | None = Field(None, description="Announce each breach once, by handing the "
                                   "late run's summary to a flow.")
