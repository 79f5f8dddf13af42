"""The webhook routes as a plain ASGI handler, in front of the console's Starlette app.

A request to a webhook path goes, in order: rate limit (429) → size limit while reading the raw
body (413) → signature on those raw bytes (401) → media type (415) → parse (400) → intake, which
records it in the next group (engine/intake) → 202, or 200 for a duplicate delivery, or 503 when
the run could not be recorded. The sender is answered only once its group is recorded, so a 202
always means the run is recorded. The run is built on the event loop and handed to the intake
writer without a thread-pool hop; only ``respond: sync`` waits in a thread for the run's result.

Every other path (health, metrics, the console and its API) goes to the Starlette app.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine import tracing
from engine.bodies import BodyError, record_headers
from engine.intake import Accepted
from engine.logs import bind
from engine.metrics import Metrics
from engine.records import RecordError, RunState, dumps
from engine.signatures import SignatureError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from engine.app import App
    from engine.compiled import CompiledFlow
    from engine.dsl.triggers import WebhookTrigger
    from engine.limits import RateLimiter
    from engine.signatures import Scheme

log = logging.getLogger("flowrunner.server")

CLIENT_CLOSED = 499  # nginx's "client closed request": counted apart from the server's own errors
RETRY_AFTER_UNAVAILABLE = 5  # seconds; long enough for a locked state file to be released
FAILED = ("dead_lettered", "failed")
_CORRELATION = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
# a step error names the flow file on this machine; the sender gets the step and the reason only
_LOCATION = re.compile(r"^(step '[^']*') \([^)]*\): ")


def correlation_id(headers: Mapping[str, str]) -> str:
    """X-Correlation-ID when it looks like an id, else the W3C trace id, else a new one."""
    return given_correlation_id(headers) or uuid.uuid4().hex


def given_correlation_id(headers: Mapping[str, str]) -> str | None:
    """X-Correlation-ID when it looks like an id, else the W3C trace id, else None."""
    given = headers.get("x-correlation-id", "").strip()
    if _CORRELATION.fullmatch(given):
        return given
    match = _TRACEPARENT.fullmatch(headers.get("traceparent", "").strip())
    if match and match[1] != "0" * 32:
        return match[1]
    return None


class Answer(Exception):
    """A response decided before intake (429, 413, 401, 415, 400)."""

    def __init__(self, status: int, outcome: str, error: str, **headers: str):
        super().__init__(error)
        self.status, self.outcome, self.error, self.headers = status, outcome, error, headers


async def respond(send: Send, status: int, data: Any, cid: str | None = None,
                  headers: Mapping[str, str] | None = None) -> None:
    body = dumps(data)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if cid:
        raw.append((b"x-correlation-id", cid.encode("latin-1")))
    for name, value in (headers or {}).items():
        raw.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive, declared: str | None, limit: int) -> bytes | None:
    """The raw body, or None as soon as it passes *limit* bytes (the rest is never read).
    Raises ConnectionResetError when the sender went away before it ended."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("the sender disconnected before the body ended")
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return body


class HookEndpoint:
    """The handler of one webhook route."""

    def __init__(self, app: App, hook: Hook, metrics: Metrics, clock: Callable[[], float],
                 parse: Callable[[bytes, str | None], Any]):
        self.app, self.hook, self.metrics, self.clock = app, hook, metrics, clock
        self.parse = parse
        self.flow_id = hook.flow.id

    async def __call__(self, scope: Scope, receive: Receive, send: Send,
                       params: dict[str, str]) -> None:
        """Time the request and count its answer; every line logged meanwhile carries the
        flow and the request's correlation id."""
        started = time.perf_counter()
        headers = Headers(scope=scope)
        cid = correlation_id(headers)
        status = 500
        try:
            with bind(flow=self.flow_id, correlation_id=cid):
                status, data, extra = await self._handle(scope, receive, headers, cid, params)
                if status == CLIENT_CLOSED:  # the sender went away: nobody to answer
                    return
                cid = data.get("correlation_id", cid) if isinstance(data, dict) else cid
                await respond(send, status, data, cid, extra)
        finally:
            self.metrics.response(self.flow_id, status, time.perf_counter() - started)

    async def _handle(self, scope: Scope, receive: Receive, headers: Headers, cid: str,
                      params: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        try:
            body = await self._admit(receive, headers)
        except Answer as answer:
            self.metrics.webhook(self.flow_id, answer.outcome)
            return answer.status, {"error": answer.error}, answer.headers
        except ConnectionResetError:
            self.metrics.webhook(self.flow_id, "disconnected")
            log.info("flow %s: the sender disconnected before its body ended", self.flow_id)
            return CLIENT_CLOSED, None, {}
        request = {"path": scope["path"], "params": params,
                   "query": dict(_query(scope))}
        try:
            kept = record_headers(_decoded(scope), self.app.settings)
            accepted = await self.accept(body, kept, cid, request)
        except (RecordError, RecursionError) as exc:  # the same body would fail every time
            self.metrics.webhook(self.flow_id, "malformed")
            return 400, {"error": f"the message cannot be recorded: {exc}"}, {}
        except Exception as exc:
            # StoreError is the expected case; anything else must not turn into a 202 either
            log.error("flow %s: delivery not recorded: %s", self.flow_id, _redacted(self.app, exc))
            self.metrics.webhook(self.flow_id, "unavailable")
            return 503, {"error": "the run could not be recorded; retry later"}, {
                "Retry-After": str(RETRY_AFTER_UNAVAILABLE)}
        cid = accepted.correlation_id or cid
        if accepted.duplicate:
            self.metrics.webhook(self.flow_id, "duplicate")
            return 200, {"run_id": accepted.run_id, "correlation_id": cid, "duplicate": True}, {}
        self.metrics.webhook(self.flow_id, "accepted")
        if self.hook.trigger.respond == "sync":
            return await self._sync(accepted.run_id, cid)
        return 202, {"run_id": accepted.run_id, "correlation_id": cid}, {}

    async def admit_raw(self, receive: Receive, headers: Headers) -> bytes:
        """The raw body of a request within the rate limit and the size limit; raises `Answer`
        otherwise (and ConnectionResetError when the sender went away)."""
        hook = self.hook
        if hook.bucket is not None:
            bucket = hook.bucket
            wait = bucket.take() if bucket.local else await run_in_threadpool(bucket.take)
            if wait:
                raise Answer(429, "rate_limited", "too many requests; retry later",
                             **{"Retry-After": str(max(1, math.ceil(wait)))})
        limit = hook.trigger.max_body
        raw = await read_body(receive, headers.get("content-length"), limit)
        if raw is None:
            raise Answer(413, "too_large", f"body larger than {limit} bytes")
        return raw

    async def _admit(self, receive: Receive, headers: Headers) -> Any:
        """The parsed body of a request that passed the rate limit, size, signature and media
        type; raises `Answer` otherwise."""
        hook = self.hook
        raw = await self.admit_raw(receive, headers)
        if hook.scheme is not None:
            try:
                hook.scheme.verify(hook.config, raw, headers, hook.secrets, self.clock())
            except SignatureError as exc:
                raise Answer(401, "signature_rejected",
                             f"signature rejected: {exc.reason}") from None
        try:
            return self.parse(raw, headers.get("content-type"))
        except BodyError as exc:
            raise Answer(exc.status, exc.outcome, exc.message) from None

    async def accept(self, body: Any, headers: dict[str, str], cid: str,
                     request: dict[str, Any], key: str | None = None) -> Accepted:
        """Hand the delivery to the intake writer and wait for its group to be recorded;
        *key*, when given, is its idempotency key (see `Intake.prepare`)."""
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[Accepted | BaseException] = loop.create_future()

        def answer(result: Accepted | BaseException) -> None:
            loop.call_soon_threadsafe(_settle, answered, result)

        intake = self.app.intake
        with tracing.intake(self.flow_id, "webhook") as span:
            delivery = intake.prepare(self.hook.flow, body, headers, trigger="webhook",
                                      correlation_id=cid, request=request, answer=answer,
                                      key=key)
            intake.put(delivery)
            result = await answered
            if isinstance(result, BaseException):
                span.failed(type(result).__name__)
                raise result
            _accepted(span, result)
        return result

    async def _sync(self, run_id: str, cid: str) -> tuple[int, Any, dict[str, str]]:
        accepted: tuple[int, Any, dict[str, str]] = (202, {"run_id": run_id,
                                                           "correlation_id": cid}, {})
        try:
            tree = await run_in_threadpool(self.app.wait_for, run_id,
                                           self.hook.trigger.sync_timeout)
        except Exception as exc:  # the run is recorded; the sender may look it up later
            log.error("run %s: waiting for the result failed: %s", run_id,
                      _redacted(self.app, exc))
            return accepted
        if not tree or not all(state.done for state in tree):
            self.metrics.webhook(self.flow_id, "sync_timeout")
            return accepted
        redact = self.app.secrets.redactor.data
        failed: RunState | None = next((s for s in tree if s.status in FAILED), None)
        root = tree[0]
        if failed is not None:
            error = _LOCATION.sub(r"\1: ", str((failed.error or {}).get("message", failed.status)))
            return 502, redact({"run_id": run_id, "correlation_id": cid,
                                "status": failed.status, "error": error}), {}
        return 200, redact(root.envelope.get("body")), {"X-Run-ID": run_id,
                                                         "X-Run-Status": root.status}


def _accepted(span: tracing.Span, accepted: Accepted) -> None:
    span.set("flowrun.run_id", accepted.run_id)
    span.set("flowrun.correlation_id", accepted.correlation_id)
    span.set("flowrun.duplicate", accepted.duplicate)


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # the request may have been cancelled meanwhile
        future.set_result(result)


def _decoded(scope: Scope) -> Any:
    return ((name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"])


def _query(scope: Scope) -> Any:
    query = scope.get("query_string", b"")
    if not query:
        return ()
    return parse_qsl(query.decode("latin-1"), keep_blank_values=True)


def _redacted(app: App, exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return app.secrets.redactor.text(text)


async def _traced(endpoint: HookEndpoint, scope: Scope, receive: Receive, send: Send,
                  params: dict[str, str]) -> None:
    """*endpoint* within a server span (continuing the sender's ``traceparent``), whatever the
    endpoint is — a webhook's, an AS2 partner's, a plugin's; the status is the one it sent."""
    status = CLIENT_CLOSED  # until an answer starts: a sender that went away gets none

    async def answering(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    with tracing.server(Headers(scope=scope), scope["method"], endpoint.hook.trigger.path,
                        {"url.path": scope["path"], "flowrun.flow": endpoint.flow_id}) as span:
        try:
            await endpoint(scope, receive, answering, params)
        except BaseException as exc:
            span.failed(type(exc).__name__)
            raise
        span.set("http.response.status_code", status)
        if status >= 500:
            span.failed(str(status))


class Gateway:
    """The served ASGI app: webhook paths to their endpoints, everything else to *fallback*."""

    def __init__(self, endpoints: Sequence[tuple[str, frozenset[str], HookEndpoint]],
                 fallback: ASGIApp, wrap: Callable[[ASGIApp], ASGIApp] | None = None):
        self.fallback = fallback
        #: what every request goes through: the routing below, wrapped once (the access log)
        self._serve: ASGIApp = wrap(self._route) if wrap is not None else self._route
        self._exact: dict[str, tuple[frozenset[str], HookEndpoint]] = {}
        self._patterns: list[tuple[re.Pattern[str], frozenset[str], HookEndpoint]] = []
        for path, methods, endpoint in endpoints:
            if "{" in path:
                regex, _, _ = compile_path(path)
                self._patterns.append((regex, methods, endpoint))
            else:
                self._exact[path] = (methods, endpoint)

    @property
    def state(self) -> Any:
        return getattr(self.fallback, "state", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._serve(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = self._match(scope["path"])
            if found is not None:
                methods, endpoint, params = found
                if scope["method"] in methods or (scope["method"] == "HEAD"
                                                  and "GET" in methods):
                    if tracing.enabled():
                        await _traced(endpoint, scope, receive, send, params)
                    else:
                        await endpoint(scope, receive, send, params)
                else:
                    await respond(send, 405, {"error": "Method Not Allowed"},
                                  headers={"Allow": ", ".join(sorted(methods))})
                return
        await self.fallback(scope, receive, send)

    def _match(self, path: str) -> tuple[frozenset[str], HookEndpoint, dict[str, str]] | None:
        exact = self._exact.get(path)
        if exact is not None:
            return exact[0], exact[1], {}
        for regex, methods, endpoint in self._patterns:
            match = regex.match(path)
            if match:
                return methods, endpoint, match.groupdict()
        return None


# -- what `engine.server.build_hooks` resolves at start-up for each webhook trigger ----------
@dataclass
class Hook:
    """One served webhook trigger, everything resolved."""

    flow: CompiledFlow
    trigger: WebhookTrigger
    scheme: Scheme[Any] | None = None
    config: BaseModel | None = None
    secrets: list[str] = field(default_factory=list)
    bucket: WebhookBucket | None = None
    #: the endpoint class of a trigger that is not a plain webhook (an AS2 endpoint)
    endpoint: type[HookEndpoint] = HookEndpoint
    #: what that endpoint was built with (for AS2: the partner's keys and certificates)
    options: Any = None


@dataclass
class WebhookBucket:
    """A webhook trigger's `rate_limit:` through the executor's rate limiter: in this process,
    or in Redis so every `flowrun serve` behind a load balancer shares one budget. If Redis
    does not answer, the request is let through to intake, which answers 503 itself when it
    cannot record the run."""

    limiter: RateLimiter
    name: str
    per_second: float
    burst: int

    @property
    def local(self) -> bool:
        return self.limiter.local

    def take(self) -> float:
        try:
            return float(self.limiter.try_take(self.name, self.per_second, self.burst))
        except Exception:
            log.warning("webhook rate limit %s not checked: Redis did not answer", self.name)
            return 0.0
