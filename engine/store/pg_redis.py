"""Records in PostgreSQL, hot state in Redis: the store of Celery workers with both URLs set.

Runs, dead letters and their audit, flow versions, poll cursors and idempotency keys are the
`PostgresStore`'s: history that lasts, on disk, queried by index. What changes many times a
second and matters only while it is current stays in Redis, as with `RedisStore`: run leases and
other locks, deliveries in flight and their counts, retries due later, rate-limit buckets and
concurrency slots. The idempotency key of a new run is claimed in the PostgreSQL transaction
that records the run, never in Redis beside it: a crash between two systems could otherwise
answer a sender's retry "duplicate" of a run that was never recorded.
"""

from __future__ import annotations

from engine.records import Breach, DeadLetter, RunState
from engine.store.activity import Bucket
from engine.store.base import (
    DeadLetterFilter,
    Idempotency,
    PruneReport,
    RetentionPolicy,
    RunFilter,
)
from engine.store.postgres import PostgresStore
from engine.store.redis import RedisStore


class RedisPostgresStore(RedisStore):
    """A `RedisStore` whose records are a `PostgresStore`'s (*records*)."""

    payload_indexed = True  # runs are searched in PostgreSQL

    def __init__(self, redis_url: str, records: PostgresStore, prefix: str = "flowrun:", *,
                 replica_wait: float = 1.0):
        super().__init__(redis_url, prefix, replica_wait=replica_wait)
        self.records = records

    def close(self) -> None:
        try:
            self.records.close()
        finally:
            super().close()

    # -- runs ----------------------------------------------------------------------------------
    def save_run(self, state: RunState, *, dead_letter: DeadLetter | None = None,
                 children: list[RunState] | None = None, delivery: str | None = None) -> None:
        """Save in PostgreSQL, then end the delivery in Redis. A worker dying in between
        leaves the delivery counted and in flight: the reaper queues the run again and that
        delivery finds it done."""
        self.records.save_run(state, dead_letter=dead_letter, children=children)
        if delivery:
            self.end_delivery(state.run_id, delivery)

    def create_run(self, state: RunState, idempotency: Idempotency | None = None) -> str | None:
        return self.records.create_runs([(state, idempotency)])[0]

    def create_runs(self, runs: list[tuple[RunState, Idempotency | None]],
                    messages: list[tuple[str, str]] | None = None) -> list[str | None]:
        """Record in PostgreSQL (the keys claimed in the same transaction), then queue the runs
        recorded: with *messages* (a broker list and message per run, from the executor), by
        pushing them to Redis. If that push fails the group is answered as not recorded (a
        503): the senders' retries find their runs recorded and still queued, and queue them
        (engine/intake); a process that dies in between leaves them to the stuck-run sweep."""
        holders = self.records.create_runs(runs)
        fresh = [messages[i] for i, holder in enumerate(holders) if holder is None] \
            if messages is not None else []
        if fresh:
            pipe = self.redis.pipeline(transaction=False)
            for queue, message in fresh:
                pipe.lpush(queue, message)
            with self._errors():
                pipe.execute()
        return holders

    def get_run(self, run_id: str) -> RunState | None:
        return self.records.get_run(run_id)

    def list_runs(self, query: RunFilter) -> list[RunState]:
        return self.records.list_runs(query)

    def active_runs(self) -> list[RunState]:
        return self.records.active_runs()

    def count_runs(self, flow: str | None = None) -> dict[str, int]:
        return self.records.count_runs(flow)

    def activity(self, flow: str | None, since: float, until: float,
                 bucket: float) -> list[Bucket]:
        """From PostgreSQL's finished runs: the runs are recorded there, not in Redis."""
        return self.records.activity(flow, since, until, bucket)

    def runs_queued_before(self, when: float, limit: int) -> list[str]:
        return self.records.runs_queued_before(when, limit)

    def begin_delivery(self, run_id: str, owner: str, lease: float,
                       ) -> tuple[int, RunState | None] | None:
        """The lease and the count of deliveries in Redis (the run's Redis hash holds only
        that count here), then the run from PostgreSQL."""
        taken = super().begin_delivery(run_id, owner, lease)
        if taken is None:
            return None
        return taken[0], self.records.get_run(run_id)

    # -- flow versions, dead letters, cursors ------------------------------------------------------
    def save_flow_version(self, flow_id: str, version: str, text: str) -> None:
        self.records.save_flow_version(flow_id, version, text)

    def get_flow_version(self, flow_id: str, version: str) -> str | None:
        return self.records.get_flow_version(flow_id, version)

    def get_dead_letter(self, entry_id: str) -> DeadLetter | None:
        return self.records.get_dead_letter(entry_id)

    def list_dead_letters(self, query: DeadLetterFilter) -> list[DeadLetter]:
        return self.records.list_dead_letters(query)

    def count_dead_letters(self, status: str = "open") -> dict[str, int]:
        return self.records.count_dead_letters(status)

    def update_dead_letter(self, entry: DeadLetter) -> None:
        self.records.update_dead_letter(entry)

    def get_cursor(self, name: str) -> str | None:
        return self.records.get_cursor(name)

    def set_cursor(self, name: str, value: str) -> None:
        self.records.set_cursor(name, value)

    def prune(self, policy: RetentionPolicy, now: float, *, batch: int = 500,
              flow: str | None = None, dry_run: bool = False) -> PruneReport:
        """Records are pruned where they are kept: in PostgreSQL (Redis holds none here)."""
        return self.records.prune(policy, now, batch=batch, flow=flow, dry_run=dry_run)

    # -- business SLAs: with the records, in PostgreSQL ------------------------------------------
    def sla_due(self, now: float, limit: int) -> list[tuple[str, float]]:
        return self.records.sla_due(now, limit)

    def settle_sla(self, run_ids: list[str]) -> None:
        self.records.settle_sla(run_ids)

    def claim_breach(self, breach: Breach) -> bool:
        return self.records.claim_breach(breach)

    def get_breach(self, run_id: str) -> Breach | None:
        return self.records.get_breach(run_id)

    def list_breaches(self, flow: str | None = None, limit: int = 100) -> list[Breach]:
        return self.records.list_breaches(flow, limit)
