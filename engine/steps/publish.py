"""``publish``: emit a business event once; the flows subscribed to its type each get a run.

The step only notes the event on the run (``meta.publish``); the execution core delivers it
before the run is next recorded (engine/events), so a crash in between publishes it again on
re-execution, with the same id, and the subscribers' idempotency claims drop the copy.
"""

from __future__ import annotations

from pydantic import Field

from engine.dsl.base import Expr, Model
from engine.envelope import Envelope
from engine.events import PENDING, default_id
from engine.types import BuildContext, Continue, Outcome, Resources, StepError, StepFn, StepKind


class PublishConfig(Model):
    type: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                      description="Event type, e.g. shipment.shipped; subscribers name it in "
                                  "their trigger: {event: {type: ...}}.")
    data: Expr | None = Field(None, description="Expression giving the event's data (the "
                                                "subscribers' body); the body when omitted.")
    id: Expr | None = Field(
        None, description="Expression giving the event id; a subscriber runs once per id. "
        "Default: derived from the run and this step, so re-executing or replaying the run "
        "publishes the same id.")
    key: Expr | None = Field(None, description="Ordering key, e.g. sku: a subscriber handles "
                                               "events of one key one at a time, in order.")


def build(config: PublishConfig, ctx: BuildContext) -> StepFn:
    data = ctx.expr(config.data, ("data",)) if config.data else None
    event_id = ctx.expr(config.id, ("id",)) if config.id else None
    key = ctx.expr(config.key, ("key",)) if config.key else None
    step_id = ctx.step_id

    def publish(envelope: Envelope, resources: Resources) -> Outcome:
        value = data.evaluate(envelope) if data is not None else envelope.body
        if event_id is not None:
            found = event_id.evaluate(envelope)
            if found in (None, ""):
                raise StepError(f"the event id of '{config.type}' is empty", kind="expression")
            ident = str(found)
        else:
            ident = default_id(envelope, step_id)
        ordering = key.evaluate(envelope) if key is not None else None
        envelope.meta.setdefault(PENDING, []).append(
            {"type": config.type, "id": ident, "data": value,
             "key": None if ordering in (None, "") else str(ordering)})
        return Continue()

    return publish


STEP = StepKind(
    name="publish",
    config=PublishConfig,
    build=build,
    description="Publish a business event once: {type: shipment.shipped, data, id, key}. Every "
                "flow whose trigger is {event: {type: shipment.shipped}} gets its own run.",
    default_output=None,
)
