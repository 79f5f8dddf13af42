"""The ``http`` connector: ``call: {http: {method, url, ...}}`` over a pooled requests Session.

One config model and one build function. Failures are classified for the retry policy
(timeout, connection, dns, tls, http with its status, invalid_response); the connector never
retries or sleeps itself. A call answered outside ``success:`` keeps the partner's answer as
the error's detail (`answer`), for the operator who has to fix the data. Outbound requests
carry the run's correlation id and, for methods that are not idempotent, an Idempotency-Key
derived from run and step, so a downstream that honours it applies each effect once however
often the runner retries or a worker redelivers.
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from typing import Any, Literal

import requests
from pydantic import ConfigDict, Field, model_validator

from connectors.http_connection import client_for
from connectors.http_errors import NOT_RETRYABLE, classify
from engine.plugin import (
    HTTP,
    BuildContext,
    Duration,
    Envelope,
    Expr,
    HttpAdapter,
    HttpStatus,
    Model,
    Outcome,
    Resources,
    StepError,
    StepFn,
    StepKind,
    Value,
    compile_url,
    compile_value,
    redact_logs,
    result,
    status_matches,
)

MAX_RESPONSE_BYTES = 10 * 1024 * 1024
#: how much of a failed call's response body is kept with the run's error and its dead letter
ANSWER_BODY_BYTES = 4096
#: the response headers kept with it: what says why the partner refused and how to follow it
#: up with them — never cookies or credentials (Set-Cookie, Authorization are not listed)
ANSWER_HEADERS = frozenset({"content-type", "content-language", "retry-after",
                            "location", "www-authenticate", "traceparent"})
ANSWER_HEADER_SUFFIXES = ("request-id", "requestid", "correlation-id", "trace-id")
NOT_IDEMPOTENT = frozenset({"POST", "PATCH"})


class Timeouts(Model):
    connect: Duration = Field(5.0, description="Longest wait for the connection.")
    read: Duration = Field(30.0, description="Longest wait for the response.")


class BasicAuth(Model):
    username: str = Field(description="User name; may use ${secret:...}.")
    password: str = Field(description="Password; use ${secret:...}.")


class CallAuth(Model):
    """Credentials of an ad-hoc call (named connections carry their own)."""

    bearer: str | None = Field(None, description="Bearer token, e.g. '${secret:ERP_TOKEN}'.")
    basic: BasicAuth | None = Field(None, description="HTTP basic authentication.")


class HttpCall(Model):
    """An HTTP request; every value may use {{ expression }}, ${env:X} and ${secret:X}."""

    # the editor's snippet and the reference's example
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"method": "POST", "url": "${env:ERP_EU_URL}/sales-orders/{{ order_id }}"}]})

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = Field(
        "POST", description="HTTP method.")
    connection: str | None = Field(None, description="Named connection (connections/NAME.yaml) "
                                   "giving base URL, headers, timeouts, TLS and auth.")
    url: Value | None = Field(None, description="Absolute URL, e.g. "
                              "'${env:ERP_URL}/orders/{{ order_id }}'.")
    path: Value | None = Field(None, description="With connection: the path joined to its "
                               "base URL, e.g. '/sales-orders/{{ order_id }}'.")
    headers: dict[str, Value] = Field(default_factory=dict, description="Request headers.")
    params: dict[str, Value] = Field(default_factory=dict, description="Query parameters.")
    json_: Expr | None = Field(None, alias="json", description="Expression giving the JSON "
                               "body; the message body is sent when no json/body/form is given.")
    body: Value | None = Field(None, description="Raw text body.")
    form: dict[str, Value] | None = Field(None, description="Form-encoded body.")
    auth: CallAuth | None = Field(None, description="Credentials for this call.")
    timeout: Timeouts = Field(default_factory=Timeouts, description="Connect and read timeouts.")
    success: list[HttpStatus] = Field(default_factory=lambda: ["2xx"],  # type: ignore[arg-type]
                                      description="Statuses that count as success.")
    expect: Literal["auto", "json", "text"] = Field(
        "auto", description="Response parsing: auto (by content type), json (error if not "
                            "JSON) or text.")
    idempotency_key: bool | Value = Field(
        True, description="Send Idempotency-Key on POST/PATCH: true (run and step id), false, "
                          "or a value of your own.")
    idempotency_header: str = Field("Idempotency-Key", description="Header carrying the key.")

    @model_validator(mode="after")
    def _target(self) -> HttpCall:
        if self.path is not None and self.connection is None:
            raise ValueError("path: is joined to a connection's base URL; add connection: or "
                             "give a full url:")
        if (self.url is None) == (self.path is None):
            raise ValueError("give url: (a full URL) or connection: with path:")
        if self.connection is not None and self.url is not None:
            # a full URL would take the connection's credentials to whatever host it names
            raise ValueError("with connection: give path: (joined to the connection's "
                             "base_url), not url:")
        if self.connection is not None and self.auth is not None:
            raise ValueError(f"the credentials come from connection '{self.connection}'; "
                             "remove auth: here (or drop connection: and give url:)")
        return self


class SessionPool:
    """One pooled Session per target host, shared by every thread of the process."""

    def __init__(self) -> None:
        self._sessions: dict[str, requests.Session] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> requests.Session:
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                session = requests.Session()
                adapter = HttpAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.trust_env = False  # a proxy from the environment must not reroute calls
                self._sessions[key] = session
            return session


POOL = SessionPool()

# urllib3 logs every request line, query string included, at DEBUG: mask secrets there too
redact_logs("urllib3.connectionpool", "urllib3.connection", "urllib3.poolmanager",
            "urllib3.util.retry")


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def answer(response: requests.Response) -> dict[str, Any]:
    """The partner's answer to a failed call, for the run's error and its dead letter: status,
    selected headers and the body's first `ANSWER_BODY_BYTES` (``truncated`` and ``size`` say
    when it is only the beginning). The runner redacts known secrets in it, as in any error."""
    content = response.content
    truncated = len(content) > ANSWER_BODY_BYTES
    encoding = response.encoding or "utf-8"  # not guessed: that reads the whole body
    try:
        # a character cut in two at the bound is left out rather than shown as garbage
        body = content[:ANSWER_BODY_BYTES].decode(encoding, errors="ignore" if truncated
                                                  else "replace")
    except LookupError:  # an encoding name Python does not know
        body = content[:ANSWER_BODY_BYTES].decode("utf-8", errors="replace")
    headers = {name: value for name, value in response.headers.items()
               if name.lower() in ANSWER_HEADERS
               or name.lower().endswith(ANSWER_HEADER_SUFFIXES)}
    return {"status": response.status_code, "reason": response.reason, "headers": headers,
            "body": body + ("…" if truncated else ""), "truncated": truncated,
            "size": len(content)}


def parse_body(response: requests.Response, expect: str) -> Any:
    content = response.content
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = kind == "application/json" or kind.endswith("+json")
    if expect == "json" or (expect == "auto" and is_json):
        if not content.strip():
            if expect == "json":
                raise StepError("expected a JSON response, got an empty body",
                                kind="invalid_response", status=response.status_code)
            return None
        try:
            return json.loads(content)
        except ValueError as exc:
            raise StepError(f"response is not valid JSON ({exc}); content-type "
                            f"'{kind or 'none'}', first bytes {content[:80]!r}",
                            kind="invalid_response", status=response.status_code) from None
    return response.text


def build(config: HttpCall, ctx: BuildContext) -> StepFn:
    url = compile_url(config.url if config.url is not None else config.path or "", ctx,
                        ("url" if config.url is not None else "path",))
    client = None
    if config.connection is not None:
        client = client_for(ctx, config.connection, ("connection",))
    headers = {k: compile_value(v, ctx, ("headers", k)) for k, v in config.headers.items()}
    params = {k: compile_value(v, ctx, ("params", k)) for k, v in config.params.items()}
    json_body = ctx.expr(config.json_, ("json",)) if config.json_ else None
    raw_body = compile_value(config.body, ctx, ("body",)) if config.body is not None else None
    form = ({k: compile_value(v, ctx, ("form", k)) for k, v in config.form.items()}
            if config.form is not None else None)
    if sum(x is not None for x in (config.json_, config.body, config.form)) > 1:
        ctx.problem((), "give at most one of json, body and form")
    custom_key = (compile_value(config.idempotency_key, ctx, ("idempotency_key",))
                  if not isinstance(config.idempotency_key, bool) else None)
    sends_body = config.method in ("POST", "PUT", "PATCH")
    auth = config.auth
    bearer = compile_value(auth.bearer, ctx, ("auth", "bearer")) if auth and auth.bearer else None
    basic = ((compile_value(auth.basic.username, ctx, ("auth", "basic", "username")),
              compile_value(auth.basic.password, ctx, ("auth", "basic", "password")))
             if auth and auth.basic else None)
    # through a connection, the step's own timeouts replace only the ones they name
    own = {k: getattr(config.timeout, k) for k in config.timeout.model_fields_set} \
        if "timeout" in config.model_fields_set else {}

    def call(envelope: Envelope, resources: Resources) -> Outcome:
        secrets = resources.secrets
        target = str(url(envelope, secrets))
        connection = client() if client is not None else None
        if connection is not None and config.path is not None:
            target = connection.url(target, secrets)
        request_headers = {k: str(render(envelope, secrets)) for k, render in headers.items()}
        request_headers.setdefault("X-Correlation-ID", str(envelope.meta.get("correlation_id", "")))
        if config.method in NOT_IDEMPOTENT and config.idempotency_key is not False:
            # a replay of an unedited message names the run whose effects it repeats
            run = envelope.meta.get("effects_of") or envelope.meta.get("run_id")
            key = (str(custom_key(envelope, secrets)) if custom_key else
                   f"{run}-{envelope.meta.get('step')}")
            request_headers.setdefault(config.idempotency_header, key)
        if bearer:
            request_headers["Authorization"] = f"Bearer {bearer(envelope, secrets)}"
        kwargs: dict[str, Any] = {
            "params": {k: render(envelope, secrets) for k, render in params.items()},
            "headers": request_headers, "allow_redirects": False}
        defaults = connection.timeout if connection is not None else \
            (config.timeout.connect, config.timeout.read)
        kwargs["timeout"] = (own.get("connect", defaults[0]), own.get("read", defaults[1]))
        if basic:
            kwargs["auth"] = (str(basic[0](envelope, secrets)), str(basic[1](envelope, secrets)))
        if json_body is not None:
            kwargs["json"] = json_body.evaluate(envelope)
        elif raw_body is not None:
            try:
                kwargs["data"] = str(raw_body(envelope, secrets)).encode("utf-8")
            except UnicodeError as exc:
                _, message = classify(exc)
                raise StepError(f"{config.method} {target}: {message}",
                                kind="request_invalid") from None
        elif form is not None:
            kwargs["data"] = {k: render(envelope, secrets) for k, render in form.items()}
        elif sends_body:
            kwargs["json"] = envelope.body
        # a transport handed in (`flowrun test` hands in its twin) replaces the pooled one
        transport = resources.transport(HTTP)
        started = time.perf_counter()
        try:
            if connection is not None:  # its own session, default headers and credentials
                response = connection.send(config.method, target, secrets=secrets,
                                           session=transport or connection.session, **kwargs)
            else:
                session = transport or POOL.get(target.split("/", 3)[2] if "://" in target
                                                else target)
                response = session.request(config.method, target, **kwargs)
        except (requests.RequestException, ValueError) as exc:  # UnicodeError is a ValueError
            kind, message = classify(exc)
            raise StepError(f"{config.method} {target}: {message}", kind=kind,
                            retryable=kind not in NOT_RETRYABLE) from None
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise StepError(f"{config.method} {target}: response larger than "
                            f"{MAX_RESPONSE_BYTES} bytes", kind="invalid_response",
                            status=response.status_code)
        if not status_matches(response.status_code, list(config.success)):
            raise StepError(
                f"{config.method} {target} answered {response.status_code} {response.reason}",
                kind="http", retryable=True, status=response.status_code,
                retry_after=retry_after(response.headers.get("retry-after")),
                detail=answer(response))
        resources.log.debug("%s %s → %s in %.1f ms", config.method, target,
                            response.status_code, elapsed)
        return result({"status": response.status_code, "headers": dict(response.headers),
                       "body": parse_body(response, config.expect), "elapsed_ms": elapsed})

    return call


CONNECTOR = StepKind(
    name="http",
    config=HttpCall,
    build=build,
    description="An HTTP request: method, url (or connection and path), headers, params, "
                "json/body/form, auth, timeouts, success statuses. The response is {status, "
                "headers, body} for `output:`.",
    side_effect=True,
)
