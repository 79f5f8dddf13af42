"""The Celery application of flowrunner: ``celery -A worker worker`` (or ``flowrun worker``).

Broker and result backend come from ``FLOWRUN_BROKER_URL`` or ``FLOWRUN_REDIS_URL``, or a
standard Celery configuration module (``FLOWRUN_CELERY_CONFIG``, default ``celeryconfig``: see
engine/celery_config); run state lives in the Redis of ``FLOWRUN_REDIS_URL``. The module imports
without any of them; a worker started without ``FLOWRUN_REDIS_URL`` stops with one line. The one
task, ``flowrun.run(run_id)``, advances a run from its checkpoint exactly like the embedded
executor (`CeleryExecutor.process`).

Nothing is lost: tasks are acknowledged only after the run is recorded (``task_acks_late``), a
task whose worker process dies is given back (``task_reject_on_worker_lost``), and each worker
process reserves one task at a time (``worker_prefetch_multiplier=1``,
``FLOWRUN_CELERY_PREFETCH_MULTIPLIER``), so a crash strands at most the runs in hand.

Visibility timeout: 300 s (``FLOWRUN_CELERY_VISIBILITY_TIMEOUT``). When a whole worker dies (kill
-9, lost machine) its unacknowledged task is delivered again once it is that old, so this is the
longest a crash delays a run (plus ``FLOWRUN_CELERY_RESTORE_INTERVAL``, 10 s). Celery's default of
one hour is too long to leave an order waiting; much shorter would redeliver tasks that are
still legitimately running a slow call. Such a redelivery does no harm: the run's lease lock
makes the second delivery wait and then find the run finished. Retries do not use ETA/countdown
at all (an ETA message is held unacknowledged and would be redelivered after the visibility
timeout, running the retry twice): they wait in a Redis sorted set, and the due-retry pump
started in every worker process moves them to the queue when due (see engine/celery_executor).

Stuck and poison runs: the main process of every worker sweeps for runs whose worker died
(``FLOWRUN_CELERY_REAP_INTERVAL``, 30 s) and queues them again; a run whose deliveries kill their
worker ``FLOWRUN_CELERY_MAX_DELIVERIES`` (5) times is dead-lettered as poison (engine/reaper).

Nothing is done twice: each run is advanced under a lease lock; side-effecting steps are
checkpointed and carry an Idempotency-Key derived from run and step.

What Celery's tools see: the task's argument repr is the flow and business key, task events are
sent (``FLOWRUN_TASK_EVENTS``), and a delivery that dead-letters its run ends as the task's
FAILURE (`DeadLettered`, an expected exception: acknowledged, not retried, logged in one line).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import Celery
from celery.exceptions import Reject
from celery.signals import (
    celeryd_init,
    setup_logging,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from engine import tracing
from engine.app import App
from engine.celery_events import BatchedTaskEvents, DeadLettered
from engine.celery_executor import TASK, CeleryExecutor, CelerySettings, DuePump, make_celery
from engine.logs import setup_logging as setup_flowrun_logging
from engine.metrics import multiprocess_mode, process_exited, serve_worker_metrics
from engine.settings import load_settings

log = logging.getLogger("flowrunner.worker")

settings = load_settings()
tuning = CelerySettings()
# importable without settings (`celery -A worker inspect ping`, a platform's own tooling): only a
# worker that starts needs the Redis of the run state (`_needs_redis`)
app: Celery = make_celery(settings, tuning, require_broker=False)
app.steps["consumer"].add(BatchedTaskEvents)
NO_REDIS = ("worker: FLOWRUN_REDIS_URL is not set; workers keep run state in Redis "
            "(e.g. FLOWRUN_REDIS_URL=redis://localhost:6379/0)")

_flowrun: App | None = None
_lock = threading.Lock()
_pump: DuePump | None = None


def flowrun() -> App:
    """The App of this worker process, loaded once (flows compiled once, never per task)."""
    global _flowrun
    with _lock:
        if _flowrun is None:
            loaded = App(settings)
            if not loaded.flows.ok:
                for problem in loaded.flows.problems.errors:
                    log.error("%s", problem)
            _flowrun = loaded
        return _flowrun


def executor() -> CeleryExecutor:
    current = flowrun().executor
    assert isinstance(current, CeleryExecutor)
    return current


@app.task(name=TASK, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True,
          throws=(DeadLettered,))
def run(self: Any, run_id: str) -> str | None:
    """Advance the run; its final status, or FAILURE (`DeadLettered`, with the reason) when
    this delivery dead-lettered it."""
    try:
        state, ended = executor().deliver(run_id)
    except Exception as exc:
        # the run stays recorded as it was; look at it again shortly instead of dropping it
        log.exception("run %s could not be processed; trying again in 10 s", run_id)
        try:
            executor().schedule(run_id, time.time() + 10)
        except Exception:
            raise Reject(str(exc), requeue=True) from exc
        return None
    if state is not None and ended and state.status == "dead_lettered":
        raise DeadLettered.of(state)
    return None if state is None else state.status


def _start_pump(**_: Any) -> None:
    """Start this process's due-retry pump and flow watcher (a changed flow file is validated
    and then used for the runs this process hands on: hand-offs and split items)."""
    global _pump
    if _pump is None:
        _pump = executor().pump
        _pump.start()
        watcher = flowrun().watcher
        if watcher is not None:
            watcher.start()


def _stop_pump(**_: Any) -> None:
    global _pump
    if _pump is not None:
        _pump.stop()
        _pump = None
        watcher = flowrun().watcher
        if watcher is not None:
            watcher.stop()


def _pool_process_init(**_: Any) -> None:
    """A pool process forked after the main process built its App (a replacement for one that
    died) builds its own: the App's identity names the process that holds a run's lease, and
    its threads — pump, watcher, lease renewals — did not survive the fork."""
    global _flowrun, _pump, _lock
    _flowrun, _pump, _lock = None, None, threading.Lock()
    _start_pump()


def _start_reaper(**_: Any) -> None:
    # the main process only: it outlives the pool processes whose runs it may have to requeue
    executor().reaper.start()


def _stop_reaper(**_: Any) -> None:
    executor().reaper.stop()


def _needs_redis(**_: Any) -> None:
    # before the worker connects anywhere: one line and exit status 1, not a traceback
    if not settings.redis_url:
        raise SystemExit(NO_REDIS)


def _tracing(**_: Any) -> None:
    # FLOWRUN_OTEL: set up in the main process, before the pool is forked (the SDK's export
    # thread starts again in each pool process)
    try:
        tracing.configure(settings)
    except tracing.TracingUnavailable as exc:
        raise SystemExit(f"worker: {exc}") from None


def _flush_spans(**_: Any) -> None:
    # a pool process ends without running atexit: export what it still holds
    tracing.flush()


def _logging(loglevel: Any = None, **_: Any) -> None:
    # connected, this replaces Celery's own logging set-up: FLOWRUN_LOG_FORMAT applies here too
    import os

    setup_flowrun_logging(None if os.environ.get("FLOWRUN_LOG_LEVEL") else loglevel)


def _serve_metrics(**_: Any) -> None:
    # the main process serves /metrics; with PROMETHEUS_MULTIPROC_DIR it sums every pool process
    if settings.metrics_port:
        if not multiprocess_mode():
            log.warning("worker metrics: PROMETHEUS_MULTIPROC_DIR is not set, so /metrics shows "
                        "this main process only, not the prefork pool's processes")
        serve_worker_metrics(flowrun().metrics, settings.metrics_port)


def _process_exited(pid: int | None = None, **_: Any) -> None:
    if pid:
        process_exited(pid)


celeryd_init.connect(_needs_redis, weak=False)
celeryd_init.connect(_tracing, weak=False)
worker_process_shutdown.connect(_flush_spans, weak=False)
setup_logging.connect(_logging, weak=False)
worker_ready.connect(_serve_metrics, weak=False)
worker_process_shutdown.connect(_process_exited, weak=False)

# a pump in the main process and one in each pool process: several pumps are harmless
worker_ready.connect(_start_pump, weak=False)
worker_process_init.connect(_pool_process_init, weak=False)
worker_shutdown.connect(_stop_pump, weak=False)
worker_ready.connect(_start_reaper, weak=False)
worker_shutdown.connect(_stop_reaper, weak=False)
worker_process_shutdown.connect(_stop_pump, weak=False)
