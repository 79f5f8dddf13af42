"""A real Redis Sentinel group for tests: a primary, a replica and three sentinels, each a
``redis-server`` on a free loopback port in a temporary folder (modelled on `redis_fixture`).

The sentinels watch the primary as ``mymaster`` with quorum 2 and declare it down after one
second, so a test that SIGKILLs the primary sees the replica promoted within a few seconds.
`restart_old_primary` brings the killed server back on its port and folder; the sentinels turn
it into a replica of the new primary (what a supervisor restarting it would get).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.redis_fixture import free_port

MASTER = "mymaster"


def _wait(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


class SentinelGroup:
    """Primary, replica and three sentinels; `url` is flowrunner's sentinel:// URL for them."""

    def __init__(self, folder: Path, db: int = 0):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; .ci/run installs it with apt")
        self.binary, self.folder = binary, folder
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.primary_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        try:
            self._server(self.primary_port)
            self._server(self.replica_port, "--replicaof", "127.0.0.1", str(self.primary_port))
            _wait(lambda: self._link_up(self.replica_port), "the replica to sync")
            for port in self.sentinel_ports:
                self._sentinel(port)
            _wait(self._sentinels_agree, "the sentinels to see the primary and the replica")
        except BaseException:
            self.stop()
            raise
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        self.url = f"sentinel://{hosts}/{MASTER}/{db}"

    # -- servers -----------------------------------------------------------------------------
    def _server(self, port: int, *extra: str) -> None:
        data = self.folder / str(port)
        data.mkdir(parents=True, exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--dir", str(data), "--protected-mode", "no", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: self.client(port).ping(), f"redis-server on port {port}")

    def _sentinel(self, port: int) -> None:
        data = self.folder / f"sentinel-{port}"
        data.mkdir(parents=True, exist_ok=True)
        config = data / "sentinel.conf"  # a sentinel rewrites its config: one file each
        config.write_text(
            f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {data}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {self.primary_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 4000\n"
            f"sentinel parallel-syncs {MASTER} 1\n", encoding="utf-8")
        self.processes[port] = subprocess.Popen(
            [self.binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        _wait(lambda: self.client(port).ping(), f"sentinel on port {port}")

    @staticmethod
    def client(port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2,
                           socket_connect_timeout=2, decode_responses=True)

    def _link_up(self, port: int) -> bool:
        info = self.client(port).info("replication")
        return info.get("master_link_status") == "up"

    def _sentinels_agree(self) -> bool:
        for port in self.sentinel_ports:
            sentinel = self.client(port)
            master = sentinel.sentinel_master(MASTER)
            if int(master.get("num-other-sentinels", 0)) < 2 or not sentinel.sentinel_slaves(
                    MASTER):
                return False
        return True

    # -- failover ----------------------------------------------------------------------------
    def primary(self) -> int:
        """The port the sentinels name as the primary now."""
        _host, port = self.client(self.sentinel_ports[0]).sentinel_get_master_addr_by_name(
            MASTER)
        return int(port)

    def kill_primary(self) -> int:
        """SIGKILL the primary; its port."""
        port = self.primary()
        process = self.processes[port]
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        return port

    def wait_failover(self, old: int, timeout: float = 30.0) -> int:
        """Wait until every sentinel names a new primary that answers as one; its port."""
        def promoted() -> bool:
            ports = {int(self.client(p).sentinel_get_master_addr_by_name(MASTER)[1])
                     for p in self.sentinel_ports}
            if len(ports) != 1 or old in ports:
                return False
            return self.client(ports.pop()).info("replication")["role"] == "master"
        _wait(promoted, "the sentinels to promote the replica", timeout)
        return self.primary()

    def restart(self, port: int) -> None:
        """Bring a killed server back on its port and folder; the sentinels make it a replica
        of the current primary. Returns once it has synced."""
        self._server(port)
        _wait(lambda: self._link_up(port), f"the restarted server on {port} to sync as a "
                                           "replica", 40)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp_path / "sentinel")
    try:
        yield group
    finally:
        group.stop()
