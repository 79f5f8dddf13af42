"""TLS brokers of the tests' own: certificates minted per test session and private broker
processes on free loopback ports (the machine's shared brokers are never reconfigured).

trustme mints a CA, the brokers' certificate (127.0.0.1 and localhost) and a client
certificate for mutual TLS. Mosquitto, Redis and nats-server run as subprocesses with a TLS
listener that requires a client certificate; RabbitMQ cannot be started privately in a test,
so `TlsRelay` terminates TLS (mTLS too) in front of the shared RabbitMQ on 5672, the way a TLS
proxy or load balancer would.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import shutil
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import trustme

from tests.conftest import wait_until


@dataclass
class Certs:
    ca: trustme.CA
    server: trustme.LeafCert
    client: trustme.LeafCert

    def write(self, folder: Path) -> Path:
        """The files a connection names, in *folder* (the connections folder's certs/)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.ca.cert_pem.write_to_path(str(folder / "ca.pem"))
        self.client.cert_chain_pems[0].write_to_path(str(folder / "client.pem"))
        self.client.private_key_pem.write_to_path(str(folder / "client.key"))
        (folder / "client.key").chmod(0o600)
        trustme.CA().cert_pem.write_to_path(str(folder / "other-ca.pem"))  # not the brokers'
        return folder

    def client_context(self) -> ssl.SSLContext:
        """The tests' own clients: trusting the CA, with the client certificate."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        self.client.configure_cert(context)
        return context

    def server_files(self, folder: Path) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        leaf = self.server
        files = {"ca": folder / "ca.pem", "cert": folder / "server.pem",
                 "key": folder / "server.key"}
        self.ca.cert_pem.write_to_path(str(files["ca"]))
        for i, pem in enumerate(leaf.cert_chain_pems):
            pem.write_to_path(str(files["cert"]), append=i > 0)
        leaf.private_key_pem.write_to_path(str(files["key"]))
        return files


def mint() -> Certs:
    ca = trustme.CA()
    return Certs(ca, ca.issue_cert("127.0.0.1", "localhost"), ca.issue_cert("flowrunner-client"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


class Process:
    """A broker subprocess on *port*, stopped (by its own pid) when the test is done."""

    def __init__(self, args: list[str], port: int, log: Path):
        self.port = port
        self.log = log
        self.process = subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: self.process.poll() is not None or _listening(port), 20,
                       f"{args[0]} on port {port}")
            assert self.process.poll() is None, log.read_text(errors="replace")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def binary(name: str, *more: str) -> str:
    found = shutil.which(name) or next((p for p in more if Path(p).exists()), None)
    assert found, f"{name} is not installed"
    return found


def mosquitto(folder: Path, certs: Certs) -> Process:
    files = certs.server_files(folder)
    port = free_port()
    conf = folder / "mosquitto.conf"
    # run by root, mosquitto would drop to its own user, who cannot read the test's folder
    conf.write_text(f"""per_listener_settings false
user {getpass.getuser()}
allow_anonymous true
persistence false
log_dest file {folder / 'mosquitto.log'}
log_type subscribe
log_type error
listener {port} 127.0.0.1
cafile {files['ca']}
certfile {files['cert']}
keyfile {files['key']}
require_certificate true
""", encoding="utf-8")
    return Process([binary("mosquitto", "/usr/sbin/mosquitto"), "-c", str(conf)], port,
                   folder / "mosquitto.log")


def redis_server(folder: Path, certs: Certs) -> Process:
    files = certs.server_files(folder)
    port = free_port()
    return Process([binary("redis-server"), "--port", "0", "--tls-port", str(port),
                    "--bind", "127.0.0.1", "--tls-cert-file", str(files["cert"]),
                    "--tls-key-file", str(files["key"]), "--tls-ca-cert-file", str(files["ca"]),
                    "--tls-auth-clients", "yes", "--save", "", "--appendonly", "no",
                    "--dir", str(folder)], port, folder / "redis.log")


def nats_server(folder: Path, certs: Certs) -> Process:
    files = certs.server_files(folder)
    port = free_port()
    conf = folder / "nats.conf"
    conf.write_text(f"""listen: "127.0.0.1:{port}"
jetstream {{ store_dir: "{folder / 'js'}" }}
tls {{
  cert_file: "{files['cert']}"
  key_file: "{files['key']}"
  ca_file: "{files['ca']}"
  verify: true
  timeout: 5
}}
""", encoding="utf-8")
    return Process([binary("nats-server", "/usr/sbin/nats-server"), "-c", str(conf)], port,
                   folder / "nats.log")


class TlsRelay:
    """TLS (with a client certificate required) on a free loopback port, relayed in the clear
    to *target*: a TLS-terminating proxy in front of the shared RabbitMQ."""

    def __init__(self, certs: Certs, target: tuple[str, int]):
        self.target = target
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certs.server.configure_cert(self.context)
        self.context.verify_mode = ssl.CERT_REQUIRED
        certs.ca.configure_trust(self.context)
        self.loop = asyncio.new_event_loop()
        # a refused handshake (the tests make some) is the client's error to report, not ours
        self.loop.set_exception_handler(lambda _loop, _context: None)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        self.port = int(self.server.sockets[0].getsockname()[1])

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._relay, "127.0.0.1", 0, ssl=self.context)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            with contextlib.suppress(OSError, RuntimeError):
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self) -> None:
        self.server.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

