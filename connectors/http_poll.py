"""The ``http`` poll source: read a partner's API page by page from the cursor on.

The request is a template (``{{cursor}}``, ``{{slot}}``, ``${secret:X}`` and ``${env:X}`` in url,
params and headers); ``items`` selects the records of a page (the page itself when it is a list);
``paginate`` reaches the next page by a URL in the body, a token, a page number or offset, or
the RFC 8288 ``Link`` header. Every record is handed to ``run.take`` with its metadata (source
url, page, fetched_at) before the next page is asked for. Failures are classified like the
``http`` connector's, for the trigger's retry policy. With ``connection: NAME`` the url is a
path joined to that connection's base URL, and the requests carry its headers, timeouts, TLS
options and credentials.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urljoin

import requests
from pydantic import Field

from connectors.http import POOL, parse_body, retry_after
from connectors.http_connection import client_for
from connectors.http_errors import NOT_RETRYABLE, classify
from engine.plugin import (
    BuildContext,
    Compiled,
    Envelope,
    ExpressionError,
    ExprSpec,
    Model,
    Path,
    PollOutcome,
    PollRun,
    PollSourceKind,
    PollTrigger,
    StepError,
    UnresolvedReference,
    compile_url,
    compile_value,
    cursors,
    redact_known,
    slot_text,
)

log = logging.getLogger("flowrunner.scheduler")

TIMEOUT = (5.0, 30.0)  # connect, read
STYLES = ("next_url", "next_token", "link_header", "page_param", "offset_param")


class HttpSource(Model):
    """``trigger.poll.http``: the request of a poll's first page."""

    method: Literal["GET", "POST"] = Field("GET", description="HTTP method of the poll request.")
    url: str = Field(description="URL; may use ${env:...}, ${secret:...}, {{cursor}} (the cursor "
                                 "minus the lookback) and {{slot}} (the scheduled time).")
    connection: str | None = Field(None, description="Named connection for base URL and auth.")
    params: dict[str, str] = Field(default_factory=dict, description="Query parameters.")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")


class HttpPoll:
    def __init__(self, trigger: PollTrigger, ctx: BuildContext, path: Path):
        self.trigger = trigger
        http: HttpSource = trigger.source_config
        self.method = http.method
        self.url = compile_url(http.url, ctx, (*path, "http", "url"))
        self.params = {k: compile_value(v, ctx, (*path, "http", "params", k))
                       for k, v in http.params.items()}
        self.headers = {k: compile_value(v, ctx, (*path, "http", "headers", k))
                        for k, v in http.headers.items()}
        self.items = ctx.expr(trigger.items, (*path, "items")) if trigger.items else None
        paginate = trigger.paginate
        self.next_url = self.next_token = None
        if paginate is not None:
            self.next_url = _maybe(ctx, paginate.next_url, (*path, "paginate", "next_url"))
            self.next_token = _maybe(ctx, paginate.next_token, (*path, "paginate", "next_token"))
            styles = [s for s in STYLES if getattr(paginate, s) not in (None, False)]
            if len(styles) > 1:
                ctx.problem((*path, "paginate"), f"give one way to reach the next page, not "
                            f"{' and '.join(styles)}")
            if paginate.next_token is not None and not paginate.token_param:
                ctx.problem((*path, "paginate", "next_token"), "next_token needs token_param: "
                            "the query parameter that carries the token")
        # with a connection, url: is a path joined to its base URL, sent with its credentials
        self.client = client_for(ctx, http.connection, (*path, "http", "connection")) \
            if http.connection else None

    # -- one poll ------------------------------------------------------------------------------
    def poll(self, run: PollRun) -> PollOutcome:
        trigger = self.trigger
        request_cursor = run.cursor
        if request_cursor is not None and trigger.cursor and not run.first:
            request_cursor = cursors.minus(request_cursor, trigger.cursor.lookback)
        context = Envelope(body={"cursor": request_cursor, "slot": slot_text(run.slot)})
        try:
            url = str(self.url(context, run.secrets))
            if self.client is not None:
                url = self.client().url(url, run.secrets)
            params = {k: _text(r(context, run.secrets)) for k, r in self.params.items()}
            headers = {k: _text(r(context, run.secrets)) for k, r in self.headers.items()}
        except (UnresolvedReference, ExpressionError) as exc:
            raise StepError(f"the poll request cannot be built: {exc}", kind="config") from None
        paginate = trigger.paginate
        if paginate and paginate.page_param:
            params[paginate.page_param] = "1"
        if paginate and paginate.offset_param:
            params[paginate.offset_param] = "0"
        outcome = PollOutcome(cursor=None)
        offset = 0
        while True:
            response = self._request(url, params, headers, run.secrets)
            outcome.pages += 1
            page = Envelope(body=parse_body(response, "json"),
                            headers={k.lower(): v for k, v in response.headers.items()})
            records = self._records(page)
            fetched_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z")
            for record in records:
                accepted = run.take(record, {"source_url": redact_known(response.url),
                                             "page": outcome.pages,
                                             "fetched_at": fetched_at})
                outcome.records += 1
                outcome.duplicates += bool(getattr(accepted, "duplicate", False))
                if trigger.cursor is not None:
                    value = cursors.value_text(cursors.field_value(record, trigger.cursor.field))
                    outcome.cursor = cursors.later(outcome.cursor, value)
            run.keep_lease()
            if trigger.cursor is not None and trigger.cursor.commit == "page":
                run.commit_cursor(outcome.cursor)  # this page's records are all taken in
            if paginate is None:
                break
            if outcome.pages >= paginate.max_pages:
                log.warning("poll of %s stopped at max_pages=%d; the next poll goes on from the "
                            "cursor", run.flow_id, paginate.max_pages)
                break
            offset += len(records)
            following = self._next(page, response, records, url, params, offset)
            if following is None:
                break
            url, params = following
        return outcome

    def _request(self, url: str, params: dict[str, str], headers: dict[str, str],
                 secrets: Callable[[str], str]) -> requests.Response:
        if self.client is not None and not self.client().owns(url, secrets):
            raise StepError(f"the next page is on another host ({redact_known(url)}); a named "
                            "connection's credentials go only to its base_url's host",
                            kind="config")
        try:
            if self.client is not None:  # its session, timeouts, headers and credentials
                client = self.client()
                response = client.send(self.method, url, secrets=secrets,
                                       session=client.session, params=params,
                                       headers=headers, allow_redirects=False)
            else:
                session = POOL.get(url.split("/", 3)[2] if "://" in url else url)
                response = session.request(self.method, url, params=params, headers=headers,
                                           timeout=TIMEOUT, allow_redirects=False)
        except (requests.RequestException, ValueError) as exc:  # UnicodeError is a ValueError
            kind, message = classify(exc)
            raise StepError(f"{self.method} {url}: {message}", kind=kind,
                            retryable=kind not in NOT_RETRYABLE) from None
        if not 200 <= response.status_code < 300:
            # the URL as sent: an API key in the query must not reach the poll status
            raise StepError(f"{self.method} {redact_known(response.url)} answered "
                            f"{response.status_code} "
                            f"{response.reason}", kind="http", retryable=True,
                            status=response.status_code,
                            retry_after=retry_after(response.headers.get("retry-after")))
        return response

    def _records(self, page: Envelope) -> list[Any]:
        found = page.body if self.items is None else _evaluate(self.items, page)
        if found is None:
            return []
        # JSONata returns a lone match as the item itself, not a list of one
        return list(found) if isinstance(found, list) else [found]

    def _next(self, page: Envelope, response: requests.Response, records: list[Any],
              url: str, params: dict[str, str], offset: int) -> tuple[str, dict[str, str]] | None:
        paginate = self.trigger.paginate
        assert paginate is not None
        if self.next_url is not None:
            target = _evaluate(self.next_url, page)
            # the next URL carries its own query; relative links resolve against this page
            return (urljoin(response.url, str(target)), {}) if target else None
        if self.next_token is not None and paginate.token_param:
            token = _evaluate(self.next_token, page)
            return (url, {**params, paginate.token_param: _text(token)}) if token else None
        if paginate.link_header:
            target = response.links.get("next", {}).get("url")
            return (urljoin(response.url, target), {}) if target else None
        if not records:  # numbered pages and offsets end with an empty page
            return None
        if paginate.page_param:
            number = int(params.get(paginate.page_param, "1")) + 1
            return url, {**params, paginate.page_param: str(number)}
        if paginate.offset_param:
            return url, {**params, paginate.offset_param: str(offset)}
        return None


def _maybe(ctx: BuildContext, spec: ExprSpec | None, path: Path) -> Compiled | None:
    return ctx.expr(spec, path) if spec is not None else None


def _evaluate(expr: Compiled, page: Envelope) -> Any:
    try:
        return expr.evaluate(page)
    except ExpressionError as exc:
        raise StepError(f"poll page: {exc}", kind="expression") from None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def build(trigger: PollTrigger, ctx: BuildContext, path: Path) -> HttpPoll:
    return HttpPoll(trigger, ctx, path)


SOURCE = PollSourceKind(name="http", config=HttpSource, build=build,
                        description="Poll an HTTP API page by page from a cursor, directly or "
                                    "through a named connection.")
