"""Control number stores: sequences per kind and partner, persistence, concurrency."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis

from connectors.x12 import (
    ControlNumbers,
    MemoryControlNumbers,
    RedisControlNumbers,
    SqliteControlNumbers,
)

ROOT = Path(__file__).resolve().parents[3]


def make_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path,
               start: int = 1) -> ControlNumbers:
    if kind == "memory":
        return MemoryControlNumbers(start=start)
    if kind == "sqlite":
        return SqliteControlNumbers(tmp_path / "cn.sqlite", start=start)
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    return RedisControlNumbers(client, start=start)


STORES = ["memory", "sqlite", "redis"]


def test_every_store_satisfies_the_protocol(tmp_path: Path, redis_url: str) -> None:
    with SqliteControlNumbers(tmp_path / "cn.sqlite") as sqlite_store:
        assert isinstance(sqlite_store, ControlNumbers)
    assert isinstance(MemoryControlNumbers(), ControlNumbers)
    assert isinstance(RedisControlNumbers(redis.Redis.from_url(redis_url)), ControlNumbers)


@pytest.mark.parametrize("store_kind", STORES)
def test_sequences_are_per_kind_and_partner(store_kind: str, tmp_path: Path,
                                            request: pytest.FixtureRequest) -> None:
    store = make_store(store_kind, request, tmp_path)
    assert [store.next("interchange", "ZZ:BIGMART") for _ in range(3)] == [1, 2, 3]
    assert store.next("group", "ZZ:BIGMART") == 1
    assert store.next("transaction", "ZZ:BIGMART") == 1
    assert store.next("interchange", "08:9252710000") == 1
    assert store.next("interchange", "ZZ:BIGMART") == 4
    with pytest.raises(ValueError, match="kind must be one of"):
        store.next("segment", "ZZ:BIGMART")  # type: ignore[arg-type]


@pytest.mark.parametrize("store_kind", STORES)
def test_numbers_wrap_after_nine_digits(store_kind: str, tmp_path: Path,
                                        request: pytest.FixtureRequest) -> None:
    store = make_store(store_kind, request, tmp_path, start=999_999_998)
    assert [store.next("interchange", "P") for _ in range(3)] == [999_999_998, 999_999_999, 1]


def test_sqlite_numbers_persist_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "cn.sqlite"
    first = SqliteControlNumbers(path)
    assert [first.next("interchange", "ZZ:BIGMART") for _ in range(5)] == [1, 2, 3, 4, 5]
    assert first.next("group", "ZZ:BIGMART") == 1
    first.close()
    with SqliteControlNumbers(path, start=900) as reopened:
        # start only seeds sequences that do not exist yet.
        assert reopened.next("interchange", "ZZ:BIGMART") == 6
        assert reopened.next("group", "ZZ:BIGMART") == 2
        assert reopened.next("transaction", "ZZ:BIGMART") == 900


def _hammer(store: ControlNumbers, count: int, out: list[int]) -> None:
    for _ in range(count):
        out.append(store.next("transaction", "ZZ:BIGMART"))


def test_sqlite_two_threads_sharing_one_store_get_unique_numbers(tmp_path: Path) -> None:
    with SqliteControlNumbers(tmp_path / "cn.sqlite") as store:
        a: list[int] = []
        b: list[int] = []
        threads = [threading.Thread(target=_hammer, args=(store, 300, out)) for out in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(a) == len(b) == 300
    assert sorted(a + b) == list(range(1, 601))
    assert a == sorted(a) and b == sorted(b)  # each caller sees an increasing sequence


def test_sqlite_two_threads_with_own_connections_get_unique_numbers(tmp_path: Path) -> None:
    path = tmp_path / "cn.sqlite"
    stores = [SqliteControlNumbers(path), SqliteControlNumbers(path)]
    results: list[list[int]] = [[], []]
    threads = [
        threading.Thread(target=_hammer, args=(store, 200, out))
        for store, out in zip(stores, results, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in stores:
        store.close()
    assert sorted(results[0] + results[1]) == list(range(1, 401))


def test_sqlite_two_processes_get_unique_numbers(tmp_path: Path) -> None:
    path = tmp_path / "cn.sqlite"
    script = (
        "import sys\n"
        "from connectors.x12 import SqliteControlNumbers\n"
        "s = SqliteControlNumbers(sys.argv[1])\n"
        "print(' '.join(str(s.next('interchange', 'P')) for _ in range(100)))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    numbers = [int(n) for out in outputs for n in out.split()]
    assert sorted(numbers) == list(range(1, 201))


def test_memory_store_is_thread_safe() -> None:
    store = MemoryControlNumbers()
    a: list[int] = []
    b: list[int] = []
    threads = [threading.Thread(target=_hammer, args=(store, 2000, out)) for out in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a + b) == list(range(1, 4001))


def test_redis_numbers_are_unique_across_threads_with_own_clients(redis_url: str) -> None:
    results: list[list[int]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=_hammer, args=(
        RedisControlNumbers(redis.Redis.from_url(redis_url)), 200, out)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [n for out in results for n in out]
    assert sorted(every) == list(range(1, 801))
