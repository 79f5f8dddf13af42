"""Mocked HTTP for flow tests: a requests transport that answers from a case's mocks.

The http connector sends through the HTTP transport it is handed (`engine.transports.HTTP`)
when one is there; a test hands it a Session whose adapter is `MockTransport`, so nothing leaves
the process. An OAuth2 client-credentials grant is answered by the transport itself with
`TEST_TOKEN`, never from the mocks: a case mocks the API calls its flow makes, not the provider.
Failures are raised as the requests exceptions a real network gives, so the connector classifies
them (and the retry policy treats them) exactly as in production. Time passes on the case's
`VirtualClock`: a slow answer or a timeout costs no real time.
"""

from __future__ import annotations

import fnmatch
import http
import json
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from engine.testing.model import Mock, MockResponse

#: the access token every OAuth2 token request gets in a flow test
TEST_TOKEN = "flow-test-token"


class VirtualClock:
    """The time of one case: starts where the case says and moves only when told to."""

    def __init__(self, start: float):
        self._now = start

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        self._now += max(0.0, seconds)


class UnmockedCall(BaseException):
    """An outbound call no mock answers.

    A BaseException on purpose: the runner turns every Exception from a step into a step failure
    (retried, then dead-lettered), which would bury the one thing the analyst must fix.
    """

    def __init__(self, step: str, method: str, url: str):
        super().__init__(f"unmocked call: step '{step}' sent {method} {url}")
        self.step, self.method, self.url = step, method, url


@dataclass
class Call:
    """One outbound request a step made, as the downstream would have seen it."""

    step: str
    method: str
    url: str
    headers: dict[str, str]
    body: Any

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "method": self.method, "url": self.url,
                "headers": self.headers, "body": self.body}


@dataclass
class MockBook:
    """The mocks of one case and how many answers each has given."""

    mocks: list[Mock]
    served: list[int] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.served = [0] * len(self.mocks)

    def answer(self, step: str, method: str, url: str) -> MockResponse | None:
        """The next answer of the most specific mock for this call: one naming the step and
        the request beats one naming the step, which beats a request pattern; among equals the
        first written wins. So a catch-all `request: {url: "*"}` never shadows a step's mock."""
        matching = [i for i, mock in enumerate(self.mocks)
                    if self._matches(mock, step, method, url)]
        if not matching:
            return None
        i = min(matching, key=lambda i: (_specificity(self.mocks[i]), i))
        mock = self.mocks[i]
        # the last answer repeats: a mock with one 201 answers every retry the same way
        response = mock.responses[min(self.served[i], len(mock.responses) - 1)]
        self.served[i] += 1
        return response

    @staticmethod
    def _matches(mock: Mock, step: str, method: str, url: str) -> bool:
        if mock.step is not None and mock.step != step:
            return False
        return mock.request is None or (
            (mock.request.method is None or mock.request.method == method)
            and url_matches(url, mock.request.url))


def _specificity(mock: Mock) -> int:
    """0 for step and request, 1 for a step, 2 for a request pattern alone."""
    if mock.step is None:
        return 2
    return 0 if mock.request is not None else 1


def url_matches(url: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(url.split("?", 1)[0], pattern.split("?", 1)[0])


def _decode(body: bytes | str | None) -> Any:
    if body is None:
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        return json.loads(text)
    except ValueError:
        return text


_ERRORS: dict[str, type[requests.RequestException]] = {
    "timeout": requests.exceptions.ConnectTimeout,
    "read_timeout": requests.exceptions.ReadTimeout,
    "tls": requests.exceptions.SSLError,
}
# the connector tells these apart by the text of the underlying error, as the OS writes it
_TEXTS = {"timeout": "connect timed out", "read_timeout": "read timed out",
          "tls": "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",
          "connection_refused": "[Errno 111] Connection refused",
          "connection_reset": "[Errno 104] Connection reset by peer",
          "dns": "[Errno -2] Name or service not known"}


class MockTransport(BaseAdapter):
    """Answers the requests of one step from the case's `MockBook`."""

    def __init__(self, book: MockBook, step: str, clock: VirtualClock):
        super().__init__()
        self.book, self.step, self.clock = book, step, clock

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        method, url = str(request.method), str(request.url)
        if _token_grant(request):
            return _response(request, MockResponse(
                status=200, body={"access_token": TEST_TOKEN, "token_type": "Bearer"}))
        self.book.calls.append(Call(self.step, method, url, dict(request.headers),
                                    _decode(request.body)))
        answer = self.book.answer(self.step, method, url)
        if answer is None:
            raise UnmockedCall(self.step, method, url)
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        if answer.error:
            waited = connect if answer.error == "timeout" else read if answer.error == \
                "read_timeout" else 0.0
            self.clock.sleep(float(waited or 0.0))
            error = _ERRORS.get(answer.error, requests.exceptions.ConnectionError)
            raise error(_TEXTS[answer.error], request=request)
        if read is not None and answer.delay >= float(read):
            self.clock.sleep(float(read))
            raise requests.exceptions.ReadTimeout(
                f"read timed out after {read} s (the mock answers after {answer.delay} s)",
                request=request)
        self.clock.sleep(answer.delay)
        return _response(request, answer)

    def close(self) -> None:
        pass


def _token_grant(request: requests.PreparedRequest) -> bool:
    """An OAuth2 client-credentials token request, as a named connection sends it."""
    body = request.body
    text = body.decode("latin-1") if isinstance(body, bytes) else str(body or "")
    return request.method == "POST" and "grant_type=client_credentials" in text.split("&")


def _response(request: requests.PreparedRequest, answer: MockResponse) -> requests.Response:
    headers = CaseInsensitiveDict(answer.headers)
    if isinstance(answer.body, dict | list | int | float | bool):
        content = json.dumps(answer.body).encode()
        headers.setdefault("Content-Type", "application/json")
    elif answer.body is None:
        content = b""
    else:
        content = str(answer.body).encode()
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
    response = requests.Response()
    response.status_code = answer.status
    try:
        response.reason = http.HTTPStatus(answer.status).phrase
    except ValueError:
        response.reason = ""
    response.headers = headers
    # requests reads the body from _content once it is loaded; mocking libraries set it alike
    response._content = content
    response._content_consumed = True  # type: ignore[attr-defined]
    response.encoding = "utf-8"
    response.url = str(request.url)
    response.request = request
    return response


def session(book: MockBook, step: str, clock: VirtualClock) -> requests.Session:
    """A Session whose every request is answered by *book* on behalf of *step*."""
    out = requests.Session()
    out.trust_env = False  # no proxy or netrc from the environment may change a test
    transport = MockTransport(book, step, clock)
    out.mount("http://", transport)
    out.mount("https://", transport)
    return out
