"""The AS2 endpoint: ``trigger: {webhook: {path: /as2/acme, as2: {partner: acme_as2}}}``.

A request goes, in order: rate limit (429) → size limit (413) → AS2-From and AS2-To, which must
name the partner of the connection and us (403: no MDN is made for a stranger) → decrypt,
verify the signature and compute the MIC (pyas2lib) → decode the payload → intake, idempotent
on the AS2 Message-Id → only once recorded, the MDN: in the response (sync), or posted to the
partner's Receipt-Delivery-Option URL after the response (async). A message that cannot be
decrypted or verified, or whose payload cannot be decoded, is answered with a negative MDN
naming the reason and records nothing; a 400 with the reason instead when the partner asked
for no MDN, or for an asynchronous one for a message that did not verify (its
Receipt-Delivery-Option header is covered by no signature, so it does not pick where this
server posts). A message that cannot be recorded is answered 503 without an MDN, so the partner
sends it again; a message sent again after it was recorded gets its positive MDN again.

The same URL takes the asynchronous MDNs of what the ``as2`` step sent this partner; they are
settled by `connectors.as2.receipts`.
"""

from __future__ import annotations

import email
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from connectors.as2.connection import As2Connection
from connectors.as2.lib import Mdn, Message
from connectors.as2.partners import Materials, materials
from connectors.as2.receipts import settle
from connectors.as2.wire import as2_name, http_headers, message_id, raw_message
from connectors.http_errors import classify
from engine.plugin import (
    CLIENT_CLOSED,
    RETRY_AFTER_UNAVAILABLE,
    Answer,
    HookEndpoint,
    RecordError,
    bind,
    correlation_id,
    record_headers,
)

if TYPE_CHECKING:
    from engine.plugin import App, CompiledFlow

log = logging.getLogger("flowrunner.as2")

MDN_TIMEOUT = (5.0, 30.0)  # connect, read: posting an asynchronous MDN


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _text(status: int, message: str, **headers: str) -> Reply:
    return Reply(status, (message + "\n").encode(), {"Content-Type": "text/plain", **headers})


def endpoint_options(app: App, flow: CompiledFlow, partner: str) -> Materials:
    """The partner connection of an AS2 trigger, read into pyas2lib's objects."""
    connections = app.loader.connections(flow.file)
    found = connections.found.get(partner)
    config = getattr(found, "as2", None)  # the file's model holds a key per registered kind
    if not isinstance(config, As2Connection):  # the loader named it already; say it again here
        raise ValueError(f"no as2 connection '{partner}'")
    return materials(partner, config, connections.folder, app.secrets)


class As2Endpoint(HookEndpoint):
    """The handler of one AS2 route; see the module docstring."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send,
                       params: dict[str, str]) -> None:
        started = time.perf_counter()
        headers = Headers(scope=scope)
        cid = correlation_id(headers)
        status = 500
        try:
            with bind(flow=self.flow_id, correlation_id=cid):
                reply = await self._handle_as2(scope, receive, headers, cid, params)
                status = reply.status
                if status == CLIENT_CLOSED:
                    return
                raw = [(k.lower().encode("latin-1"), v.encode("latin-1", "replace"))
                       for k, v in reply.headers.items()]
                raw += [(b"content-length", str(len(reply.body)).encode()),
                        (b"x-correlation-id", cid.encode("latin-1"))]
                await send({"type": "http.response.start", "status": status, "headers": raw})
                await send({"type": "http.response.body", "body": reply.body})
        finally:
            self.metrics.response(self.flow_id, status, time.perf_counter() - started)

    @property
    def partner(self) -> Materials:
        found: Materials = self.hook.options
        return found

    def _count(self, outcome: str) -> None:
        self.metrics.webhook(self.flow_id, outcome)

    async def _handle_as2(self, scope: Scope, receive: Receive, headers: Headers, cid: str,
                          params: dict[str, str]) -> Reply:
        partner = self.partner
        try:
            body = await self.admit_raw(receive, headers)
        except Answer as answer:
            self._count(answer.outcome)
            return _text(answer.status, answer.error, **answer.headers)
        except ConnectionResetError:
            self._count("disconnected")
            return Reply(CLIENT_CLOSED)
        as2_from, as2_to = as2_name(headers.get("as2-from")), as2_name(headers.get("as2-to"))
        if not as2_from or not as2_to:
            self._count("malformed")
            return _text(400, "not an AS2 message: the AS2-From and AS2-To headers are required")
        if not partner.matches(as2_from, as2_to):
            self._count("as2_unknown_partner")
            log.warning("flow %s: AS2 message from '%s' to '%s' refused: this endpoint takes "
                        "'%s' to '%s' only", self.flow_id, as2_from[:64], as2_to[:64],
                        partner.config.as2_id, partner.config.local.as2_id)
            return _text(403, f"unknown trading partner: this endpoint takes messages from "
                              f"'{partner.config.as2_id}' to '{partner.config.local.as2_id}', "
                              f"not from '{as2_from[:64]}' to '{as2_to[:64]}'")
        items = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        raw = raw_message(items, body)
        if _is_mdn(headers.get("content-type", ""), raw):
            settled = await run_in_threadpool(settle, self.app, partner, raw, self.flow_id)
            self._count(settled.outcome)
            return _text(settled.status, settled.text)
        if not message_id(headers.get("message-id")):
            # the Message-Id is what a copy sent again is recognised by
            self._count("malformed")
            return _text(400, "not an AS2 message: the Message-ID header is required")
        message = Message()
        status, (error, _), mdn = await run_in_threadpool(
            message.parse, raw, find_org_partner_cb=lambda org, who: (
                partner.organization, partner.inbound))
        if status != "processed":
            reason = _reason(status, error)
            self._count("as2_refused")
            log.warning("flow %s: AS2 message %s from '%s' refused: %s", self.flow_id,
                        message_id(message.message_id)[:128], as2_from, reason)
            if mdn is not None and mdn.mdn_mode == "ASYNC":
                # Receipt-Delivery-Option is an HTTP header no signature covers: a message that
                # did not verify does not choose where this server posts
                return _text(400, f"AS2 message refused: {reason}; no asynchronous MDN is "
                                  "sent for a message that cannot be verified")
            return await self._answer(mdn, 400, f"AS2 message refused: {reason}")
        request = {"path": scope["path"], "params": params, "query": {},
                   "as2": _meta(message, as2_from, as2_to)}
        return await self._record(message, mdn, record_headers(items, self.app.settings),
                                  cid, request)

    async def _record(self, message: Message, mdn: Mdn | None, headers: dict[str, str],
                      cid: str, request: dict[str, Any]) -> Reply:
        """A message that verified: its payload recorded as a run, then the MDN."""
        encoding = self.hook.trigger.as2.encoding  # type: ignore[union-attr]
        try:
            text = (message.content or b"").decode(encoding)
        except UnicodeDecodeError as exc:
            return await self._refuse(message, mdn, f"the payload is not {exc.encoding} text "
                                                    f"(byte {exc.start}); set as2.encoding "
                                                    "on the trigger")
        as2_from = request["as2"]["from"]
        try:
            accepted = await self.accept(text, headers, cid, request,
                                         key=f"as2:{as2_from}:{message.message_id}")
        except (RecordError, RecursionError) as exc:
            return await self._refuse(message, mdn, f"the message cannot be recorded: {exc}")
        except Exception as exc:
            log.error("flow %s: AS2 message %s not recorded: %s", self.flow_id,
                      message.message_id, self.app.secrets.redactor.text(str(exc)))
            self._count("unavailable")
            return _text(503, "the message could not be recorded; send it again later",
                         **{"Retry-After": str(RETRY_AFTER_UNAVAILABLE)})
        self._count("duplicate" if accepted.duplicate else "accepted")
        log.info("flow %s: AS2 message %s from '%s' recorded as run %s%s", self.flow_id,
                 message.message_id, as2_from, accepted.run_id,
                 " (sent again)" if accepted.duplicate else "")
        return await self._answer(mdn, 200, f"received; run {accepted.run_id}",
                                  {"X-Run-ID": accepted.run_id})

    async def _refuse(self, message: Message, mdn: Mdn | None, reason: str) -> Reply:
        self._count("as2_refused")
        log.warning("flow %s: AS2 message %s refused: %s", self.flow_id, message.message_id,
                    reason)
        if mdn is not None:
            await run_in_threadpool(mdn.build, message=message, status="processed/Error",
                                    detailed_status="unexpected-processing-error")
        return await self._answer(mdn, 400, f"AS2 message refused: {reason}")

    async def _answer(self, mdn: Mdn | None, status: int, text: str,
                      extra: dict[str, str] | None = None) -> Reply:
        """The MDN in the response (sync) or posted after it (async); *text* without one."""
        if mdn is None:
            return _text(status, text, **(extra or {}))
        headers = http_headers(mdn.headers)
        if mdn.mdn_mode == "ASYNC" and mdn.mdn_url:
            threading.Thread(target=self._post_mdn, args=(mdn.mdn_url, headers, mdn.content),
                             name="flowrun-as2-mdn", daemon=True).start()
            return _text(200, text + "; the MDN follows", **(extra or {}))
        return Reply(200, mdn.content, {**headers, **(extra or {})})

    def _post_mdn(self, url: str, headers: dict[str, str], content: bytes) -> None:
        """One attempt: a partner that does not get its MDN sends the message again, and the
        copy is answered with the MDN again."""
        if not url.lower().startswith(("http://", "https://")):
            log.warning("flow %s: asynchronous MDN not sent: '%s' is not an http(s) URL",
                        self.flow_id, url[:128])
            return
        try:
            response = self.partner.session.post(url, data=content, headers=headers,
                                                 timeout=MDN_TIMEOUT, allow_redirects=False)
        except (requests.RequestException, ValueError) as exc:
            log.warning("flow %s: asynchronous MDN to %s not delivered: %s", self.flow_id,
                        url, classify(exc)[1])
            return
        if response.status_code >= 300:
            log.warning("flow %s: asynchronous MDN to %s answered %s", self.flow_id, url,
                        response.status_code)
        else:
            log.info("flow %s: asynchronous MDN delivered to %s", self.flow_id, url)


def _is_mdn(content_type: str, raw: bytes) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    if kind == "multipart/signed":  # a signed MDN, or a message signed but not encrypted
        return any(part.get_content_type() == "multipart/report"
                   for part in email.message_from_bytes(raw).walk())
    return kind == "multipart/report"


def _reason(status: str, error: BaseException | None) -> str:
    modifier = getattr(error, "disposition_modifier", "") or "unexpected-processing-error"
    text = str(error) if error is not None else ""
    return f"{status}: {modifier}" + (f" ({text})" if text and text != modifier else "")


def _meta(message: Message, as2_from: str, as2_to: str) -> dict[str, Any]:
    disposition = message.payload.get("content-disposition") if message.payload else None
    filename = None
    if disposition:
        part = email.message.Message()
        part["content-disposition"] = disposition
        filename = part.get_filename()
    return {"message_id": message.message_id, "from": as2_from, "to": as2_to,
            "filename": filename, "subject": message.headers.get("subject"),
            "signed": message.signed, "encrypted": message.encrypted,
            "compressed": message.compressed, "digest": message.digest_alg,
            "mic": message.mic.decode() if message.mic else None}
