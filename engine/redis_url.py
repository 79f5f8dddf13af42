"""Where flowrunner's Redis is: one server (``redis://``, ``rediss://``) or a primary found
through Redis Sentinel, so the broker and the hot state fail over with it.

The Sentinel form, for ``FLOWRUN_REDIS_URL`` and ``FLOWRUN_BROKER_URL`` alike::

    sentinel://[[user]:password@]host:port[,host:port...]/master-name[/db]

e.g. ``sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/mymaster/0``. The password
is the primary's (and its replicas'); the sentinels themselves are asked without one. The
store's client asks the sentinels for the primary and asks again when it is gone; the Celery
broker gets the same sentinels in Celery's own form (``sentinel://h:p;sentinel://h:p`` with the
``master_name`` transport option), so a worker reconnects to the promoted replica too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import redis
from redis.sentinel import Sentinel

SCHEME = "sentinel://"
EXAMPLE = "sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster/0"


@dataclass(frozen=True)
class SentinelTarget:
    """A Sentinel URL, parsed: the sentinels, the primary's name, the database, credentials."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None

    def celery_url(self) -> str:
        """Celery's form: one ``sentinel://`` URL per sentinel, credentials and db on the
        first (kombu takes the connection parameters from it)."""
        auth = ""
        if self.password is not None:  # encoded again: kombu parses this URL too
            auth = f"{quote(self.username or '', safe='')}:{quote(self.password, safe='')}@"
        urls = [f"sentinel://{auth if i == 0 else ''}{host}:{port}"
                + (f"/{self.db}" if i == 0 else "")
                for i, (host, port) in enumerate(self.sentinels)]
        return ";".join(urls)


def parse(url: str) -> SentinelTarget | None:
    """The Sentinel target of *url*; None for a plain Redis URL. A Sentinel URL that cannot be
    used raises ValueError saying what is wrong and what fits."""
    if not url.startswith(SCHEME):
        return None
    rest = url[len(SCHEME):]
    username = password = None
    if "@" in rest:
        auth, rest = rest.rsplit("@", 1)
        user, _, secret = auth.partition(":")
        username, password = unquote(user) or None, unquote(secret)
    hosts, _, path = rest.partition("/")
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError(f"a Sentinel URL names the primary after the sentinels: {EXAMPLE}")
    master, db = parts[0], parts[1] if len(parts) == 2 else "0"
    if not db.isdigit():
        raise ValueError(f"database '{db}' is not a number; write e.g. {EXAMPLE}")
    sentinels = []
    for host in hosts.split(","):
        name, _, port = host.strip().rpartition(":")
        if not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"sentinel '{host}' is not host:port; write e.g. {EXAMPLE}")
        sentinels.append((name.strip("[]"), int(port)))
    return SentinelTarget(tuple(sentinels), unquote(master), int(db), username, password)


def client(url: str, **options: Any) -> redis.Redis:
    """A client of the Redis at *url*: the server itself, or the primary the sentinels name
    now (found again after a failover)."""
    target = parse(url)
    if target is None:
        return redis.Redis.from_url(url, **options)
    options.pop("health_check_interval", None)  # the sentinel pool checks its primary itself
    sentinel = Sentinel(list(target.sentinels),
                        socket_timeout=options.get("socket_connect_timeout", 5),
                        socket_connect_timeout=options.get("socket_connect_timeout", 5))
    return sentinel.master_for(target.master, db=target.db, username=target.username,
                               password=target.password, **options)


def celery_broker(url: str) -> tuple[str, dict[str, Any]]:
    """The broker URL for Celery and the transport options it needs with it."""
    target = parse(url)
    if target is None:
        return url, {}
    return target.celery_url(), {"master_name": target.master}
