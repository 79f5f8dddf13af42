"""Trigger models: what starts a run. Exactly one of webhook, poll or manual."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from engine.dsl.base import Duration, Encoding, Expr, Model
from engine.dsl.retry import RetryPolicy


class WebhookRateLimit(Model):
    """Requests a webhook route accepts: a token bucket per trigger (in Redis when set)."""

    per_second: float = Field(gt=0, description="Sustained requests per second.")
    burst: int = Field(1, ge=1, description="Requests allowed at once above the sustained rate.")


class As2Receive(Model):
    """An AS2 endpoint (RFC 4130): messages from one trading partner, answered with an MDN."""

    partner: str = Field(description="Named AS2 connection (connections/NAME.yaml with as2:) "
                                     "of the partner that posts here.")
    encoding: Encoding = Field("utf-8", description="How the payload is decoded into the "
                                                    "body: utf-8, latin-1, cp1252, ...")


class WebhookTrigger(Model):
    """A platform calls us: one HTTP route on `flowrun serve`."""

    path: str = Field(pattern=r"^/[A-Za-z0-9._~/{}-]*$",
                      description="URL path of the route, e.g. /hooks/shopify/orders.")
    methods: list[Literal["POST", "PUT", "PATCH", "GET"]] = Field(
        default_factory=lambda: ["POST"],  # type: ignore[arg-type]
        description="HTTP methods accepted.")
    signature: dict[str, Any] | None = Field(
        None, description="Signature check on the raw body: {scheme: shopify|stripe|github|"
                          "standard-webhooks|hmac, secret: '${secret:NAME}', ...}.")
    idempotency_key: Expr | None = Field(
        None, description="Expression giving the delivery id; a repeated id starts no new run.")
    max_body: int = Field(1024 * 1024, ge=1, description="Largest accepted body in bytes.")
    rate_limit: WebhookRateLimit | None = Field(
        None, description="Requests per second accepted; over it the sender gets 429 with "
                          "Retry-After.")
    respond: Literal["async", "sync"] = Field(
        "async", description="async: 202 once taken in; sync: wait for the run and return it.")
    sync_timeout: Duration = Field(10.0, description="Longest wait in sync mode.")
    as2: As2Receive | None = Field(
        None, description="Receive AS2 messages here: decrypted, their signature checked, "
                          "recorded, then answered with an MDN (the receipt).")

    @model_validator(mode="after")
    def _as2_alone(self) -> WebhookTrigger:
        if self.as2 is None:
            return self
        clashing = [k for k in ("signature", "idempotency_key") if getattr(self, k) is not None]
        if clashing or self.respond != "async" or self.methods != ["POST"]:
            raise ValueError("an as2: endpoint checks its own signatures, is deduplicated on "
                             "the AS2 Message-Id and answers with an MDN: remove "
                             + ", ".join(clashing or ["respond", "methods"]))
        return self

    @field_validator("signature")
    @classmethod
    def _scheme_named(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and not isinstance(value.get("scheme"), str):
            raise ValueError("a signature needs 'scheme:' (shopify, stripe, github, "
                             "standard-webhooks or hmac)")
        return value


class Cursor(Model):
    field: str = Field(description="Record field holding the high-watermark, e.g. updated_at.")
    start: str = Field(description="Cursor value of the very first poll.")
    lookback: Duration = Field(0.0, description="Overlap re-read on every poll to catch late "
                                                "writes.")
    commit: Literal["poll", "page"] = Field(
        "poll", description="When the cursor moves: once the whole poll is taken in (safe in any "
        "record order), or after each page (only when the partner returns records oldest first "
        "by this field; a long poll cut off then resumes where it was).")


class Paginate(Model):
    next_url: Expr | None = Field(None, description="Expression giving the next page's URL.")
    next_token: Expr | None = Field(None, description="Expression giving the next page token.")
    token_param: str | None = Field(None, description="Query parameter carrying the token.")
    link_header: bool = Field(False, description="Follow RFC 8288 Link: <...>; rel=next.")
    page_param: str | None = Field(None, description="Query parameter numbering pages (1, 2, "
                                                     "...; an empty page ends the poll).")
    offset_param: str | None = Field(None, description="Query parameter carrying the number of "
                                                       "records read so far (0, 100, ...).")
    max_pages: int = Field(1000, ge=1, description="Safety bound on pages per poll.")


class HttpSource(Model):
    method: Literal["GET", "POST"] = Field("GET", description="HTTP method of the poll request.")
    url: str = Field(description="URL; may use ${env:...}, ${secret:...}, {{cursor}} (the cursor "
                                 "minus the lookback) and {{slot}} (the scheduled time).")
    connection: str | None = Field(None, description="Named connection for base URL and auth.")
    params: dict[str, str] = Field(default_factory=dict, description="Query parameters.")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")


class FileSource(Model):
    dir: str = Field(description="Local directory or sftp://connection/path to watch.")
    pattern: str = Field("*", description="Glob of the files to take, e.g. '*.edi'.")
    stable_for: Duration = Field(2.0, description="A file is taken once its size held this long.")
    marker_suffix: str | None = Field(None, description="Take a file only once FILE+suffix exists.")
    encoding: Encoding = Field("utf-8", description="How files are decoded: utf-8 (a BOM is "
                               "dropped), latin-1, cp1252, ...")


class PollTrigger(Model):
    """We ask a partner on a schedule, reading incrementally."""

    every: Duration | None = Field(None, description="Interval between polls, e.g. 5m.")
    cron: str | None = Field(None, description="Cron schedule, e.g. '*/5 * * * *'.")
    timezone: str = Field("UTC", description="Time zone of the cron schedule.")
    missed: Literal["skip", "once"] = Field(
        "skip", description="After downtime: skip missed slots, or run once to catch up.")
    http: HttpSource | None = Field(None, description="Poll an HTTP API.")
    files: FileSource | None = Field(None, description="Poll a directory or SFTP drop.")
    items: Expr | None = Field(None, description="Expression selecting the records of one page.")
    cursor: Cursor | None = Field(None, description="High-watermark kept between polls.")
    paginate: Paginate | None = Field(None, description="How to reach the next page.")
    idempotency_key: Expr | None = Field(None, description="Per-record key; seen keys start "
                                                           "no run.")
    retry: RetryPolicy | None = Field(None, description="Retry policy of a failed poll.")

    @model_validator(mode="after")
    def _one_schedule_one_source(self) -> PollTrigger:
        if (self.every is None) == (self.cron is None):
            raise ValueError("a poll trigger needs exactly one of 'every:' or 'cron:'")
        if (self.http is None) == (self.files is None):
            raise ValueError("a poll trigger needs exactly one source: 'http:' or 'files:'")
        return self


class ManualTrigger(Model):
    """Runs started by `flowrun run`, a replay or another flow's hand-off only."""


def _trigger_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        found = [k for k in ("webhook", "poll", "manual") if k in value]
        return found[0] if len(found) == 1 else None
    for name in ("webhook", "poll", "manual"):
        if getattr(value, name, None) is not None:
            return name
    return None


class WebhookSpec(Model):
    webhook: WebhookTrigger = Field(description="A platform calls us: one HTTP route on "
                                                "`flowrun serve` per webhook flow.")


class PollSpec(Model):
    poll: PollTrigger = Field(description="We ask a partner on a schedule (`flowrun "
                                          "scheduler`): an HTTP API or a drop folder.")


class ManualSpec(Model):
    manual: ManualTrigger = Field(default_factory=ManualTrigger,
                                  description="Started only by `flowrun run`, a replay or "
                                              "another flow's hand-off.")


Trigger = Annotated[
    Annotated[WebhookSpec, Tag("webhook")] | Annotated[PollSpec, Tag("poll")]
    | Annotated[ManualSpec, Tag("manual")],
    Discriminator(_trigger_kind),
]
TRIGGER_KINDS = ("webhook", "poll", "manual")
