"""AS2 messages between HTTP and MIME: pyas2lib parses "headers, blank line, body"; HTTP
carries the MIME headers as its own headers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_FOLD = re.compile(r"\r?\n[ \t]+")
#: headers of the HTTP exchange that are not part of the MIME message
_HOP = frozenset({"host", "content-length", "connection", "transfer-encoding", "keep-alive",
                  "accept-encoding", "accept", "user-agent", "expect"})


def raw_message(headers: Iterable[tuple[str, str]], body: bytes) -> bytes:
    """The MIME message an AS2 request (or an MDN response) carries."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers
                    if name.lower() not in _HOP)
    return lines.encode("latin-1", "replace") + b"\r\n" + body


def http_headers(mime: Mapping[str, Any]) -> dict[str, str]:
    """MIME headers of a message pyas2lib built, as HTTP headers (unfolded: a header line
    broken over two lines is one line in HTTP)."""
    return {name: _FOLD.sub(" ", str(value)) for name, value in mime.items()
            if name.lower() != "mime-version"}


def message_id(value: str | None) -> str:
    return (value or "").strip().strip("<>")


def as2_name(value: str | None) -> str:
    """An AS2-From/AS2-To value without its quotes (RFC 4130 quotes a name with a space; some
    software, pyas2lib's MDNs among them, quotes an already quoted name again)."""
    text = (value or "").strip()
    while len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].replace('\\"', '"').replace("\\\\", "\\").strip()
    return text
