"""Bytes <-> text for flat files: encodings, byte-order marks and line splitting.

Partner files arrive as UTF-8 (with or without BOM), Latin-1 or Windows-1252.
Decoding failures are reported like any other file error, with the row number
of the offending byte, because "UnicodeDecodeError at position 48213" helps no
one find the broken line.
"""

from __future__ import annotations

import codecs
import re

from .errors import FlatFileError, FlatFileErrors

_UTF8_BOM = codecs.BOM_UTF8
_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")


def check_encoding(encoding: str) -> str:
    """Return the canonical codec name, or raise ``ValueError`` for an unknown one."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"unknown encoding: {encoding!r}") from None


def decode_text(data: str | bytes, encoding: str = "utf-8") -> str:
    """Decode file content and drop a leading byte-order mark.

    A UTF-8 BOM wins over the configured encoding: the three bytes EF BB BF at
    the start of a file are an unambiguous UTF-8 signature, while decoding them
    as cp1252 would put "ï»¿" into the first header name.
    """
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    codec = check_encoding(encoding)
    if (
        data.startswith(_UTF8_BOM)
        and not codec.startswith("utf-16")
        and not codec.startswith("utf-32")
    ):
        codec = "utf-8-sig"
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        row = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start : exc.start + 1].hex().upper()
        raise FlatFileErrors(
            [FlatFileError(f"byte 0x{byte} at offset {exc.start} is not valid {encoding}", row)]
        ) from exc
    return text.removeprefix("\ufeff")


def encode_text(text: str, encoding: str = "utf-8") -> bytes:
    """Encode rendered output; a character the encoding lacks is reported with its row."""
    codec = check_encoding(encoding)
    try:
        return text.encode(codec)
    except UnicodeEncodeError as exc:
        row = len(_LINE_BREAK_RE.findall(text, 0, exc.start)) + 1
        char = text[exc.start]
        raise FlatFileErrors(
            [FlatFileError(f"character {char!r} cannot be encoded as {encoding}", row)]
        ) from exc


def split_lines(text: str) -> list[str]:
    """Split on CRLF, CR or LF only.

    ``str.splitlines`` also splits on form feed, U+2028 and other characters that
    may legitimately appear inside a fixed-width record.
    """
    lines = _LINE_BREAK_RE.split(text)
    if lines and lines[-1] == "":
        lines.pop()  # the final line terminator does not start another record
    return lines
