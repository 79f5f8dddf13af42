"""``call``: talk to another system through a connector (``call: {http: {...}}``).

The connectors are found through the ``flowrunner.connectors`` entry points and have the same
shape as step kinds; this step only picks the one named under ``call:``. Retry, timeouts of the
attempt schedule and dead-lettering wrap the call in the runner — connectors have no retry loops.
"""

from __future__ import annotations

import functools
import warnings
from typing import Annotated, Any, Union

from pydantic import BaseModel, Discriminator, Field, Tag, create_model

from engine.dsl.base import Model
from engine.registry import registry
from engine.types import BuildContext, StepFn, StepKind


def _connector_of(value: Any) -> str | None:
    names = registry().connectors
    if isinstance(value, dict):
        found = [k for k in value if k in names]
        return found[0] if len(found) == 1 and len(value) == 1 else None
    if isinstance(value, BaseModel):
        return next(iter(type(value).model_fields))
    return None


def call_config() -> Any:
    return _call_union()


@functools.cache
def _call_union() -> Any:
    members = []
    for name, connector in sorted(registry().connectors.items()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model = create_model(  # type: ignore[call-overload]
                "".join(p.title() for p in name.split("_")) + "Call", __base__=Model,
                **{name: (connector.config, Field(description=connector.description))})
        members.append(Annotated[model, Tag(name)])
    if not members:
        return dict[str, Any]
    return Annotated[Union[tuple(members)], Discriminator(_connector_of)]  # noqa: UP007


def build(config: Any, ctx: BuildContext) -> StepFn:
    name = next(iter(type(config).model_fields))
    connector = registry().connectors[name]
    ctx_base = getattr(ctx, "base", ())
    if hasattr(ctx, "base"):
        ctx.base = (*ctx_base, name)
    try:
        return connector.build(getattr(config, name), ctx)
    finally:
        if hasattr(ctx, "base"):
            ctx.base = ctx_base


STEP = StepKind(
    name="call",
    config=call_config,  # a factory: the union needs the registry, which is loading this module
    build=build,
    description="Call another system through a connector: {http: {method, url, ...}}. "
                "Retried per the retry policy; side effects carry an Idempotency-Key.",
    side_effect=True,
    default_output=None,  # a call is done for its effect; `output:` keeps the response
)
