"""Shared pieces of the webhook signature schemes.

Every scheme module verifies a request's *raw* body against one or more shared secrets
before anything else looks at the request. This module holds what they all need: the error
they raise and the ``Scheme`` record (both from the plugin surface, `engine.plugin`), and
helpers for case-insensitive header lookup, constant-time comparison and timestamp windows.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from engine.plugin import Scheme, SignatureError

__all__ = ["Scheme", "SignatureError"]  # re-exported: the schemes import them from here

Encoding = Literal["hex", "base64"]
Algorithm = Literal["sha1", "sha256", "sha512"]

# Unix seconds as senders write them: plain ASCII digits. str.isdigit() would also accept
# other Unicode digits, and int() would accept signs, spaces and underscores.
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup; None when absent.

    A plain dict may hold the same header under two spellings. If they disagree the request
    is refused, because which copy a proxy or framework would have used is unknowable.
    """
    wanted = name.lower()
    found: str | None = None
    for key, value in headers.items():
        if key.lower() != wanted:
            continue
        if found is not None and value != found:
            raise SignatureError(f"conflicting copies of header {name}")
        found = value
    return found


def require_header(headers: Mapping[str, str], name: str) -> str:
    """Like ``header_value`` but a missing or blank header is a SignatureError."""
    value = header_value(headers, name)
    if value is None or not value.strip():
        raise SignatureError(f"missing header {name}")
    return value.strip()


def usable_secrets(secrets: Sequence[str]) -> list[str]:
    """The non-empty secrets; refuses to verify against none.

    An empty key would make every request signable by anyone, so empty entries are dropped
    rather than tried, and having nothing left fails closed.
    """
    if isinstance(secrets, str):
        # A bare string is a Sequence[str] too; iterating it would try each character.
        raise TypeError("secrets must be a sequence of strings, not a single string")
    usable = [secret for secret in secrets if secret]
    if not usable:
        raise SignatureError("no secret configured")
    return usable


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare without leaking, through timing, how long a matching prefix is."""
    return hmac.compare_digest(a, b)


def matches_any(expected: Iterable[bytes], received: Iterable[bytes]) -> bool:
    """True if any received signature equals any expected one.

    Every pair is compared, without stopping at the first match, so the time taken does not
    depend on which secret or which of several signatures matched.
    """
    received = list(received)
    matched = False
    for digest in expected:
        for candidate in received:
            matched |= constant_time_equal(digest, candidate)
    return matched


def hmac_digest(key: bytes, message: bytes, algorithm: Algorithm) -> bytes:
    """HMAC of ``message`` under ``key``, as raw bytes."""
    return hmac.digest(key, message, algorithm)


def encode_digest(digest: bytes, encoding: Encoding) -> str:
    """Digest as it appears in a header."""
    if encoding == "hex":
        return digest.hex()
    return base64.b64encode(digest).decode("ascii")


def decode_digest(text: str, encoding: Encoding) -> bytes | None:
    """Header text back to raw digest bytes; None when it is not valid for ``encoding``.

    Comparing raw bytes rather than text makes hex case irrelevant and rejects base64 with
    stray characters instead of silently skipping them.
    """
    try:
        if encoding == "hex":
            return bytes.fromhex(text)
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, binascii.Error):
        return None


def parse_timestamp(text: str, header: str) -> int:
    """A header holding Unix seconds; anything else is a malformed header."""
    text = text.strip()
    if not _TIMESTAMP.fullmatch(text):
        raise SignatureError(f"malformed header {header} (not a Unix timestamp)")
    return int(text)


def check_tolerance(timestamp: int, now: float, tolerance: int) -> None:
    """Replay protection: refuse timestamps more than ``tolerance`` seconds from ``now``.

    Both directions count. A timestamp far in the future would otherwise let a captured
    request be replayed until that future moment has passed.
    """
    skew = now - timestamp
    if abs(skew) <= tolerance:
        return
    where = "" if skew > 0 else " in the future"
    raise SignatureError(f"timestamp outside tolerance ({int(abs(skew))} s{where} > {tolerance} s)")
