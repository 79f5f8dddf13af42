"""What went wrong with an HTTP request, in the words of the retry policy: `classify` maps a
requests failure to an error kind (timeout, connection, dns, tls, request_invalid) and a short
message an operator can act on; `NOT_RETRYABLE` are the kinds no retry mends. Shared by the
``http`` step, named HTTP connections, HTTP polling and AS2.
"""

from __future__ import annotations

import re

import requests

_INCOMPLETE = re.compile(r"IncompleteRead\((\d+) bytes read, (\d+) more expected")


#: failures that trying again cannot mend: the same request would fail the same way
NOT_RETRYABLE = frozenset({"config", "request_invalid"})


def classify(exc: requests.RequestException | ValueError) -> tuple[str, str]:
    """Map a requests failure to an error kind the retry policy knows, with a short message.
    A request that cannot even be built (a CR/LF in a header, a body that is not JSON, a URL
    that does not parse) is ``request_invalid``: it fails the same way on every attempt."""
    text = str(exc)
    if isinstance(exc, requests.exceptions.InvalidHeader):
        # requests' text repeats the header value, which may be a credential: name no value
        return "request_invalid", ("a header value has a line break, a leading space or "
                                   "another character HTTP does not allow")
    if isinstance(exc, requests.exceptions.InvalidJSONError):
        return "request_invalid", f"the body cannot be encoded as JSON ({_cause(exc)})"
    if isinstance(exc, UnicodeEncodeError):  # a header beyond latin-1, a lone surrogate
        return "request_invalid", (f"the request cannot be encoded as {exc.encoding} "
                                   f"({exc.object[exc.start:exc.end]!r}: {exc.reason})")
    if not isinstance(exc, requests.RequestException):  # urllib3's LocationParseError and kin
        return "request_invalid", f"invalid URL: {text}"
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls", tls_reason(text)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "timeout", "connect timeout"
    if isinstance(exc, requests.exceptions.ReadTimeout | requests.exceptions.Timeout):
        return "timeout", "read timeout"
    if isinstance(exc, requests.exceptions.ConnectionError):
        lowered = text.lower()
        if any(s in lowered for s in ("name or service not known", "nodename nor servname",
                                      "name resolution", "getaddrinfo", "no address associated")):
            return "dns", "host name could not be resolved"
        if "read timed out" in lowered:  # the body stalled: requests reports no ReadTimeout then
            return "timeout", "read timeout"
        if "refused" in lowered:
            return "connection", "connection refused"
        if "reset" in lowered or "aborted" in lowered or "remotedisconnected" in lowered:
            return "connection", "connection reset by the server"
        return "connection", "connection failed"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        cut = _INCOMPLETE.search(text)
        return "connection", ("the response ended early" + (
            f" ({cut[1]} of {int(cut[1]) + int(cut[2])} bytes)" if cut else ""))
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema |
                  requests.exceptions.InvalidSchema):
        return "request_invalid", f"invalid URL: {text}"
    return "connection", type(exc).__name__


def _cause(exc: BaseException) -> str:
    inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc
    return str(inner)


_VERIFY = re.compile(r"certificate verify failed: ([^(')]+)")
_SSL_REASON = re.compile(r"\[SSL(?:: [A-Z_]+)?\] ([^(')]+)")


def tls_reason(text: str) -> str:
    """A failed TLS handshake in words an operator can act on (requests nests the reason
    three exceptions deep)."""
    verify = _VERIFY.search(text)
    if verify:
        return (f"TLS: the server's certificate is not trusted ({verify[1].strip()}); trust "
                "its CA with tls.ca_bundle on a named connection")
    if "EOF occurred" in text or "certificate required" in text:
        return ("TLS handshake failed: the server ended it; a server that requires a client "
                "certificate does so (tls.client_cert and tls.client_key on the connection)")
    if "PEM lib" in text or "KEY_VALUES_MISMATCH" in text:
        return "TLS: the client certificate or its key cannot be used (not PEM, or they differ)"
    reason = _SSL_REASON.search(text)
    return "TLS handshake failed" + (f" ({reason[1].strip()})" if reason else "")
