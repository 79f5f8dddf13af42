"""Redis through Sentinel: the sentinel:// URL, what Celery is given for it, and the store on a
real primary, replica and three sentinels — acknowledging a new run only once the replica has
it, and following the primary the sentinels promote when the old one is killed."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from engine import redis_url
from engine.celery_executor import celery_config
from engine.records import RunState
from engine.settings import Settings
from engine.store.base import StoreError
from engine.store.redis import RedisStore
from tests.sentinel_fixture import SentinelGroup


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://127.0.0.1:6379/0", None),
    ("sentinel://10.0.0.1:26379/mymaster",
     redis_url.SentinelTarget((("10.0.0.1", 26379),), "mymaster", 0)),
    ("sentinel://a:26379,b:26380,c:26381/flow-master/3",
     redis_url.SentinelTarget((("a", 26379), ("b", 26380), ("c", 26381)), "flow-master", 3)),
    ("sentinel://:s%40cret@a:26379/mymaster/1",
     redis_url.SentinelTarget((("a", 26379),), "mymaster", 1, None, "s@cret")),
    ("sentinel://ops:pw@[::1]:26379/mymaster",
     redis_url.SentinelTarget((("::1", 26379),), "mymaster", 0, "ops", "pw")),
])
def test_sentinel_urls_are_parsed(url: str, expected: redis_url.SentinelTarget | None) -> None:
    assert redis_url.parse(url) == expected


@pytest.mark.parametrize(("url", "problem"), [
    ("sentinel://a:26379", "names the primary after the sentinels"),
    ("sentinel://a:26379/mymaster/zero", "database 'zero' is not a number"),
    ("sentinel://a/mymaster", "sentinel 'a' is not host:port"),
    ("sentinel://a:26379,b:99999/mymaster", "sentinel 'b:99999' is not host:port"),
])
def test_a_bad_sentinel_url_is_refused_by_the_settings_naming_the_key(url: str,
                                                                       problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(redis_url=url)
    text = str(caught.value)
    assert "redis_url" in text and problem in text
    assert "sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster/0" in text  # what fits


def test_celery_gets_its_own_sentinel_form_and_the_primarys_name() -> None:
    url = "sentinel://:pw@127.0.0.1:26379,127.0.0.1:26380/mymaster/2"
    config = celery_config(Settings(redis_url=url))
    assert config["broker_url"] == ("sentinel://:pw@127.0.0.1:26379/2;"
                                    "sentinel://127.0.0.1:26380")
    assert config["broker_transport_options"]["master_name"] == "mymaster"
    assert config["broker_transport_options"]["visibility_timeout"] > 0  # kept
    assert config["result_backend"] == config["broker_url"]
    assert config["result_backend_transport_options"] == {"master_name": "mymaster"}
    # a password with URL characters reaches kombu encoded, as it was given
    odd = celery_config(Settings(redis_url="sentinel://:p%40ss%3Aw@h:26379/m"))
    assert odd["broker_url"] == "sentinel://:p%40ss%3Aw@h:26379/0"
    plain = celery_config(Settings(redis_url="redis://127.0.0.1:6379/0"))
    assert plain["broker_url"] == "redis://127.0.0.1:6379/0"
    assert "master_name" not in plain["broker_transport_options"]


def run(run_id: str) -> RunState:
    return RunState(run_id=run_id, flow_id="orders", flow_version="v1",
                    envelope={"body": {}, "headers": {}, "vars": {}, "meta": {}},
                    original={"body": {}, "headers": {}})


def test_the_store_follows_the_primary_through_a_failover(sentinel_group: SentinelGroup,
                                                          tmp_path: Path) -> None:
    store = RedisStore(sentinel_group.url)
    assert store.replica_wait_ms == 1000
    assert store.create_run(run("before")) is None
    # acknowledged only once the replica had it: it is there, on the replica itself
    replica = sentinel_group.client(sentinel_group.replica_port)
    assert replica.hget("flowrun:run:before", "status") == "queued"

    old = sentinel_group.kill_primary()
    with pytest.raises(StoreError):  # the primary is gone and none is promoted yet
        store.create_run(run("during"))
    new = sentinel_group.wait_failover(old)
    assert new == sentinel_group.replica_port
    # promoted, but with no replica of its own: a new run is not acknowledged yet
    with pytest.raises(StoreError) as caught:
        store.create_run(run("alone"))
    assert "no replica took the new runs" in str(caught.value)
    sentinel_group.restart(old)  # back, as the new primary's replica
    assert store.create_run(run("after")) is None
    assert store.get_run("before") is not None and store.get_run("after") is not None
    store.close()
