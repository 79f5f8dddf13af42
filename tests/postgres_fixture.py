"""A real PostgreSQL for tests: the machine's server on 127.0.0.1:5432, else a private cluster.

``FLOWRUN_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``, then
the same as ``root``) names a server to use; when none answers, the session starts a private
cluster with ``initdb`` + ``pg_ctl`` on a free port in a temporary folder (Debian keeps the
binaries in /usr/lib/postgresql/*/bin). Each session creates its own database with a random
name, migrated to the current schema, and drops it at the end; `postgres_url` gives each test
that database emptied. `PrivateCluster` is also what fault tests stop and start themselves.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from engine.store import pg_migrations
from tests.redis_fixture import free_port

CANDIDATES = ["postgresql://postgres@127.0.0.1:5432/postgres",
              "postgresql://root@127.0.0.1:5432/postgres"]
#: tables emptied between tests (everything but schema_migrations)
TABLES = ["runs", "run_counts", "run_count_changes", "idempotency", "dead_letters",
          "flow_versions", "cursors", "locks", "console_sessions", "console_failures"]
TABLES += ["sla_due", "sla_breaches"]  # business SLAs (engine/sla)
TABLES += ["console_jobs", "console_job_entries"]  # console bulk jobs (engine/console/jobs)


def answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def pg_binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise RuntimeError(f"{name} is not installed; .ci/run installs postgresql with apt")
    return found


class PrivateCluster:
    """initdb + pg_ctl in a temporary folder, listening on a free loopback port (trust auth);
    `stop` and `start` keep the port and the data, `destroy` removes both. Run as root, the
    server runs as the ``postgres`` (or ``nobody``) user, as PostgreSQL refuses root."""

    def __init__(self) -> None:
        # not under pytest's tmp folder: that one is private to root, out of postgres's reach
        self.folder = Path(tempfile.mkdtemp(prefix="flowrun-pg-"))
        self.port = free_port()
        self.data = self.folder / "data"
        self._owner: dict[str, Any] = {}
        if os.getuid() == 0:
            import pwd

            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                user = pwd.getpwnam("nobody")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            uid, gid = user.pw_uid, user.pw_gid

            def demote() -> None:
                os.setgid(gid)
                os.setuid(uid)

            self._owner = {"preexec_fn": demote, "cwd": str(self.folder)}
        subprocess.run([pg_binary("initdb"), "-D", str(self.data), "-A", "trust", "-U",
                        "postgres", "-E", "UTF8", "--no-sync"], check=True,
                       capture_output=True, **self._owner)
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def _ctl(self, *args: str) -> None:
        subprocess.run([pg_binary("pg_ctl"), "-D", str(self.data), *args], check=True,
                       capture_output=True, **self._owner)

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c fsync=off "
                   f"-c unix_socket_directories={self.folder} -c max_connections=200")
        self._ctl("start", "-w", "-t", "60", "-o", options, "-l", str(self.folder / "log"))

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._ctl("stop", "-w", "-m", mode)

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def server_url() -> tuple[str, PrivateCluster | None]:
    explicit = os.environ.get("FLOWRUN_TEST_POSTGRES_URL")
    for url in [explicit] if explicit else CANDIDATES:
        if answers(url):
            return url, None
    cluster = PrivateCluster()
    return cluster.url, cluster


def create_database(admin_url: str) -> str:
    """A new database with a random name on *admin_url*'s server; its URL."""
    name = f"flowrun_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return str(psycopg.conninfo.make_conninfo(admin_url, dbname=name))


def drop_database(admin_url: str, url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(str(name))))


def migrate(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        pg_migrations.upgrade(conn)


class Database:
    """One session's database on the server."""

    def __init__(self) -> None:
        self.admin_url, self.cluster = server_url()
        self.url = create_database(self.admin_url)
        migrate(self.url)

    def empty(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"TRUNCATE {', '.join(TABLES)}".encode())

    def close(self) -> None:
        try:
            drop_database(self.admin_url, self.url)
        finally:
            if self.cluster is not None:
                self.cluster.destroy()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[Database]:
    database = Database()
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def postgres_url(postgres_database: Database) -> Iterator[str]:
    postgres_database.empty()
    yield postgres_database.url


def wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not answers(url):
        if time.monotonic() > deadline:
            raise RuntimeError(f"PostgreSQL at {url} did not answer")
        time.sleep(0.1)
