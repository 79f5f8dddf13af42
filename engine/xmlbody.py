"""XML request bodies to plain dicts, refusing the constructs that make XML dangerous.

Webhooks from older ERPs and EDI gateways arrive as XML. A flow wants a dict, so an element
becomes ``{tag: value}``: attributes as ``"@name"``, text beside children or attributes as
``"#text"`` (the pieces of mixed content joined by spaces), a repeated child as a list, a leaf
as its text (``None`` when empty). Namespace URIs are dropped from names (``{urn:x}order`` →
``order``) because expressions address fields by local name.

Every DOCTYPE is refused, so no entity can be declared: that rules out entity expansion
("billion laughs") and external entities (XXE) without a third-party defusing library, and an
undeclared ``&name;`` is already a parse error in expat.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

MAX_DEPTH = 200


class XmlBodyError(ValueError):
    """The body is not XML we accept; the message is safe to return to the sender."""


class _NoDoctype(ET.TreeBuilder):
    # expat reports a DOCTYPE before reading its internal subset, so raising here stops the
    # parse before any entity declaration is even seen
    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise XmlBodyError("DOCTYPE and entity declarations are not accepted")


def parse_xml(raw: bytes) -> dict[str, Any]:
    """The document as ``{root_tag: value}``; raises XmlBodyError for anything refused."""
    parser = ET.XMLParser(target=_NoDoctype())
    try:
        parser.feed(raw)
        root = parser.close()
    except ET.ParseError as exc:
        raise XmlBodyError(f"malformed XML: {exc}") from None
    return {_local(root.tag): _value(root, 1)}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _value(element: ET.Element, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise XmlBodyError(f"XML nested deeper than {MAX_DEPTH} elements")
    children = list(element)
    # mixed content (text, then a child, then more text): every piece of text is kept, in order
    pieces = (element.text, *(child.tail for child in children))
    text = " ".join(p.strip() for p in pieces if p and p.strip())
    if not children and not element.attrib:
        return text or None
    out: dict[str, Any] = {f"@{_local(k)}": v for k, v in element.attrib.items()}
    for child in children:
        name, value = _local(child.tag), _value(child, depth + 1)
        if name not in out:
            out[name] = value
        elif isinstance(out[name], list):  # _value never returns a list: this is a repeat
            out[name].append(value)
        else:
            out[name] = [out[name], value]
    if text:
        out["#text"] = text
    return out

