"""Rendering: parsed documents back to X12, and outbound interchanges from typed views.

:func:`render` writes the generic segments exactly as they are (parse →
render is byte for byte); it only re-pads the fixed-width ISA and writes the
document's delimiters into ISA11/ISA16, so editing ``delimiters`` re-delimits
a document.  :func:`build_document` / :func:`build_interchange` assemble new
envelopes around typed views: they draw control numbers, group sets by
functional id, count segments for SE01/GE01/IEA01 and pad the ISA.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .control_numbers import ControlNumbers
from .errors import X12Error
from .tokenize import ISA_WIDTHS, Delimiters, Segment, join_segment


def render(doc: Mapping[str, Any], *, recount: bool = False) -> str:
    """Render a document from its generic segments.

    ``recount=True`` rewrites SE01, GE01 and IEA01 from the actual counts,
    for documents whose segments were edited; control numbers are left alone.
    A parsed file of several interchanges renders them one after the other.
    """
    if "interchanges" in doc:
        return "".join(render(one, recount=recount) for one in doc["interchanges"])
    interchange = doc["interchange"]
    delims = Delimiters.from_dict(interchange.get("delimiters"))
    delims.check_distinct()
    segments: list[Segment] = [_isa(interchange["isa"], delims)]
    segments.extend(interchange.get("ta1") or [])
    groups = doc.get("groups") or []
    for group in groups:
        segments.append(group["gs"])
        transactions = group.get("transactions") or []
        for tx in transactions:
            tx_segments = list(tx["segments"])
            if recount and tx_segments and tx_segments[-1][0] == "SE":
                tx_segments[-1] = _with(tx_segments[-1], 1, str(len(tx_segments)))
            segments.extend(tx_segments)
        if group.get("ge"):
            ge = group["ge"]
            segments.append(_with(ge, 1, str(len(transactions))) if recount else ge)
    iea = interchange.get("iea")
    if iea:
        segments.append(_with(iea, 1, str(len(groups))) if recount else iea)
    trailing = interchange.get("trailing", delims.suffix)
    parts = [join_segment(seg, delims, n) for n, seg in enumerate(segments, start=1)]
    separator = delims.segment + delims.suffix
    return separator.join(parts) + delims.segment + trailing


def _with(seg: Segment, position: int, value: str) -> Segment:
    out = list(seg)
    out += [""] * (position + 1 - len(out))
    out[position] = value
    return out


def _isa(isa: Sequence[Any], delims: Delimiters) -> Segment:
    if len(isa) != 17 or isa[0] != "ISA":
        raise X12Error(f"ISA needs 16 elements, got {len(isa) - 1}", 1, "ISA")
    values = [str(v) for v in isa[1:]]
    if delims.repetition is not None:
        values[10] = delims.repetition
    values[15] = delims.component
    for number, (value, width) in enumerate(zip(values, ISA_WIDTHS, strict=True), start=1):
        if len(value) > width:
            raise X12Error(f"{value!r} is longer than {width} characters", 1, "ISA", number)
        # Numeric ISA fields are zero-filled, the identifiers space-padded.
        values[number - 1] = value.zfill(width) if number == 13 else value.ljust(width)
    return ["ISA", *values]


def party(value: str | Mapping[str, Any], role: str) -> dict[str, str]:
    """``"ZZ:ACME"``, ``"ACME"`` (qualifier ZZ) or ``{"qualifier", "id", "application_id"}``."""
    if isinstance(value, str):
        qualifier, sep, ident = value.partition(":")
        value = {"qualifier": qualifier, "id": ident} if sep else {"id": value}
    ident = str(value.get("id") or "")
    qualifier = str(value.get("qualifier") or "ZZ")
    if not ident or len(ident) > 15 or len(qualifier) != 2:
        raise X12Error(
            f"{role} needs a 2-character qualifier and an id of 1-15 characters, "
            f"got {qualifier!r}:{ident!r}",
            level="interchange",
        )
    return {
        "qualifier": qualifier,
        "id": ident,
        "application_id": str(value.get("application_id") or ident),
    }


def build_document(
    transactions: Sequence[Mapping[str, Any]],
    *,
    sender: str | Mapping[str, Any],
    receiver: str | Mapping[str, Any],
    control_numbers: ControlNumbers,
    version: str = "00401",
    gs_version: str | None = None,
    usage_indicator: str = "P",
    ack_requested: bool = False,
    delimiters: Delimiters | Mapping[str, Any] | None = None,
    now: datetime | None = None,
    partner: str | None = None,
) -> dict[str, Any]:
    """Assemble an outbound document (fresh envelopes) from typed views; returns it parsed.

    Each transaction is a typed view (``{"set": "850", "beg": …, "lines": …}``)
    or, for sets without a typed builder, carries generic ``segments`` (with
    or without its ST/SE, which are regenerated).  Sets are grouped into one
    GS per functional id in order of first appearance.  Control numbers are
    drawn per ``partner`` (default ``"<receiver qualifier>:<receiver id>"``).
    """
    from .envelope import TYPED  # imported late: envelope imports the set modules

    if not transactions:
        raise X12Error("an interchange needs at least one transaction set", level="interchange")
    src, dst = party(sender, "sender"), party(receiver, "receiver")
    partner = partner or f"{dst['qualifier']}:{dst['id']}"
    if isinstance(delimiters, Delimiters):
        delims = delimiters
    else:
        delims = Delimiters.from_dict(dict(delimiters or {}))
    if version < "00402":
        # Before 00402 ISA11 is the standards identifier, not a separator.
        delims = Delimiters(delims.element, delims.component, None, delims.segment, delims.suffix)
    delims.check_distinct()
    now = now or datetime.now()
    gs_version = gs_version or version + "0"

    by_fid: dict[str, list[tuple[Mapping[str, Any], list[Segment]]]] = {}
    for n, tx in enumerate(transactions):
        set_id = str(tx.get("set") or "")
        spec = TYPED.get(set_id)
        if tx.get("segments"):
            body = [list(s) for s in tx["segments"] if s and s[0] not in ("ST", "SE")]
        elif spec is not None and spec.build is not None:
            body = spec.build(tx)
        else:
            raise X12Error(
                f"transaction {n}: set {set_id!r} has no typed builder; "
                "give its generic 'segments'",
                level="set",
            )
        fid = str(tx.get("functional_id") or (spec.functional_id if spec else ""))
        if not fid:
            raise X12Error(
                f"transaction {n}: functional_id needed for set {set_id!r}", level="group"
            )
        by_fid.setdefault(fid, []).append((tx, body))

    isa_number = control_numbers.next("interchange", partner)
    groups: list[dict[str, Any]] = []
    for fid, members in by_fid.items():
        gs_number = str(control_numbers.next("group", partner))
        gs: Segment = [
            "GS",
            fid,
            src["application_id"],
            dst["application_id"],
            now.strftime("%Y%m%d"),
            now.strftime("%H%M"),
            gs_number,
            "X",
            gs_version,
        ]
        txs: list[dict[str, Any]] = []
        for tx, body in members:
            st_number = f"{control_numbers.next('transaction', partner):04d}"
            st: Segment = ["ST", str(tx["set"]), st_number]
            if tx.get("implementation_reference"):
                st.append(tx["implementation_reference"])
            segments = [st, *body]
            segments.append(["SE", str(len(segments) + 1), st_number])
            txs.append({"set": str(tx["set"]), "control_number": st_number, "segments": segments})
        groups.append(
            {
                "functional_id": fid,
                "control_number": gs_number,
                "gs": gs,
                "ge": ["GE", str(len(txs)), gs_number],
                "transactions": txs,
            }
        )

    isa = [
        "ISA",
        "00",
        "",
        "00",
        "",
        src["qualifier"],
        src["id"],
        dst["qualifier"],
        dst["id"],
        now.strftime("%y%m%d"),
        now.strftime("%H%M"),
        delims.repetition or "U",
        version,
        f"{isa_number:09d}",
        "1" if ack_requested else "0",
        usage_indicator,
        delims.component,
    ]
    interchange = {
        "sender_qualifier": src["qualifier"],
        "sender_id": src["id"],
        "receiver_qualifier": dst["qualifier"],
        "receiver_id": dst["id"],
        "control_number": f"{isa_number:09d}",
        "version": version,
        "delimiters": delims.to_dict(),
        "isa": _isa(isa, delims),
        "iea": ["IEA", str(len(groups)), f"{isa_number:09d}"],
        "trailing": delims.suffix,
    }
    from .envelope import parse

    # Parsing our own output gives the full parsed-document shape (typed views
    # included) and validates what we are about to send: a non-numeric
    # quantity fails here, located, instead of at the partner.  Partner-specific
    # extra segments are ours to send, so the dictionary check is off.
    return parse(render({"interchange": interchange, "groups": groups}), check_segments=False)


def build_interchange(
    transactions: Sequence[Mapping[str, Any]],
    *,
    sender: str | Mapping[str, Any],
    receiver: str | Mapping[str, Any],
    control_numbers: ControlNumbers,
    **options: Any,
) -> str:
    """Render an outbound interchange from typed views; see :func:`build_document`."""
    doc = build_document(
        transactions, sender=sender, receiver=receiver, control_numbers=control_numbers, **options
    )
    return render(doc)
