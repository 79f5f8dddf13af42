"""What an MDN says about a message we sent — delivered, or why not — for the synchronous MDN
the ``as2`` step reads and for the asynchronous ones our AS2 endpoint receives later.

An asynchronous MDN is matched to its message by Original-Message-ID among the pending ones
(`connectors.as2.pending`), verified with the partner's certificate and its MIC compared with
ours; the outcome is kept with the pending record, and a receipt that says the partner does
not have the message dead-letters the run that sent it, with the reason.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors.as2.lib import Mdn, Message
from connectors.as2.partners import Materials
from connectors.as2.pending import pending
from connectors.as2.wire import message_id
from engine.records import DeadLetter

if TYPE_CHECKING:
    from engine.app import App

log = logging.getLogger("flowrunner.as2")

#: dispositions that mean the partner has the message (a copy it already had counts)
DELIVERED = ("processed", "processed/warning: duplicate-document")
#: what pyas2lib reports when the answer holds no MDN it can accept
_NOT_AN_MDN = ("mdn-not-found", "Expected signed MDN but unsigned MDN returned")


def verdict(mdn: Mdn, status: str | None, detail: str | None, signed: bool) -> str | None:
    """None when the MDN shows the partner has our message; else the reason, in words."""
    said = f"{status}: {detail}".lower() if detail else (status or "").lower()
    if said in DELIVERED:
        if signed and not _reported_mic(mdn):
            # pyas2lib lets a receipt without a MIC pass; RFC 4130 7.3.1 requires it for a
            # signed message, and without it nothing says the partner got our bytes
            return "the partner's MDN carries no Received-Content-MIC for a signed message"
        return None
    if detail == "Message Integrity check failed.":
        return ("the partner's MDN reports a different MIC than ours: the message was altered "
                "on the way")
    if detail == "original-message-not-found":
        return "the MDN is for another message"
    if detail in _NOT_AN_MDN or str(detail).startswith("Failed to parse received MDN"):
        return f"no valid MDN in the partner's answer: {detail}"
    return f"the partner's MDN is negative: {status}" + (f": {detail}" if detail else "")


def _reported_mic(mdn: Mdn) -> bool:
    for part in mdn.payload.walk() if mdn.payload is not None else ():
        if part.get_content_type() == "message/disposition-notification":
            fields = part.get_payload()[-1]
            return bool(fields.get("Received-Content-MIC", "").strip())
    return False


@dataclass(frozen=True)
class Settled:
    status: int  # the HTTP answer to the partner
    text: str
    outcome: str  # the metrics outcome


def settle(app: App, partner: Materials, raw: bytes, flow_id: str) -> Settled:
    """An asynchronous MDN for a message the ``as2`` step sent; see the module docstring."""
    store = pending(app.services)
    found: dict[str, Any] = {}

    def original(orig_id: str, recipient: str | None) -> Message | None:
        record = store.get(orig_id)
        if record is None or record.get("connection") != partner.name:
            return None
        found.update(record, message_id=orig_id)
        sent = Message(sender=partner.organization, receiver=partner.outbound)
        sent.message_id = orig_id
        sent.mic = record["mic"].encode() if record.get("mic") else None
        return sent

    mdn = Mdn()
    status, detail = mdn.parse(raw, find_message_cb=original)
    if not found:
        orig = message_id(mdn.orig_message_id)[:128]
        log.warning("flow %s: asynchronous MDN for unknown message %s refused", flow_id, orig)
        return Settled(404, f"no message {orig} sent to '{partner.config.as2_id}' is waiting "
                            "for an MDN", "as2_mdn_unmatched")
    reason = verdict(mdn, status, detail, signed=bool(found.get("mic")))
    store.add(found["message_id"], {**found, "mdn": {
        "status": status, "detail": detail, "received_at": time.time(), "reason": reason}})
    if reason is None:
        log.info("flow %s: AS2 message %s (run %s) acknowledged by '%s'", flow_id,
                 found["message_id"], found["run_id"], partner.config.as2_id)
        return Settled(200, "MDN received", "as2_mdn_processed")
    _dead_letter(app, found, f"AS2 message {found['message_id']} to "
                             f"'{partner.config.as2_id}': {reason}")
    return Settled(200, "MDN received", "as2_mdn_negative")


def _dead_letter(app: App, record: dict[str, Any], reason: str) -> None:
    log.error("run %s: %s", record["run_id"], reason)
    state = app.store.get_run(record["run_id"])
    if state is None:
        return
    state.status = "dead_lettered"
    state.error = {"message": reason, "kind": "as2_mdn", "step": record.get("step")}
    app.store.save_run(state, dead_letter=DeadLetter.for_run(state))
