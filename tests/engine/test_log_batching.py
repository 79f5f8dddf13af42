"""`flowrun serve` writes its log lines in batches: none lost, none doubled, in order; a warning
at once; every line on a clean stop; a terminal line by line; a forked child writes only its
own lines."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.log_batching import BatchingHandler
from engine.logs import setup_logging
from tests.conftest import free_port, logger_with


class Writes(io.StringIO):
    """A stream that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def batching() -> Iterator[tuple[logging.Logger, Writes, BatchingHandler]]:
    stream = Writes()
    handler = BatchingHandler(stream, interval=0.2)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    try:
        with logger_with("flowrunner.test.batching", handler) as log:
            yield log, stream, handler
    finally:
        handler.close()


def wait_for(condition: object, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def test_lines_are_written_together_in_order_none_lost(
        batching: tuple[logging.Logger, Writes, BatchingHandler]) -> None:
    log, stream, _ = batching
    for n in range(500):
        log.info("line %d", n)
    wait_for(lambda: stream.getvalue().count("\n") == 500)
    assert stream.getvalue().splitlines() == [f"INFO line {n}" for n in range(500)]
    assert stream.writes < 50  # not one write a line


def test_a_warning_is_written_at_once_with_the_lines_before_it(
        batching: tuple[logging.Logger, Writes, BatchingHandler]) -> None:
    log, stream, _ = batching
    log.info("before")
    log.warning("trouble")
    assert stream.getvalue().splitlines() == ["INFO before", "WARNING trouble"]


def test_flush_and_close_write_what_is_held(
        batching: tuple[logging.Logger, Writes, BatchingHandler]) -> None:
    log, stream, handler = batching
    log.info("held")
    handler.flush()
    assert stream.getvalue() == "INFO held\n"
    log.info("held again")
    handler.close()
    assert stream.getvalue().splitlines() == ["INFO held", "INFO held again"]


def test_threads_logging_at_once_lose_and_double_nothing(
        batching: tuple[logging.Logger, Writes, BatchingHandler]) -> None:
    import threading

    log, stream, handler = batching

    def many(tag: str) -> None:
        for n in range(300):
            log.info("%s %d", tag, n)

    threads = [threading.Thread(target=many, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handler.flush()
    lines = stream.getvalue().splitlines()
    assert sorted(lines) == sorted(f"INFO t{i} {n}" for i in range(4) for n in range(300))
    for i in range(4):  # each thread's lines in its order
        mine = [line for line in lines if line.startswith(f"INFO t{i} ")]
        assert mine == [f"INFO t{i} {n}" for n in range(300)]


def test_a_terminal_gets_a_plain_handler_and_a_file_a_batching_one(tmp_path: Path) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    root = logging.getLogger()
    level = root.level
    try:
        assert type(setup_logging("INFO", stream=Terminal(), batch=True)) is logging.StreamHandler
        with (tmp_path / "log").open("w") as file:
            assert isinstance(setup_logging("INFO", stream=file, batch=True), BatchingHandler)
            assert type(setup_logging("INFO", stream=file)) is logging.StreamHandler
    finally:
        for handler in [h for h in root.handlers if getattr(h, "_flowrun_handler", False)]:
            root.removeHandler(handler)
        root.setLevel(level)


def test_a_forked_child_writes_only_its_own_lines(tmp_path: Path) -> None:
    path = tmp_path / "log"
    script = f"""
import logging, os, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from engine.log_batching import BatchingHandler
stream = open({str(path)!r}, "a", buffering=1)
handler = BatchingHandler(stream, interval=5)
handler.setFormatter(logging.Formatter("%(process)d %(message)s"))
log = logging.getLogger("t"); log.addHandler(handler); log.setLevel(logging.INFO)
log.info("parent before fork")
pid = os.fork()
if pid == 0:
    log.info("child")
    logging.shutdown()
    os._exit(0)
os.waitpid(pid, 0)
log.info("parent after fork")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    messages = sorted(line.split(" ", 1)[1] for line in path.read_text().splitlines())
    assert messages == ["child", "parent after fork", "parent before fork"]


def test_flowrun_serve_writes_every_line_before_it_stops(tmp_path: Path) -> None:
    """A served request's access line and the server's last line, written as it stops (held
    in memory a moment), are in the log once SIGTERM stopped the server — the log a file, as
    a service's stderr usually is."""
    import http.client

    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "echo.yaml").write_text(
        "flow: echo\ntrigger:\n  webhook: {path: /hooks/echo}\n"
        "steps:\n  - id: one\n    set: {n: $.n}\n")
    port = free_port()
    env = {**os.environ, "FLOWRUN_HOME": str(tmp_path / "state"), "FLOWRUN_FLOWS": str(flows),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "FLOWRUN_LOG_LEVEL": "INFO"}
    env.pop("FLOWRUN_LOG_FORMAT", None)
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log_file:
        server = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--port",
                                   str(port)], env=env, stdout=log_file, stderr=log_file)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    conn.request("POST", "/hooks/echo?token=abc", body=b'{"n": 1}',
                                 headers={"Content-Type": "application/json"})
                    status = conn.getresponse().status
                    conn.close()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise
                    time.sleep(0.2)
            assert status == 202
            server.send_signal(signal.SIGTERM)
            assert server.wait(30) in (0, -signal.SIGTERM)  # uvicorn dies of it again
        finally:
            if server.poll() is None:
                server.kill()
    lines = log_path.read_text().splitlines()
    access = [line for line in lines if "flowrunner.access" in line]
    assert len(access) == 1 and "POST /hooks/echo 202" in access[0], lines
    assert "token=abc" not in access[0]
    assert "Finished server process" in lines[-1], lines[-3:]  # uvicorn's last line
