"""997 generation for a received interchange and correlation of received 997s.

The mapping of validation errors to AK3/AK4/AK5/AK9 lives in :mod:`.ts997`;
this module adds the envelope: the 997 goes back from the receiver to the
sender of the original interchange, by default in the same X12 version and
with the partner's own delimiters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from .control_numbers import ControlNumbers
from .envelope import interchanges
from .errors import X12Error
from .render import build_interchange
from .tokenize import Delimiters
from .ts997 import ack_views, correlate


def generate_997(
    parsed: Mapping[str, Any],
    control_numbers: ControlNumbers,
    *,
    include_accepted: bool = True,
    delimiters: Mapping[str, Any] | None = None,
    version: str | None = None,
    gs_version: str | None = None,
    usage_indicator: str | None = None,
    now: datetime | None = None,
    partner: str | None = None,
) -> str:
    """Render a 997 interchange acknowledging every group of ``parsed``.

    Parse the received interchange with ``strict=False`` so that its errors
    are collected and reported (strictly parsed documents are error-free and
    get an all-accepted 997).  ``include_accepted=False`` lists only rejected
    sets in AK2, a convention some partners ask for.  A parsed file of several
    interchanges gets one 997 interchange per received interchange (each goes
    back to its own sender), one after the other in the returned text.
    """
    several = "interchanges" in parsed
    answered = [
        _ack_one(one, control_numbers, include_accepted, delimiters, version, gs_version,
                 usage_indicator, now, partner)
        for one in (parsed["interchanges"] if several else [parsed])
    ]
    if not any(answered):
        reason = ("no interchange has a non-997 group" if several
                  else "the interchange has no non-997 group")
        raise X12Error(f"nothing to acknowledge: {reason}", level="interchange")
    return "".join(a for a in answered if a)


def _ack_one(
    parsed: Mapping[str, Any],
    control_numbers: ControlNumbers,
    include_accepted: bool,
    delimiters: Mapping[str, Any] | None,
    version: str | None,
    gs_version: str | None,
    usage_indicator: str | None,
    now: datetime | None,
    partner: str | None,
) -> str | None:
    interchange = parsed["interchange"]
    delims = Delimiters.from_dict(dict(delimiters or interchange.get("delimiters") or {}))
    forbidden = delims.element + delims.component + delims.segment + (delims.repetition or "")
    views = ack_views(parsed, include_accepted=include_accepted, forbidden=forbidden)
    groups = [g for g in parsed.get("groups") or [] if g.get("functional_id") != "FA"]
    if not views or not groups:
        return None
    first = groups[0]
    # Roles swap: we answer as the original receiver, to the original sender.
    sender = {
        "qualifier": interchange["receiver_qualifier"],
        "id": interchange["receiver_id"],
        "application_id": first.get("receiver") or interchange["receiver_id"],
    }
    receiver = {
        "qualifier": interchange["sender_qualifier"],
        "id": interchange["sender_id"],
        "application_id": first.get("sender") or interchange["sender_id"],
    }
    return build_interchange(
        views,
        sender=sender,
        receiver=receiver,
        control_numbers=control_numbers,
        version=version or interchange.get("version") or "00401",
        gs_version=gs_version or first.get("version") or None,
        usage_indicator=usage_indicator or interchange.get("usage_indicator") or "P",
        delimiters=delims,
        now=now,
        partner=partner,
    )


def correlate_997(
    parsed_997: Mapping[str, Any], sent: Iterable[Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Acknowledged group/set control numbers with accepted/rejected status.

    See :func:`connectors.x12.ts997.correlate` for the result shape.  Either side
    may be a parsed file of several interchanges.
    """
    ours = None if sent is None else [one for doc in sent for one in interchanges(doc)]
    return [r for one in interchanges(parsed_997) for r in correlate(one, ours)]
