"""Where runs, dead letters, idempotency keys, flow versions, cursors and locks are kept.

`base.Store` is the interface; `sqlite.SqliteStore` is the embedded default, the Redis store
implements the same interface for Celery workers, `postgres.PostgresStore` keeps the records in
PostgreSQL, and `pg_redis.RedisPostgresStore` pairs it with Redis for the hot state.
"""
