"""The webhook server: the webhook routes (engine/webhooks), health, readiness, metrics and
the console.

Built once, at start-up, by `create_app`: every trigger's signature scheme, options and secrets
are resolved then, and a bad one stops the start with the flow file, line and key — never a
surprise at request time. How a request is answered is told in engine/webhooks.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Lifespan

from engine.access_log import AccessLog
from engine.app import App
from engine.bodies import parse_body
from engine.compiled import CompiledFlow
from engine.consumers import Consumers
from engine.dsl.triggers import WebhookTrigger
from engine.metrics import CONTENT_TYPE, StoreCollector
from engine.problems import Problem
from engine.refs import UnresolvedReference, interpolate
from engine.registry import registry
from engine.signatures import Scheme, check_spec
from engine.webhooks import CLIENT_CLOSED, RETRY_AFTER_UNAVAILABLE, Gateway, Hook, WebhookBucket
from engine.yamlsrc import read_source

log = logging.getLogger("flowrunner.server")

RESERVED = ("/healthz", "/readyz", "/metrics")
RESERVED_PREFIXES = ("/console", "/api")  # the operations console and its JSON API


class ServerConfigError(Exception):
    """Webhook triggers that cannot be served, each a positioned problem in its flow file."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


# -- start-up ----------------------------------------------------------------------------------
def build_hooks(app: App, now: float) -> list[Hook]:
    """A `Hook` per webhook flow; raises ServerConfigError listing every bad trigger."""
    schemes = registry().signatures
    hooks: list[Hook] = []
    problems: list[Problem] = []
    for flow in sorted(app.flows.flows.values(), key=lambda f: f.trigger.path
                       if f.trigger_kind == "webhook" else ""):
        if flow.trigger_kind != "webhook":
            continue
        trigger: WebhookTrigger = flow.trigger
        hook = Hook(flow, trigger)
        if trigger.path in RESERVED or trigger.path.startswith(RESERVED_PREFIXES):
            source, _ = read_source(flow.file, flow.text.encode("utf-8"))
            problems.append(source.problem(("trigger", "webhook", "path"), f"'{trigger.path}' "
                                           "is reserved by the server; choose another path"))
            continue
        if trigger.rate_limit is not None:
            hook.bucket = WebhookBucket(app.executor.rate_limiter, f"webhook:{flow.id}",
                                        trigger.rate_limit.per_second, trigger.rate_limit.burst)
        if trigger.as2 is not None:
            problems.extend(_as2(app, flow, hook))
        elif trigger.signature is not None:
            found = _signature(app, flow, trigger.signature, schemes, hook, now)
            problems.extend(found)
        else:
            log.warning("flow %s: %s accepts unsigned requests (no signature: configured)",
                        flow.id, trigger.path)
        hooks.append(hook)
    if problems:
        raise ServerConfigError(problems)
    return hooks


def _as2(app: App, flow: CompiledFlow, hook: Hook) -> list[Problem]:
    """An AS2 endpoint: its partner's certificates and our key, read and checked now."""
    where = ("trigger", "webhook", "as2", "partner")
    try:
        from connectors.as2.receive import As2Endpoint, endpoint_options
    except ImportError as exc:
        source, _ = read_source(flow.file, flow.text.encode("utf-8"))
        return [source.problem(where, f"AS2 needs {exc.name or 'pyas2lib'}: install "
                                      "flowrunner[as2]")]
    try:
        hook.options = endpoint_options(app, flow, hook.trigger.as2.partner)  # type: ignore[union-attr]
    except ValueError as exc:
        source, _ = read_source(flow.file, flow.text.encode("utf-8"))
        return [source.problem(where, app.secrets.redactor.text(str(exc)))]
    hook.endpoint = As2Endpoint
    return []


def _signature(app: App, flow: CompiledFlow, spec: dict[str, Any],
               schemes: dict[str, Scheme[Any]], hook: Hook, now: float) -> list[Problem]:
    """The scheme, options and secret values of a webhook's signature check. The flow was
    loaded, so `check_spec` found nothing at load; what is left is resolving the secrets."""
    base = ("trigger", "webhook", "signature")
    source, _ = read_source(flow.file, flow.text.encode("utf-8"))
    checked = check_spec(spec, schemes)
    problems = [source.problem((*base, *where), message, key=key)
                for where, message, key in checked.problems]
    if checked.scheme is None or checked.config is None or problems:
        return problems
    scheme, config = checked.scheme, checked.config
    secrets: list[str] = []
    for where, ref in checked.refs:
        try:
            value = interpolate(ref, app.secrets)
            scheme.sign(config, b"", value, now)  # the scheme refuses a malformed secret here
        except UnresolvedReference as exc:
            problems.append(source.problem((*base, *where), str(exc)))
            continue
        except (ValueError, OSError) as exc:  # OSError: a secrets file others may read
            problems.append(source.problem((*base, *where),
                                           app.secrets.redactor.text(str(exc))))
            continue
        secrets.append(value)
    hook.scheme, hook.config, hook.secrets = scheme, config, secrets
    return problems


def _json(status: int, data: dict[str, Any], headers: dict[str, str] | None = None,
          ) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=headers)


def _redacted(app: App, exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return app.secrets.redactor.text(text)


# -- the application ---------------------------------------------------------------------------
def create_app(app: App, *, clock: Callable[[], float] = time.time,
               lifespan: Lifespan[Starlette] | None = None,
               consumers: Consumers | None = None) -> Gateway:
    """The ASGI app serving *app*'s webhook flows (engine/webhooks), its health, metrics and
    console. *clock* is the signatures' "now"; *lifespan* starts and stops what runs beside
    the server (`flowrun serve`: the executor, and the bus *consumers* with --consume), whose
    broker connections `/readyz` reports."""
    hooks = build_hooks(app, clock())
    metrics = app.metrics
    metrics.add_collector(StoreCollector(app.store, app.versions))
    endpoints = [(hook.trigger.path, frozenset(hook.trigger.methods),
                  hook.endpoint(app, hook, metrics, clock, parse_body)) for hook in hooks]

    async def healthz(request: Request) -> Response:
        return _json(200, {"status": "alive"})

    async def readyz(request: Request) -> Response:
        consuming = consumers.health() if consumers is not None else {}
        if not hooks and not consuming:
            return _json(503, {"status": "not ready", "reason": "no webhook flow is loaded"
                               + (" and no flow has a consume trigger" if consumers else "")})
        try:
            # a write, not a read: readers pass a locked SQLite file, run records do not
            await run_in_threadpool(app.store.set_cursor, "flowrun.readyz", str(time.time()))
        except Exception as exc:
            log.error("readiness: store unavailable: %s", _redacted(app, exc))
            return _json(503, {"status": "not ready", "reason": "the state store is unavailable"},
                         headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE)})
        down = {flow: why for flow, why in consuming.items() if why is not None}
        if down:
            return _json(503, {"status": "not ready",
                               "reason": "a consumer cannot reach its broker",
                               "consumers": {flow: why or "consuming"
                                             for flow, why in consuming.items()}},
                         headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE)})
        ready: dict[str, Any] = {"status": "ready", "webhooks": len(hooks)}
        if consumers is not None:
            ready["consumers"] = {flow: "consuming" for flow in consuming}
        return _json(200, ready)

    async def scrape(request: Request) -> Response:
        # the store gauges query the store: off the event loop
        body = await run_in_threadpool(metrics.exposition)
        return Response(body, media_type=CONTENT_TYPE)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _json(exc.status_code, {"error": exc.detail}, headers=dict(exc.headers or {}))

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s: %s", request.url.path, _redacted(app, exc))
        return _json(500, {"error": "internal error"})

    async def gone(request: Request, exc: Exception) -> Response:
        log.info("%s: the client went away before its request was read", request.url.path)
        return Response(status_code=CLIENT_CLOSED)

    from engine.console import console_routes  # the console pulls in Jinja2: only here

    routes: list[BaseRoute] = [Route("/healthz", healthz), Route("/readyz", readyz),
                               Route("/metrics", scrape), *console_routes(app, metrics)]
    web = Starlette(routes=routes,
                    exception_handlers={HTTPException: http_error, ClientDisconnect: gone,
                                        Exception: server_error},
                    lifespan=lifespan)
    web.state.counters = web.state.metrics = metrics
    web.state.hooks = hooks
    return Gateway(endpoints, web, wrap=AccessLog if app.settings.access_log else None)
