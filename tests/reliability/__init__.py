"""The reliability suite: flowrunner's promises under load and failure, as figures.

Each scenario runs real processes — its own ``redis-server``, Celery worker subprocesses,
``flowrun serve``, ``flowrun scheduler`` — against a loopback downstream that honours
``Idempotency-Key`` and records every request. It counts what was accepted, what the
downstream applied (per message, under which keys) and what is in the dead-letter queue, and
fails when anything is missing or doubled.

====================  =========================================================================
module                what it proves
====================  =========================================================================
test_worker_kills     workers SIGKILLed at random and restarted: 0 lost, 0 duplicate effects
test_redis_restart    Redis (AOF, appendfsync always) killed under webhooks: every 202
                      completes; the outage is answered 503 with Retry-After, never 500
test_downstream_      50 % 503, timeouts, slow answers: delivered or dead-lettered with the
flapping              reason; ``flowrun dlq replay --all-matching`` then delivers each once
test_poison           10 MB, 10,000-deep, invalid UTF-8, exploding JSONata: a 4xx or a dead
                      letter with its reason; the same worker keeps serving
test_duplicate_storm  the same webhook ids, concurrently: one run per id
test_scheduler_pause  two schedulers, the active one SIGSTOPped: each poll slot fires once
test_signatures       forged, replayed, expired, retired-secret webhooks: 401, nothing recorded
test_fuzz             hypothesis over flow files and payloads: problems or 4xx, no traceback
====================  =========================================================================

Run::

    python -m pytest tests/reliability                               # reduced size, ~3 min
    FLOWRUN_RELIABILITY=full python -m pytest tests/reliability -s   # full size, with figures

``FLOWRUN_RELIABILITY_REPORT=FILE`` appends each scenario's figures to FILE as JSON lines;
``FLOWRUN_RELIABILITY_SEED=N`` repeats the random choices of a run (each prints its seed).
No scenario asserts on time: durations are reported, never required.
"""
