"""The webhook server: one Starlette route per webhook trigger, plus health and readiness.

Built once, at start-up, by `create_app`: every trigger's signature scheme, options and secrets
are resolved then, and a bad one stops the start with the flow file, line and key — never a
surprise at request time. A request then goes, in order: rate limit (429) → size limit while
reading the raw body (413) → signature on those raw bytes (401) → media type (415) → parse
(400) → `App.accept` in a worker thread → 202, or 200 for a duplicate delivery, or 503 when
the run could not be recorded. The sender is answered only after `accept` returned, so a 202
always means the run is recorded.
"""

from __future__ import annotations

import logging
import math
import re
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Lifespan

from connectors.signatures import Scheme, SignatureError, load_schemes
from engine.app import App
from engine.bodies import BodyError, parse_body, record_headers
from engine.dsl.triggers import WebhookTrigger
from engine.loader import CompiledFlow
from engine.logs import bind, bind_runs
from engine.metrics import CONTENT_TYPE, Metrics, StoreCollector, metrics_for
from engine.problems import Problem, did_you_mean
from engine.refs import REF, UnresolvedReference, interpolate
from engine.runner import RunState
from engine.yamlsrc import read_source

log = logging.getLogger("flowrunner.server")

CLIENT_CLOSED = 499  # nginx's "client closed request": counted apart from the server's own errors
RETRY_AFTER_UNAVAILABLE = 5  # seconds; long enough for a locked state file to be released
FAILED = ("dead_lettered", "failed")
_CORRELATION = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
# a step error names the flow file on this machine; the sender gets the step and the reason only
_LOCATION = re.compile(r"^(step '[^']*') \([^)]*\): ")
RESERVED = ("/healthz", "/readyz", "/metrics")
RESERVED_PREFIXES = ("/console", "/api")  # the operations console and its JSON API


class ServerConfigError(Exception):
    """Webhook triggers that cannot be served, each a positioned problem in its flow file."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class TokenBucket:
    """`rate_limit: {per_second, burst}`. Only the event loop thread touches it: no lock."""

    def __init__(self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate, self.capacity, self.clock = per_second, float(burst), clock
        self.tokens, self.stamp = float(burst), clock()

    def take(self) -> float:
        """0 when a request may pass, else the seconds until the next token."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class SharedBucket:
    """The same `rate_limit:` held in Redis, so every `flowrun serve` process behind a load
    balancer shares one budget per trigger. If Redis does not answer, the request is let through
    to intake, which answers 503 itself when it cannot record the run."""

    def __init__(self, limits: Any, name: str, per_second: float, burst: int):
        self.limits, self.name, self.rate, self.burst = limits, name, per_second, burst

    def take(self) -> float:
        try:
            return float(self.limits.try_take(self.name, self.rate, self.burst))
        except Exception:
            log.warning("webhook rate limit %s not checked: Redis did not answer", self.name)
            return 0.0


@dataclass
class Hook:
    """One served webhook trigger, everything resolved."""

    flow: CompiledFlow
    trigger: WebhookTrigger
    scheme: Scheme[Any] | None = None
    config: BaseModel | None = None
    secrets: list[str] = field(default_factory=list)
    bucket: TokenBucket | SharedBucket | None = None


# -- start-up ----------------------------------------------------------------------------------
def build_hooks(app: App, now: float) -> list[Hook]:
    """A `Hook` per webhook flow; raises ServerConfigError listing every bad trigger."""
    schemes = load_schemes()
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
            limits = getattr(app.executor, "limits", None)  # Redis: shared by every server
            hook.bucket = (SharedBucket(limits, f"webhook:{flow.id}", trigger.rate_limit.per_second,
                                        trigger.rate_limit.burst) if limits is not None
                           else TokenBucket(trigger.rate_limit.per_second,
                                            trigger.rate_limit.burst))
        if trigger.signature is not None:
            found = _signature(app, flow, trigger.signature, schemes, hook, now)
            problems.extend(found)
        else:
            log.warning("flow %s: %s accepts unsigned requests (no signature: configured)",
                        flow.id, trigger.path)
        hooks.append(hook)
    if problems:
        raise ServerConfigError(problems)
    return hooks


def _signature(app: App, flow: CompiledFlow, spec: dict[str, Any],
               schemes: dict[str, Scheme[Any]], hook: Hook, now: float) -> list[Problem]:
    base = ("trigger", "webhook", "signature")
    source, _ = read_source(flow.file, flow.text.encode("utf-8"))
    problems: list[Problem] = []
    name = str(spec["scheme"]).replace("-", "_")  # standard-webhooks reads better in YAML
    scheme = schemes.get(name)
    if scheme is None:
        known = ", ".join(sorted(schemes))
        return [source.problem((*base, "scheme"), f"unknown signature scheme '{spec['scheme']}'"
                               + (did_you_mean(name, schemes) or f"; known schemes: {known}"))]
    options = {k: v for k, v in spec.items() if k not in ("scheme", "secret")}
    try:
        config = scheme.config.model_validate(options)
    except ValidationError as exc:
        for error in exc.errors():
            where = (*base, *error["loc"])
            message = error["msg"]
            if error["type"] == "extra_forbidden":
                allowed = list(scheme.config.model_fields)
                message = (f"'{error['loc'][-1]}' is not an option of the {scheme.name} scheme"
                           + (did_you_mean(str(error["loc"][-1]), allowed) or
                              (f"; its options are {', '.join(allowed)}" if allowed else
                               "; it takes only 'scheme' and 'secret'")))
            problems.append(source.problem(where if error["loc"] else base, message,
                                           key=error["type"] == "extra_forbidden"))
        return problems
    refs = spec.get("secret")
    listed = refs if isinstance(refs, list) else [refs]
    if refs is None or not listed:
        return [source.problem(base, "a signature needs 'secret: ${secret:NAME}' (or a list of "
                                     "them while a secret is rotated)")]
    secrets: list[str] = []
    for i, ref in enumerate(listed):
        where = (*base, "secret", i) if isinstance(refs, list) else (*base, "secret")
        if not isinstance(ref, str) or not any(m["kind"] == "secret" for m in REF.finditer(ref)):
            # a literal secret would sit in version control next to the flow
            problems.append(source.problem(where, "write the secret as ${secret:NAME}, never "
                                                  "the value itself"))
            continue
        try:
            value = interpolate(ref, app.secrets)
            scheme.sign(config, b"", value, now)  # the scheme refuses a malformed secret here
        except UnresolvedReference as exc:
            problems.append(source.problem(where, str(exc)))
            continue
        except (ValueError, OSError) as exc:  # OSError: a secrets file others may read
            problems.append(source.problem(where, app.secrets.redactor.text(str(exc))))
            continue
        secrets.append(value)
    hook.scheme, hook.config, hook.secrets = scheme, config, secrets
    return problems


# -- requests ----------------------------------------------------------------------------------
def correlation_id(request: Request) -> str:
    """X-Correlation-ID when it looks like an id, else the W3C trace id, else a new one."""
    given = request.headers.get("x-correlation-id", "").strip()
    if _CORRELATION.fullmatch(given):
        return given
    match = _TRACEPARENT.fullmatch(request.headers.get("traceparent", "").strip())
    if match and match[1] != "0" * 32:
        return match[1]
    return uuid.uuid4().hex


def _json(status: int, data: dict[str, Any], cid: str | None = None,
          headers: dict[str, str] | None = None) -> JSONResponse:
    out = dict(headers or {})
    if cid:
        out["X-Correlation-ID"] = cid
    return JSONResponse(data, status_code=status, headers=out)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The raw body, or None as soon as it passes *limit* bytes (the rest is never read)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


class _Intake:
    """The endpoint of one webhook route."""

    def __init__(self, app: App, hook: Hook, metrics: Metrics, clock: Callable[[], float]):
        self.app, self.hook, self.metrics, self.clock = app, hook, metrics, clock

    async def handle(self, request: Request) -> Response:
        """Time the request and count its answer; every line logged meanwhile carries the
        flow and the request's correlation id."""
        started = time.perf_counter()
        cid = correlation_id(request)
        status = 500
        try:
            with bind(flow=self.hook.flow.id, correlation_id=cid):
                response = await self._handle(request, cid)
            status = response.status_code
            return response
        except ClientDisconnect:
            # the sender went away (or was cut off by the body timeout) before its body was read:
            # nothing was recorded and nobody is left to answer; not a server error
            log.info("flow %s: the sender went away before its body was read", self.hook.flow.id)
            self.metrics.webhook(self.hook.flow.id, "disconnected")
            status = CLIENT_CLOSED
            return Response(status_code=status)
        finally:
            self.metrics.response(self.hook.flow.id, status, time.perf_counter() - started)

    async def _handle(self, request: Request, cid: str) -> Response:
        hook, flow_id = self.hook, self.hook.flow.id

        def refuse(status: int, outcome: str, error: str, **headers: str) -> Response:
            self.metrics.webhook(flow_id, outcome)
            return _json(status, {"error": error}, cid, headers)

        if hook.bucket is not None:
            bucket = hook.bucket
            wait = (bucket.take() if isinstance(bucket, TokenBucket)
                    else await run_in_threadpool(bucket.take))
            if wait:
                return refuse(429, "rate_limited", "too many requests; retry later",
                              **{"Retry-After": str(max(1, math.ceil(wait)))})
        raw = await _read_limited(request, hook.trigger.max_body)
        if raw is None:
            return refuse(413, "too_large", f"body larger than {hook.trigger.max_body} bytes")
        if hook.scheme is not None:
            try:
                hook.scheme.verify(hook.config, raw, request.headers, hook.secrets, self.clock())
            except SignatureError as exc:
                return refuse(401, "signature_rejected", f"signature rejected: {exc.reason}")
        try:
            body = parse_body(raw, request.headers.get("content-type"))
        except BodyError as exc:
            return refuse(exc.status, exc.outcome, exc.message)
        headers = record_headers(request.headers.items(), self.app.settings)
        try:
            accepted = await run_in_threadpool(
                self.app.accept, hook.flow, body, headers, trigger="webhook", correlation_id=cid,
                request={"path": request.url.path, "params": dict(request.path_params),
                         "query": dict(request.query_params)})
        except Exception as exc:
            # StoreError is the expected case; anything else must not turn into a 202 either
            log.error("flow %s: delivery not recorded: %s", flow_id, _redacted(self.app, exc))
            return refuse(503, "unavailable", "the run could not be recorded; retry later",
                          **{"Retry-After": str(RETRY_AFTER_UNAVAILABLE)})
        cid = accepted.correlation_id or cid
        if accepted.duplicate:
            self.metrics.webhook(flow_id, "duplicate")
            return _json(200, {"run_id": accepted.run_id, "correlation_id": cid,
                               "duplicate": True}, cid)
        self.metrics.webhook(flow_id, "accepted")
        if hook.trigger.respond == "sync":
            return await self._sync(accepted.run_id, cid)
        return _json(202, {"run_id": accepted.run_id, "correlation_id": cid}, cid)

    async def _sync(self, run_id: str, cid: str) -> Response:
        accepted = _json(202, {"run_id": run_id, "correlation_id": cid}, cid)
        try:
            tree = await run_in_threadpool(self.app.wait_for, run_id,
                                           self.hook.trigger.sync_timeout)
        except Exception as exc:  # the run is recorded; the sender may look it up later
            log.error("run %s: waiting for the result failed: %s", run_id,
                      _redacted(self.app, exc))
            return accepted
        if not tree or not all(state.done for state in tree):
            self.metrics.webhook(self.hook.flow.id, "sync_timeout")
            return accepted
        redact = self.app.secrets.redactor.data
        failed: RunState | None = next((s for s in tree if s.status in FAILED), None)
        root = tree[0]
        if failed is not None:
            error = _LOCATION.sub(r"\1: ", str((failed.error or {}).get("message", failed.status)))
            return _json(502, redact({"run_id": run_id, "correlation_id": cid,
                                      "status": failed.status, "error": error}), cid)
        return JSONResponse(redact(root.envelope.get("body")), status_code=200,
                            headers={"X-Correlation-ID": cid, "X-Run-ID": run_id,
                                     "X-Run-Status": root.status})


def _redacted(app: App, exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return app.secrets.redactor.text(text)


# -- the application ---------------------------------------------------------------------------
def create_app(app: App, *, clock: Callable[[], float] = time.time,
               lifespan: Lifespan[Starlette] | None = None) -> Starlette:
    """The ASGI app serving *app*'s webhook flows. *clock* is the signatures' "now"; *lifespan*
    starts and stops what runs beside the server (`flowrun serve`: the executor)."""
    hooks = build_hooks(app, clock())
    bind_runs(app)
    metrics = metrics_for(app)
    metrics.add_collector(StoreCollector(app))
    routes: list[BaseRoute] = [
        Route(hook.trigger.path, _Intake(app, hook, metrics, clock).handle,
              methods=list(hook.trigger.methods), name=hook.flow.id) for hook in hooks]

    async def healthz(request: Request) -> Response:
        return _json(200, {"status": "alive"})

    async def readyz(request: Request) -> Response:
        if not hooks:
            return _json(503, {"status": "not ready", "reason": "no webhook flow is loaded"})
        try:
            # a write, not a read: readers pass a locked SQLite file, run records do not
            await run_in_threadpool(app.store.set_cursor, "flowrun.readyz", str(time.time()))
        except Exception as exc:
            log.error("readiness: store unavailable: %s", _redacted(app, exc))
            return _json(503, {"status": "not ready", "reason": "the state store is unavailable"},
                         headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE)})
        return _json(200, {"status": "ready", "webhooks": len(hooks)})

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

    routes += [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", scrape),
               *console_routes(app, metrics)]
    web = Starlette(routes=routes,
                    exception_handlers={HTTPException: http_error, ClientDisconnect: gone,
                                        Exception: server_error},
                    lifespan=lifespan)
    web.state.counters = web.state.metrics = metrics
    web.state.hooks = hooks
    return web
