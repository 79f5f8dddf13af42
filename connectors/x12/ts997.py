"""The 997 Functional Acknowledgment: typed view, generation and correlation.

Typed view: ``ak1`` (functional_id, group_control_number, version), ``ak2``
— one entry per acknowledged set with ``set``, ``control_number``, its
``ak3`` segment errors (each with ``ak4`` element errors) and ``ak5``
(status, codes) — and ``ak9`` (status, included, received, accepted, codes).

:func:`ack_views` turns a leniently parsed interchange (``parse(...,
strict=False)``) into one 997 view per received group, mapping the collected
:class:`X12Error` codes to AK3/AK4/AK5/AK9; :func:`correlate` reads a
received 997 back into accepted/rejected statuses per group and set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ErrorSink
from .fields import Field, Item, SetSpec, convert, dictionary, read, segment, text, write

AK1 = (Field("functional_id", 1, "ID"), Field("group_control_number", 2), Field("version", 3))
AK2 = (Field("set", 1, "ID"), Field("control_number", 2), Field("implementation_reference", 3))
AK3 = (
    Field("segment_id", 1, "ID"),
    Field("position", 2, "N0"),
    Field("loop_id", 3),
    Field("code", 4, "ID"),
)
AK4 = (Field("ref", 2), Field("code", 3, "ID"), Field("value", 4))
AK9 = (
    Field("status", 1, "ID"),
    Field("included", 2, "N0"),
    Field("received", 3, "N0"),
    Field("accepted", 4, "N0"),
)
SEGMENTS = dictionary("ST AK1 AK2 AK3 AK4 AK5 AK9 SE")

#: AK501 / AK901 codes in words, for analysts and for correlation results.
STATUS = {
    "A": "accepted",
    "E": "accepted_with_errors",
    "P": "partially_accepted",
    "R": "rejected",
    "M": "rejected",  # message authentication code failed
    "W": "rejected",  # assurance failed validity tests
    "X": "rejected",  # content could not be analyzed
}
ACCEPTING = frozenset({"A", "E"})


def view(items: list[Item], sink: ErrorSink) -> dict[str, Any]:
    out: dict[str, Any] = {}
    current: dict[str, Any] | None = None
    ak3: dict[str, Any] | None = None
    for item in items:
        seg_id, seg = item[1][0], item[1]
        if seg_id == "AK1":
            out["ak1"] = read(item, AK1, sink)
        elif seg_id == "AK2":
            current = read(item, AK2, sink)
            out.setdefault("ak2", []).append(current)
            ak3 = None
        elif seg_id == "AK3" and current is not None:
            ak3 = read(item, AK3, sink)
            current.setdefault("ak3", []).append(ak3)
        elif seg_id == "AK4" and ak3 is not None:
            ak4 = {"position": convert(item, 1, "N0", sink), **read(item, AK4, sink)}
            composite = seg[1] if len(seg) > 1 else ""
            if isinstance(composite, list) and len(composite) > 1 and composite[1].isdigit():
                ak4["component"] = int(composite[1])
            ak3.setdefault("ak4", []).append(ak4)
        elif seg_id == "AK5" and current is not None:
            current["ak5"] = {"status": text(seg, 1), "codes": _codes(seg, 2, 6)}
        elif seg_id == "AK9":
            out["ak9"] = {**read(item, AK9, sink), "codes": _codes(seg, 5, 9)}
    return out


def _codes(seg: list[Any], first: int, last: int) -> list[str]:
    return [c for c in (text(seg, p) for p in range(first, last + 1)) if c]


def build(tx: Mapping[str, Any]) -> list[Any]:
    body = [write("AK1", tx.get("ak1") or {}, AK1)]
    for ack in tx.get("ak2") or []:
        body.append(write("AK2", ack, AK2))
        for ak3 in ack.get("ak3") or []:
            body.append(write("AK3", ak3, AK3))
            for ak4 in ak3.get("ak4") or []:
                position: Any = str(ak4.get("position", ""))
                if ak4.get("component"):
                    position = [position, str(ak4["component"])]
                body.append(segment("AK4", position, *write("AK4", ak4, AK4)[2:]))
        ak5 = ack.get("ak5") or {"status": "A"}
        body.append(segment("AK5", ak5.get("status", ""), *ak5.get("codes", [])[:5]))
    ak9 = tx.get("ak9") or {}
    body.append(write("AK9", ak9, AK9) + list(ak9.get("codes", [])[:5]))
    return body


def ack_views(
    parsed: Mapping[str, Any],
    *,
    include_accepted: bool = True,
    forbidden: str = "",
) -> list[dict[str, Any]]:
    """One 997 typed view per received group (groups of 997s are never acknowledged).

    ``forbidden`` lists the outbound delimiter characters: a copy of bad data
    (AK404) containing one of them is left out rather than corrupting the 997.
    """
    errors: list[Mapping[str, Any]] = list(parsed.get("errors") or [])
    versions: list[dict[str, Any]] = []
    for gi, group in enumerate(parsed.get("groups") or []):
        if group.get("functional_id") == "FA":
            continue
        group_errors = [e for e in errors if e.get("group_index") == gi]
        ak2s: list[dict[str, Any]] = []
        accepted = 0
        transactions = group.get("transactions") or []
        for ti, tx in enumerate(transactions):
            tx_errors = [e for e in group_errors if e.get("transaction_index") == ti]
            ack = _set_ack(tx, tx_errors, forbidden)
            if ack["ak5"]["status"] in ACCEPTING:
                accepted += 1
            if include_accepted or ack["ak5"]["status"] not in ACCEPTING:
                ak2s.append(ack)
        group_codes = _unique(
            e["code"]
            for e in group_errors
            if e.get("level") == "group" and e.get("code") and e.get("transaction_index") is None
        )
        received = len(transactions)
        status = "R" if group_codes or accepted == 0 else "A" if accepted == received else "P"
        ge = group.get("ge") or []
        included = int(ge[1]) if len(ge) > 1 and str(ge[1]).isdigit() else received
        view_: dict[str, Any] = {
            "set": "997",
            "ak1": {
                "functional_id": group.get("functional_id", ""),
                "group_control_number": group.get("control_number", ""),
            },
            "ak2": ak2s,
            "ak9": {
                "status": status,
                "included": included,
                "received": received,
                "accepted": accepted,
                "codes": group_codes[:5],
            },
        }
        if str(group.get("version", "")) >= "005010":
            # AK103 (version of the acknowledged group) exists from 005010 on.
            view_["ak1"]["version"] = group["version"]
        versions.append(view_)
    return versions


def _set_ack(
    tx: Mapping[str, Any], tx_errors: list[Mapping[str, Any]], forbidden: str
) -> dict[str, Any]:
    ak3_by_segment: dict[int, dict[str, Any]] = {}
    for err in tx_errors:
        if err.get("level") not in ("segment", "element") or err.get("set_position") is None:
            continue
        pos = int(err["set_position"])
        entry = ak3_by_segment.setdefault(
            pos, {"segment_id": err.get("segment_id") or "", "position": pos}
        )
        if err["level"] == "segment":
            entry["code"] = err.get("code") or "8"
            continue
        entry.setdefault("code", "8")  # AK304 8: segment has data element errors
        ak4: dict[str, Any] = {
            "position": err.get("element_index") or 0,
            "code": err.get("code") or "6",
        }
        value = err.get("value")
        if value and len(value) <= 99 and not any(ch in value for ch in forbidden):
            ak4["value"] = value
        entry.setdefault("ak4", []).append(ak4)
    set_codes = _unique(e["code"] for e in tx_errors if e.get("level") == "set" and e.get("code"))
    if ak3_by_segment and "5" not in set_codes:
        set_codes.append("5")  # AK502 5: one or more segments in error
    status = "R" if (set_codes or ak3_by_segment) else "A"
    ack: dict[str, Any] = {"set": tx.get("set", ""), "control_number": tx.get("control_number", "")}
    if ak3_by_segment:
        ack["ak3"] = [ak3_by_segment[p] for p in sorted(ak3_by_segment)]
    ack["ak5"] = {"status": status, "codes": set_codes[:5]}
    return ack


def _unique(codes: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(codes))


def correlate(
    parsed_997: Mapping[str, Any], sent: Iterable[Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Acknowledged groups and sets with their statuses.

    Each result names the group (``functional_id``, ``group_control_number``),
    its ``status``/``code``/``accepted`` and a ``sets`` list of
    ``{set, control_number, status, code, accepted, errors}``.  With ``sent``
    (parsed documents we sent), groups are matched by partner, functional id
    and control number (``matched``) and sets the partner did not list in AK2 —
    allowed when they were accepted — are filled in from what we sent
    (``implicit: true``), accepted unless the whole group was rejected.
    """
    interchange = parsed_997.get("interchange") or {}
    partner = f"{interchange.get('sender_qualifier', '')}:{interchange.get('sender_id', '')}"
    # Control numbers are unique per partner only, so just our interchanges to
    # the partner that sent this 997 are candidates.
    sent_groups = {
        (g.get("functional_id"), _number(g.get("control_number"))): g
        for doc in sent or []
        if _receiver(doc) == partner
        for g in doc.get("groups") or []
    }
    results: list[dict[str, Any]] = []
    for group in parsed_997.get("groups") or []:
        for tx in group.get("transactions") or []:
            if tx.get("set") != "997":
                continue
            ak1, ak9 = tx.get("ak1") or {}, tx.get("ak9") or {}
            code = str(ak9.get("status", ""))
            sets = [_set_status(ack) for ack in tx.get("ak2") or []]
            result: dict[str, Any] = {
                "functional_id": ak1.get("functional_id", ""),
                "group_control_number": ak1.get("group_control_number", ""),
                "status": STATUS.get(code, "unknown"),
                "code": code,
                "accepted": code in ACCEPTING,
                "codes": ak9.get("codes", []),
                "partner": partner,
                "ack_control_number": tx.get("control_number"),
                "sets": sets,
            }
            if sent is not None:
                key = (result["functional_id"], _number(result["group_control_number"]))
                ours = sent_groups.get(key)
                result["matched"] = ours is not None
                if ours is not None:
                    listed = {_number(s["control_number"]) for s in sets}
                    for our_tx in ours.get("transactions") or []:
                        if _number(our_tx.get("control_number")) not in listed:
                            implied = "R" if code == "R" else "A"
                            sets.append(
                                {
                                    "set": our_tx.get("set"),
                                    "control_number": our_tx.get("control_number"),
                                    "status": STATUS[implied],
                                    "code": implied,
                                    "accepted": implied == "A",
                                    "errors": [],
                                    "implicit": True,
                                }
                            )
            results.append(result)
    return results


def _set_status(ack: Mapping[str, Any]) -> dict[str, Any]:
    ak5 = ack.get("ak5") or {}
    code = str(ak5.get("status", ""))
    return {
        "set": ack.get("set"),
        "control_number": ack.get("control_number"),
        "status": STATUS.get(code, "unknown"),
        "code": code,
        "accepted": code in ACCEPTING,
        "codes": ak5.get("codes", []),
        "errors": ack.get("ak3", []),
    }


def _receiver(doc: Mapping[str, Any]) -> str:
    interchange = doc.get("interchange") or {}
    return f"{interchange.get('receiver_qualifier', '')}:{interchange.get('receiver_id', '')}"


def _number(value: Any) -> Any:
    """Control numbers compare numerically: "0001" and 1 are the same set."""
    if isinstance(value, int):
        return value
    text_ = str(value or "")
    return int(text_) if text_.isdigit() else text_


SPEC = SetSpec("997", "FA", SEGMENTS, view, build)
