"""The XML body converter of the webhook server: shapes, and the constructs it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from engine.xmlbody import MAX_DEPTH, XmlBodyError, parse_xml


@pytest.mark.parametrize("raw, expected", [
    (b"<a>text</a>", {"a": "text"}),
    (b"<a/>", {"a": None}),
    (b"<a>  </a>", {"a": None}),
    (b'<a id="1">x</a>', {"a": {"@id": "1", "#text": "x"}}),
    (b"<a><b>1</b><c>2</c></a>", {"a": {"b": "1", "c": "2"}}),
    (b"<a><b>1</b><b>2</b><b>3</b></a>", {"a": {"b": ["1", "2", "3"]}}),
    (b"<a><b><c>deep</c></b></a>", {"a": {"b": {"c": "deep"}}}),
    (b'<o:order xmlns:o="urn:erp" o:id="7"><o:line>x</o:line></o:order>',
     {"order": {"@id": "7", "line": "x"}}),
    ('<?xml version="1.0" encoding="ISO-8859-1"?><a>Grüße</a>'.encode("latin-1"),
     {"a": "Grüße"}),
    (b"<a><![CDATA[<not markup>]]></a>", {"a": "<not markup>"}),
    (b"<a>1 &lt; 2 &amp; &#x41;</a>", {"a": "1 < 2 & A"}),
    # mixed content: the text after a child (its tail) is kept, in document order
    (b"<note>Deliver <b>before</b> noon, <i>gate</i> 4</note>",
     {"note": {"b": "before", "i": "gate", "#text": "Deliver noon, 4"}}),
    (b"<a><b>1</b>tail only</a>", {"a": {"b": "1", "#text": "tail only"}}),
])
def test_shapes(raw: bytes, expected: Any) -> None:
    assert parse_xml(raw) == expected


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<foo>&xxe;</foo>"""

EXTERNAL_DTD = b'<?xml version="1.0"?><!DOCTYPE foo SYSTEM "http://127.0.0.1:1/x.dtd"><foo/>'

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><foo/>"""


@pytest.mark.parametrize("raw", [BILLION_LAUGHS, XXE, EXTERNAL_DTD, PARAMETER_ENTITY,
                                 b"<!DOCTYPE a><a/>"])
def test_every_doctype_is_refused(raw: bytes) -> None:
    with pytest.raises(XmlBodyError, match="DOCTYPE and entity declarations are not accepted"):
        parse_xml(raw)


@pytest.mark.parametrize("raw, reason", [
    (b"<a>&undeclared;</a>", "undefined entity"),
    (b"<a><b></a>", "mismatched tag"),
    (b"", "no element found"),
    (b"not xml", "syntax error"),
    (b"<a/><b/>", "junk after document element"),
])
def test_malformed_xml_names_the_parser_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(XmlBodyError, match=f"malformed XML: {reason}"):
        parse_xml(raw)


def test_nesting_is_bounded() -> None:
    deep = b"<a>" * (MAX_DEPTH + 1) + b"x" + b"</a>" * (MAX_DEPTH + 1)
    with pytest.raises(XmlBodyError, match="nested deeper than"):
        parse_xml(deep)
    ok = b"<a>" * MAX_DEPTH + b"x" + b"</a>" * MAX_DEPTH
    assert parse_xml(ok)["a"] is not None
