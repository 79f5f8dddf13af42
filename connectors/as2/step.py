"""The ``as2`` step: send the body to a trading partner over AS2 and check its receipt.

::

    - id: send_997
      as2:
        connection: acme_as2                 # connections/acme_as2.yaml (as2:)
        filename: "997_{{ $vars.control }}.edi"

The payload (the body, or ``content``; text is encoded in ``encoding``) is compressed, signed
and encrypted as the connection says, and posted to the partner's URL. The Message-Id is made
from the run and the step, so every retry of the step sends the same message and a partner
that already took it recognises the copy. The MDN the connection asks for is checked:

- ``sync``: the receipt is in the response; it must be signed when ``mdn_sign`` asks so, its
  signature must verify with the partner's certificate and its MIC must equal ours. A negative
  MDN or a MIC that differs fails the step, not retried: the run is dead-lettered with the
  reason. (A copy the partner reports as a duplicate counts as delivered.)
- ``async``: the message is recorded as waiting (`connectors.as2.pending`) and the step goes
  on; the receipt, posted later to our AS2 endpoint, settles it there.

A refused or broken connection, a timeout and a 5xx are retried by the flow's retry policy
(the connector itself never retries). In ``flowrun test`` the step posts the payload in the
clear to the case's mocks (``mocks: [{step: send_997, responses: [{status: 200}]}]``), needs no
keys, and checks no MDN (``mdn: "mocked"``). The step's result, for ``output:``, is
``{message_id, mic, mdn: {status, detail} | "pending" | null}``.
"""

from __future__ import annotations

import re
import time
from typing import Any

import requests
from pydantic import Field

from connectors.as2.lib import AS2Exception, ImproperlyConfigured, Mdn, Message
from connectors.as2.partners import Materials, materials
from connectors.as2.pending import pending
from connectors.as2.receipts import verdict
from connectors.as2.wire import http_headers, raw_message
from connectors.http import retry_after
from connectors.http_errors import NOT_RETRYABLE, classify
from engine.plugin import (
    DELIVER,
    BuildContext,
    Deliver,
    Encoding,
    Envelope,
    Expr,
    Model,
    Outcome,
    Resources,
    StepError,
    StepFn,
    StepKind,
    UnresolvedReference,
    Value,
    compile_value,
    interpolate_url,
    result,
)

_ID_PART = re.compile(r"[^A-Za-z0-9._-]+")


class As2Send(Model):
    connection: str = Field(description="Named AS2 connection (connections/NAME.yaml, as2:).")
    content: Expr | None = Field(None, description="Expression giving the payload; the body "
                                                   "if omitted.")
    filename: Value | None = Field(None, description="File name the partner sees; may use "
                                                     "{{ expression }}.")
    subject: Value = Field("AS2 Message", description="Subject header of the message.")
    content_type: str = Field("application/edi-x12", description="Media type of the payload: "
                              "application/edi-x12, application/edifact, application/xml, ...")
    encoding: Encoding = Field("utf-8", description="How a text payload is encoded.")


def build(config: As2Send, ctx: BuildContext) -> StepFn:
    connections = ctx.service("connections")
    if connections is None:
        ctx.problem(("connection",), f"no connection '{config.connection}': named connections "
                                     "are not loaded here")
        found = None
    else:
        found = connections.lookup(config.connection, "as2", ctx, ("connection",))
    if found is not None and found.url is None:
        ctx.problem(("connection",), f"connection '{config.connection}' has no url: to send to")
    content = ctx.expr(config.content, ("content",)) if config.content is not None else None
    filename = compile_value(config.filename, ctx, ("filename",)) \
        if config.filename is not None else None
    subject = compile_value(config.subject, ctx, ("subject",))

    def partner(resources: Resources) -> Materials:
        assert found is not None  # the loader refused the flow otherwise
        try:
            made: Materials = connections.runtime(
                config.connection, "as2",
                lambda: materials(config.connection, found, connections.folder,
                                  resources.secrets))
            return made
        except ValueError as exc:
            raise StepError(str(exc), kind="config") from None

    def as2(envelope: Envelope, resources: Resources) -> Outcome:
        value = content.evaluate(envelope) if content is not None else envelope.body
        data = _payload(value, config.encoding)
        run = envelope.meta.get("effects_of") or envelope.meta.get("run_id") or "run"
        left = _ID_PART.sub("-", f"{run}.{envelope.meta.get('step', 'as2')}")
        name = str(filename(envelope, resources.secrets)) if filename is not None else None
        # a delivery twin handed in (flowrun test): the payload goes to the case's mocks in the
        # clear, since no partner keys exist there and a mocked answer carries no MDN; an HTTP
        # transport handed in never changes how a real message is sent
        handed = resources.transport(DELIVER)
        if handed is not None:
            return _mocked(handed, config, found, left, name, data)
        sender = partner(resources)
        message = Message(sender=sender.organization, receiver=sender.outbound)
        try:
            url = interpolate_url(sender.config.url or "", resources.secrets)
        except UnresolvedReference as exc:
            raise StepError(f"connection '{config.connection}': url: {exc}",
                            kind="config") from None
        try:
            message.build(data, filename=name,
                          subject=str(subject(envelope, resources.secrets)),
                          content_type=config.content_type, message_id=left,
                          disposition_notification_to=f"{sender.config.local.as2_id}@as2")
        except (AS2Exception, ImproperlyConfigured, ValueError) as exc:
            raise StepError(f"as2: the message to '{sender.config.as2_id}' cannot be built: "
                            f"{exc}", kind="config") from None
        mic = message.mic.decode() if message.mic else None
        out: dict[str, Any] = {"message_id": message.message_id, "mic": mic, "mdn": None}
        if sender.config.mdn == "async":
            # before the post: a partner may send the MDN before it answers the post itself
            pending(resources.services).add(message.message_id, {
                "run_id": envelope.meta.get("run_id"), "flow": envelope.meta.get("flow"),
                "step": envelope.meta.get("step"), "connection": config.connection,
                "mic": mic, "sent_at": time.time()})
            out["mdn"] = "pending"
        response = _post(url, message, sender)
        if sender.config.mdn == "sync":
            out["mdn"] = _check_mdn(response, message, sender, url)
        resources.log.info("as2: message %s sent to '%s' (%d bytes), MDN %s",
                           message.message_id, sender.config.as2_id, len(data),
                           out["mdn"] if isinstance(out["mdn"], str | None)
                           else out["mdn"]["status"])
        return result(out)

    return as2


def _mocked(deliver: Deliver, config: As2Send, found: Any, left: str,
            name: str | None, data: bytes) -> Outcome:
    """In `flowrun test`: the payload in the clear to the case's mocks, no keys needed; a
    mocked answer cannot carry a signed MDN, so none is checked (``mdn: "mocked"``)."""
    url = f"as2://{config.connection}"
    headers = {"AS2-From": found.local.as2_id, "AS2-To": found.as2_id,
               "Message-ID": f"<{left}@mock>", "Content-Type": config.content_type}
    if name:
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    _status(deliver(url, data, headers), url)
    return result({"message_id": f"{left}@mock", "mic": None, "mdn": "mocked"})


def _status(response: requests.Response, url: str) -> None:
    if not 200 <= response.status_code < 300:
        raise StepError(f"as2 POST {url} answered {response.status_code} {response.reason}: "
                        f"{response.text[:300]}", kind="http", retryable=True,
                        status=response.status_code,
                        retry_after=retry_after(response.headers.get("retry-after")))


def _payload(value: Any, encoding: str) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if not isinstance(value, str):
        raise StepError(f"as2: the payload is {type(value).__name__}, not text; render it "
                        "first (x12: {render: {}}) or name the text with content:",
                        kind="validation")
    try:
        return value.encode(encoding)
    except UnicodeEncodeError as exc:
        raise StepError(f"as2: the payload cannot be encoded as {encoding} "
                        f"({value[exc.start:exc.end]!r})", kind="validation") from None


def _post(url: str, message: Message, sender: Materials) -> requests.Response:
    config = sender.config
    headers = http_headers(message.headers)
    try:
        response = sender.session.post(url, data=message.content, headers=headers,
                                       timeout=(config.timeout.connect, config.timeout.read),
                                       allow_redirects=False)
    except (requests.RequestException, ValueError) as exc:
        kind, text = classify(exc)
        raise StepError(f"as2 POST {url}: {text}", kind=kind,
                        retryable=kind not in NOT_RETRYABLE) from None
    _status(response, url)
    return response


def _check_mdn(response: requests.Response, message: Message, sender: Materials,
               url: str) -> dict[str, Any]:
    raw = raw_message(response.headers.items(), response.content)
    ours = message.message_id
    mdn = Mdn()
    status, detail = mdn.parse(raw, find_message_cb=lambda orig_id, recipient:
                               message if orig_id == ours else None)
    reason = verdict(mdn, status, detail, signed=message.mic is not None)
    outcome = {"status": status, "detail": detail}
    if reason is None:
        return outcome
    raise StepError(f"as2 message {ours} to '{sender.config.as2_id}' ({url}): {reason}",
                    kind="as2_mdn", detail=outcome)


STEP = StepKind(
    name="as2",
    config=As2Send,
    build=build,
    description="Send the body to an AS2 trading partner (signed, encrypted, compressed as "
                "its connection says) and check the MDN: a negative one dead-letters.",
    side_effect=True,
    default_output=None,
)
