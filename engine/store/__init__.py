"""Where runs, dead letters, idempotency keys, flow versions, cursors and locks are kept.

`base.Store` is the interface; `sqlite.SqliteStore` is the embedded default and the Redis store
implements the same interface for Celery workers.
"""
