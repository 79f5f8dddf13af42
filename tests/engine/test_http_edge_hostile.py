"""Hostile requests against a real `flowrun serve` subprocess, written as raw bytes on sockets
where an HTTP client would refuse to send them: each row names the status it must get.

The header and body deadlines are set to 1 s here so the slow rows end soon; a row that gets
no answer at all within READ_LIMIT seconds fails, which is what happened before the deadlines.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
READ_LIMIT = 30.0  # seconds a row waits for an answer; far above the 1 s deadlines
PATH = b"/hooks/open"
FLOW = """\
flow: open-orders
trigger:
  webhook:
    path: /hooks/open
steps:
  - id: keep
    set: {kept: 'true'}
"""


@dataclass
class Serve:
    url: str
    port: int
    log: Path
    http: requests.Session

    def metrics(self) -> str:
        return self.http.get(self.url + "/metrics", timeout=10).text

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("hostile")
    (tmp / "flows").mkdir()
    (tmp / "flows" / "open-orders.yaml").write_text(FLOW, encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "FLOWRUN_HOME": str(tmp / "home"), "FLOWRUN_HEADER_TIMEOUT": "1s",
           "FLOWRUN_BODY_TIMEOUT": "1s"}
    log = tmp / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "serve", "--port", str(port), "--flows",
             str(tmp / "flows"), "--no-access-log"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    http = requests.Session()
    http.trust_env = False
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1200):
            assert process.poll() is None, log.read_text(errors="replace")
            try:
                if http.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        else:
            raise AssertionError("flowrun serve did not become ready")
        yield Serve(url, port, log, http)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        http.close()


# -- talking raw HTTP --------------------------------------------------------------------------
def post(body: bytes, *, content_type: bytes = b"application/json", length: int | None = None,
         extra: bytes = b"") -> bytes:
    """A POST to the unsigned route, exactly these bytes; *length* may lie about the body."""
    declared = len(body) if length is None else length
    return (b"POST " + PATH + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + content_type
            + b"\r\nContent-Length: %d\r\nConnection: close\r\n" % declared + extra + b"\r\n"
            + body)


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    # the server may close while this is still sending: that is the point of some rows
    with contextlib.suppress(OSError):
        sock.sendall(data)


def _trickle(sock: socket.socket, data: bytes, stop: threading.Event) -> None:
    """Slowloris: one byte every 0.2 s, until the server hangs up or the row ends."""
    for byte in data:
        if stop.wait(0.2):
            return
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return


def exchange(port: int, send: Callable[[socket.socket, threading.Event], None]
             ) -> tuple[bytes, bool]:
    """Connect, run *send* in a thread while reading the answer, and return what was read and
    whether the server closed the connection before READ_LIMIT passed."""
    stop = threading.Event()
    closed = False
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(READ_LIMIT)
        sender = threading.Thread(target=send, args=(sock, stop), daemon=True)
        sender.start()
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
            closed = True
        except ConnectionResetError:  # closed while a row was still sending
            closed = True
        except TimeoutError:
            pass
        stop.set()
        sender.join(READ_LIMIT)
    return answer, closed


def status_of(answer: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    return int(match[1]) if match else None


def whole(data: bytes) -> Callable[[socket.socket, threading.Event], None]:
    """Send *data* at once; the connection stays open until the server closes it."""
    return lambda sock, stop: _send_quietly(sock, data)


def trickled(data: bytes) -> Callable[[socket.socket, threading.Event], None]:
    return lambda sock, stop: _trickle(sock, data, stop)


def trickled_body(head: bytes, body: bytes) -> Callable[[socket.socket, threading.Event], None]:
    def send(sock: socket.socket, stop: threading.Event) -> None:
        _send_quietly(sock, head)
        _trickle(sock, body, stop)
    return send


HUGE_HEADER = b"X-Big: " + b"a" * (32 * 1024 * 1024) + b"\r\n"
MANY_BIG_HEADERS = b"".join(b"X-Big-%d: " % i + b"b" * (1024 * 1024) + b"\r\n" for i in range(64))
MANY_HEADERS = b"".join(b"X-Small-%d: v\r\n" % i for i in range(150))
SLOW_HEADERS = (b"POST " + PATH + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + b"X-Slow: " + b"s" * 400 + b"\r\n\r\n")

ROWS: list[tuple[str, Callable[[socket.socket, threading.Event], None], int | None]] = [
    ("valid JSON", whole(post(b'{"order": 1001}')), 202),
    ("JSON after a UTF-8 byte order mark", whole(post(b'\xef\xbb\xbf{"order": 1001}')), 202),
    ("an id over 2**53", whole(post(b'{"id": 9007199254740993123}')), 202),
    ("a header of 8 KiB is still fine", whole(post(b"{}", extra=b"X-Ok: " + b"k" * 8192
                                                    + b"\r\n")), 202),
    ("a lone surrogate", whole(post(b'{"order": "\\ud800x"}')), 400),
    ("a lone low surrogate in a key", whole(post(b'{"\\udc00": 1}')), 400),
    ("1e400", whole(post(b'{"total": 1e400}')), 400),
    ("-1e400", whole(post(b'{"total": -1e400}')), 400),
    ("a huge exponent deep inside", whole(post(b'{"a": [{"b": [1, 2, 1e99999]}]}')), 400),
    ("a float of 400 digits", whole(post(b"[" + b"9" * 400 + b".0]")), 400),
    ("NaN", whole(post(b'{"total": NaN}')), 400),
    ("Infinity", whole(post(b'{"total": -Infinity}')), 400),
    ("a 5,000-digit integer", whole(post(b'{"n": ' + b"7" * 5000 + b"}")), 400),
    ("a 1,000,000-digit integer", whole(post(b"7" * 1_000_000)), 400),
    ("a text body in utf-7 holding a lone surrogate",
     whole(post(b"+2AA-", content_type=b"text/plain; charset=utf-7")), 400),
    ("one 32 MiB header", whole(post(b"{}", extra=HUGE_HEADER)), 431),
    ("64 headers of 1 MiB", whole(post(b"{}", extra=MANY_BIG_HEADERS)), 431),
    ("150 small headers", whole(post(b"{}", extra=MANY_HEADERS)), 431),
    ("headers sent a byte at a time", trickled(SLOW_HEADERS), 408),
    ("headers that never end", whole(b"POST " + PATH + b" HTTP/1.1\r\nHost: x\r\n"), 408),
    ("a Content-Length larger than the body sent",
     whole(post(b'{"order": 1', length=1000)), 408),
    ("a body sent a byte at a time", trickled_body(post(b"", length=400), b"x" * 400), 408),
    ("a connection that sends nothing", lambda sock, stop: None, None),
]


@pytest.mark.parametrize("send, expected", [(send, expected) for _, send, expected in ROWS],
                         ids=[name for name, _, _ in ROWS])
def test_hostile_request_gets_its_status(serve: Serve, send: Callable[..., None],
                                         expected: int | None) -> None:
    answer, closed = exchange(serve.port, send)
    assert status_of(answer) == expected, answer[:300]
    assert closed, "the server left the connection open"
    if expected is None:
        assert answer == b""  # closed without a word
    if expected and expected >= 400:
        assert b'"error"' in answer and b"Traceback" not in answer


def test_refused_bodies_are_not_recorded_and_no_row_was_a_server_error(serve: Serve) -> None:
    # a lone surrogate used to reach the store and come back as 503 "retry later"
    before = serve.metrics()
    answer, _ = exchange(serve.port, whole(post(b'{"order": "\\ud800x"}')))
    assert status_of(answer) == 400
    assert b"lone UTF-16 surrogate" in answer
    after = serve.metrics()
    assert _count(after, 'outcome="malformed"') == _count(before, 'outcome="malformed"') + 1
    assert 'status="503"' not in after and 'status="500"' not in after
    assert "Traceback" not in serve.text()


def test_a_sender_leaving_mid_body_is_not_a_server_error(serve: Serve) -> None:
    gone = _count(serve.metrics(), 'outcome="disconnected"')
    with socket.create_connection(("127.0.0.1", serve.port)) as sock:
        sock.sendall(post(b'{"order": ', length=5000))
    for _ in range(600):  # the server notices the close on its next read
        if _count(serve.metrics(), 'outcome="disconnected"') > gone:
            break
        time.sleep(0.05)
    metrics = serve.metrics()
    assert _count(metrics, 'outcome="disconnected"') == gone + 1
    assert 'status="500"' not in metrics
    log = serve.text()
    assert "Traceback" not in log and "Exception in ASGI application" not in log
    assert "unhandled error" not in log


def _count(metrics: str, label: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("flowrun_webhook_requests_total") and label in line)


# -- what the limits must not break --------------------------------------------------------------
def test_the_header_limit_is_per_request_on_a_kept_alive_connection(serve: Serve) -> None:
    # two pipelined requests in one write, 40 KiB of headers each: 80 KiB on the connection,
    # but each request is within the 64 KiB limit
    header = b"X-Pad: " + b"p" * 40 * 1024 + b"\r\n"
    first = post(b'{"n": 1}', extra=header).replace(b"Connection: close\r\n", b"")
    answer, closed = exchange(serve.port, whole(first + post(b'{"n": 2}', extra=header)))
    assert closed
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", answer) == [b"202", b"202"], answer[:600]


def test_an_idle_kept_alive_connection_is_not_cut_by_the_header_deadline(serve: Serve) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", serve.port, timeout=READ_LIMIT)
    try:
        for n in (1, 2):
            connection.request("POST", PATH.decode(), body=b'{"n": %d}' % n,
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == 202, response.read()
            response.read()
            time.sleep(1.5)  # longer than the 1 s header deadline, shorter than keep-alive (5 s)
    finally:
        connection.close()
