"""Trigger models: what starts a run. Exactly one of webhook, poll, event, consume or
manual."""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, create_model, field_validator, model_validator

from engine.dsl.base import Duration, Encoding, Expr, Model
from engine.dsl.retry import RetryPolicy
from engine.registry import registry


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


class FileSource(Model):
    dir: str = Field(description="Local directory or sftp://connection/path to watch.")
    pattern: str = Field("*", description="Glob of the files to take, e.g. '*.edi'.")
    stable_for: Duration = Field(2.0, description="A file is taken once its size held this long.")
    marker_suffix: str | None = Field(None, description="Take a file only once FILE+suffix exists.")
    encoding: Encoding = Field("utf-8", description="How files are decoded: utf-8 (a BOM is "
                               "dropped), latin-1, cp1252, ...")


class PollTrigger(Model):
    """We ask a partner on a schedule, reading incrementally."""

    # the source keys (http:, files:...) are those of the poll sources registered in this
    # process (engine.types.PollSourceKind); poll_trigger() adds them to this base model

    every: Duration | None = Field(None, description="Interval between polls, e.g. 5m.")
    cron: str | None = Field(None, description="Cron schedule, e.g. '*/5 * * * *'.")
    timezone: str = Field("UTC", description="Time zone of the cron schedule.")
    missed: Literal["skip", "once"] = Field(
        "skip", description="After downtime: skip missed slots, or run once to catch up.")
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
        names = source_names(type(self))
        if sum(getattr(self, name) is not None for name in names) != 1:
            raise ValueError("a poll trigger needs exactly one source: "
                             + " or ".join(f"'{name}:'" for name in names))
        return self

    @property
    def source(self) -> str:
        """The key of the trigger's source (``http``, ``files``...)."""
        return next(n for n in source_names(type(self)) if getattr(self, n) is not None)

    @property
    def source_config(self) -> Any:
        """The config of the trigger's source: the model its poll source kind registered."""
        return getattr(self, self.source)


def source_names(model: type[PollTrigger]) -> list[str]:
    return [name for name in model.model_fields if name not in PollTrigger.model_fields]


@functools.cache
def poll_trigger() -> type[PollTrigger]:
    """The PollTrigger model for the poll sources registered in this process."""
    sources = sorted(registry().poll_sources.items())
    model: type[PollTrigger] = create_model(  # type: ignore[call-overload]
        "PollTrigger", __base__=PollTrigger, __doc__=PollTrigger.__doc__,
        **{name: (kind.config | None, Field(None, description=kind.description))
           for name, kind in sources})
    return model


class AmqpBinding(Model):
    exchange: str = Field(description="Exchange (declared as a durable topic exchange if it "
                                      "does not exist).")
    routing_key: str = Field("#", description="Binding key, e.g. 'shipment.*'.")


class AmqpSource(Model):
    queue: str = Field(description="Queue to consume; declared (durable) if it does not exist.")
    queue_type: Literal["quorum", "classic"] = Field(
        "quorum", description="Type of a queue flowrunner declares: quorum queues count "
        "deliveries, so a message that keeps failing is dead-lettered after max_deliveries.")
    bind: list[AmqpBinding] = Field(default_factory=list, description="Bindings made at start: "
                                    "exchange and routing key.")


class MqttSource(Model):
    topic: str = Field(description="Topic filter to subscribe to, e.g. 'wms/+/shipments'.")
    qos: Literal[1, 2] = Field(1, description="Subscription QoS: 1 (at least once) or 2 "
                                              "(exactly once between broker and consumer).")
    shared: str | None = Field(None, description="Shared-subscription group "
                               "($share/GROUP/topic): consumers of the group split the messages.")


class RedisSource(Model):
    stream: str = Field(description="Stream key to read.")
    group: str = Field(description="Consumer group; created at the stream's start if missing.")
    consumer: str | None = Field(None, description="This process's name in the group (default: "
                                 "the host name); a consumer started again under its name "
                                 "first takes what it read and did not acknowledge.")
    field: str = Field("body", description="The entry's field holding the message; the other "
                                           "fields are the run's headers.")
    claim_after: Duration = Field(60.0, description="An entry another consumer read and did "
                                  "not acknowledge for this long is claimed (XAUTOCLAIM): that "
                                  "consumer is taken to be dead.")


class NatsSource(Model):
    stream: str = Field(description="JetStream stream holding the subject; created (for this "
                                    "subject) if it does not exist.")
    subject: str = Field(description="Subject filter, e.g. 'wms.shipments.>'.")
    durable: str = Field(description="Durable pull consumer: where consumption resumes after "
                                     "a restart.")
    ack_wait: Duration = Field(30.0, description="A message read and not acknowledged this "
                                                 "long is delivered again.")


class ConsumeTrigger(Model):
    """A message bus delivers to us: `flowrun consume` reads a queue, topic, stream or subject
    and starts one run per message, acknowledged once the run is recorded."""

    amqp: AmqpSource | None = Field(None, description="Consume an AMQP 0-9-1 queue (RabbitMQ).")
    mqtt: MqttSource | None = Field(None, description="Subscribe to an MQTT topic filter.")
    redis: RedisSource | None = Field(None, description="Read a Redis stream in a consumer "
                                                        "group.")
    nats: NatsSource | None = Field(None, description="Pull from a NATS JetStream durable "
                                                      "consumer.")
    connection: str = Field(description="Named connection of the bus (connections/NAME.yaml).")
    format: Literal["json", "text", "bytes"] = Field(
        "json", description="How bodies are read: json (an undecodable body is dead-lettered), "
        "text (UTF-8) or bytes (base64 in the body's 'base64' field).")
    idempotency_key: Expr | None = Field(
        None, description="Expression giving the message's id (default: the broker's message "
        "id); a redelivered id starts no new run.")
    in_flight: int = Field(64, ge=1, le=10_000, description="Messages read but not yet "
                           "recorded and acknowledged, at most (the broker's prefetch).")
    max_deliveries: int = Field(5, ge=1, description="A message delivered more often than this "
                                "(it keeps failing before it is recorded) is dead-lettered.")

    @model_validator(mode="after")
    def _one_bus(self) -> ConsumeTrigger:
        chosen = [name for name in BUSES if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError("a consume trigger needs exactly one bus: "
                             + " or ".join(f"'{name}:'" for name in BUSES))
        return self

    @property
    def bus(self) -> str:
        return next(name for name in BUSES if getattr(self, name) is not None)


BUSES = ("amqp", "mqtt", "redis", "nats")


class EventTrigger(Model):
    """This flow subscribes to a business event another flow publishes (engine/events): each
    event of the type starts one run of this flow, its body the event's data."""

    type: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                      description="Event type subscribed to, e.g. shipment.shipped.")
    when: Expr | None = Field(
        None, description="Condition on the event (its data as the input, $headers with "
        "event-type, event-id, event-key): only events for which it is true start a run.")
    key: Expr | None = Field(
        None, description="Ordering key computed from the event, e.g. sku: events with the "
        "same key are handled one at a time in publish order; without it, the event's own key.")


class ManualTrigger(Model):
    """Runs started by `flowrun run`, a replay or another flow's hand-off only."""


TRIGGER_KINDS = ("webhook", "poll", "event", "consume", "manual")


def _trigger_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        found = [k for k in TRIGGER_KINDS if k in value]
        return found[0] if len(found) == 1 else None
    for name in TRIGGER_KINDS:
        if getattr(value, name, None) is not None:
            return name
    return None


class WebhookSpec(Model):
    webhook: WebhookTrigger = Field(description="A platform calls us: one HTTP route on "
                                                "`flowrun serve` per webhook flow.")


class ConsumeSpec(Model):
    consume: ConsumeTrigger = Field(description="A message bus delivers to us (`flowrun "
                                                "consume`): AMQP, MQTT, Redis streams or NATS "
                                                "JetStream.")


class EventSpec(Model):
    event: EventTrigger = Field(description="Another flow published a business event (the "
                                            "`publish` step): a run per matching event.")


class ManualSpec(Model):
    manual: ManualTrigger = Field(default_factory=ManualTrigger,
                                  description="Started only by `flowrun run`, a replay or "
                                              "another flow's hand-off.")


@functools.cache
def trigger_union() -> Any:
    """The trigger of a flow: webhook, poll (with the registered sources), event, consume or
    manual."""
    poll_spec = create_model("PollSpec", __base__=Model, poll=(poll_trigger(), Field(
        description="We ask a partner on a schedule (`flowrun scheduler`): an HTTP API or a "
                    "drop folder.")))
    return Annotated[
        Annotated[WebhookSpec, Tag("webhook")] | Annotated[poll_spec, Tag("poll")]
        | Annotated[EventSpec, Tag("event")] | Annotated[ConsumeSpec, Tag("consume")]
        | Annotated[ManualSpec, Tag("manual")],
        Discriminator(_trigger_kind),
    ]
