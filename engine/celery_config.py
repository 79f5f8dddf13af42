"""Celery's configuration, in three layers, each overriding the one before:

1. flowrunner's defaults (`defaults`): the broker is ``FLOWRUN_REDIS_URL``, acknowledgement
   after the run is recorded, the visibility timeout and prefetch of ``CelerySettings``;
2. a standard Celery configuration module — the one ``FLOWRUN_CELERY_CONFIG`` names, else a
   ``celeryconfig.py`` where the worker starts — with Celery's own lower-case setting names;
3. what is set explicitly in the environment: ``FLOWRUN_BROKER_URL`` and ``FLOWRUN_CELERY_*``.

A few settings are flowrunner's guarantees, not tuning (`FIXED`): a module that sets them
otherwise is overruled, with a warning saying why.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from engine.settings import Settings

log = logging.getLogger("flowrunner.celery")

DEFAULT_MODULE = "celeryconfig"
TRANSPORT = "broker_transport_options"
#: what nothing-is-lost and the worker's task format rest on
FIXED = {"task_acks_late": True, "task_reject_on_worker_lost": True, "task_serializer": "json",
         "accept_content": ["json"], "task_ignore_result": True,
         # a dead-lettered run's task fails (engine/celery_executor.DeadLettered) once the run
         # is recorded: acknowledged, never given back to the queue
         "task_acks_on_failure_or_timeout": True}


class CelerySettings(BaseSettings):
    """Worker tuning, from ``FLOWRUN_CELERY_*`` variables; the defaults suit production."""

    model_config = SettingsConfigDict(env_prefix="FLOWRUN_CELERY_", extra="ignore")

    queue: str = Field("flowrun", description="Celery queue the runs go to.")
    visibility_timeout: float = Field(
        300.0, gt=0, description="Seconds before an unacknowledged task (its worker died) is "
        "delivered again. Bounds how long a crashed worker delays its run.")
    restore_interval: float = Field(
        10.0, gt=0, description="Seconds between sweeps that redeliver such tasks.")
    prefetch_multiplier: int = Field(1, ge=1, description="Tasks a worker process reserves.")
    run_lease: float = Field(
        60.0, gt=0, description="Lease of the lock a worker holds on the run it advances; "
        "renewed every third of it while the run is worked on.")
    pump_interval: float = Field(0.5, gt=0, description="Seconds between due-retry sweeps.")
    claim_lease: float = Field(60.0, gt=0, description="A due id a pump claimed but never sent "
                                                       "goes back to the due set after this.")
    stranded_after: float | None = Field(
        None, gt=0, description="Seconds a run may stay queued with no worker on it before the "
        "stuck-run sweep queues it again (its task lost by the broker); default twice the "
        "visibility timeout.")
    max_deliveries: int = Field(
        5, ge=1, description="Deliveries of one run that may die with their worker before the "
        "run is dead-lettered as poison instead of taking another worker down.")
    reap_interval: float = Field(
        30.0, ge=0, description="Seconds between sweeps for runs whose worker died (lease "
        "expired), which are queued again; 0 turns the sweep off.")
    config: str | None = Field(
        None, description="A standard Celery configuration module (e.g. celeryconfig), whose "
        "settings override flowrunner's defaults; FLOWRUN_BROKER_URL and FLOWRUN_CELERY_* set "
        "in the environment override it in turn. Default: celeryconfig, when there is one.")


def defaults(settings: Settings, tuning: CelerySettings) -> dict[str, Any]:
    broker = settings.broker_url or settings.redis_url
    return {
        "broker_url": broker,
        "result_backend": settings.redis_url or broker,
        **FIXED,  # the run record is the result; acknowledged after the run is recorded
        "task_default_queue": tuning.queue,
        # a dead-lettered run is the task's FAILURE, kept in the result backend (a success
        # is not: the run record is the result)
        "task_store_errors_even_if_ignored": True,
        # Flower and `celery events` see every task: sent by intake, then the worker's
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": settings.task_events,
        "worker_prefetch_multiplier": tuning.prefetch_multiplier,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "broker_connection_retry_on_startup": True,
        TRANSPORT: {
            "visibility_timeout": tuning.visibility_timeout,
            "unacked_restore_interval": tuning.restore_interval,
            # kombu sweeps only every Nth interval by default; 1 makes the interval the period
            "unacked_restore_throttle": 1,
        },
    }


def config_module(name: str | None) -> ModuleType | None:
    """The configuration module *name*, else ``celeryconfig`` when there is one (None)."""
    wanted = name or DEFAULT_MODULE
    here = os.getcwd()
    added = here not in sys.path  # `flowrun worker` does not import from the current folder
    if added:
        sys.path.insert(0, here)
    try:
        return importlib.import_module(wanted)
    except ModuleNotFoundError as exc:
        if name is None and exc.name == DEFAULT_MODULE:
            return None
        raise ValueError(f"FLOWRUN_CELERY_CONFIG={wanted}: {exc}") from None
    finally:
        if added:
            sys.path.remove(here)


def module_settings(module: ModuleType) -> dict[str, Any]:
    """Celery settings a configuration module defines: its public lower-case names."""
    return {name: value for name, value in vars(module).items()
            if name.islower() and not name.startswith("_") and not isinstance(value, ModuleType)}


def explicit(settings: Settings, tuning: CelerySettings) -> dict[str, Any]:
    """What the environment sets on purpose (FLOWRUN_REDIS_URL is a default broker only: it
    must be set for the run state even where a module names another broker)."""
    out: dict[str, Any] = {}
    if "broker_url" in settings.model_fields_set and settings.broker_url:
        out["broker_url"] = settings.broker_url
    if "task_events" in settings.model_fields_set:
        out["worker_send_task_events"] = out["task_send_sent_event"] = settings.task_events
    chosen = tuning.model_fields_set
    if "queue" in chosen:
        out["task_default_queue"] = tuning.queue
    if "prefetch_multiplier" in chosen:
        out["worker_prefetch_multiplier"] = tuning.prefetch_multiplier
    transport = {key: getattr(tuning, field) for field, key in (
        ("visibility_timeout", "visibility_timeout"),
        ("restore_interval", "unacked_restore_interval")) if field in chosen}
    if transport:
        out[TRANSPORT] = transport
    return out


def layered(settings: Settings, tuning: CelerySettings) -> dict[str, Any]:
    """The whole configuration: defaults, then the configuration module, then the environment."""
    base = defaults(settings, tuning)
    module = config_module(tuning.config)
    from_module = module_settings(module) if module is not None else {}
    override = explicit(settings, tuning)
    merged = {**base, **from_module, **override}
    merged[TRANSPORT] = {**base[TRANSPORT], **from_module.get(TRANSPORT, {}),
                         **override.get(TRANSPORT, {})}
    for key, value in FIXED.items():
        if merged.get(key) != value:
            log.warning("%s: %s = %r ignored: flowrunner keeps %r (runs are acknowledged only "
                        "once recorded, as JSON)", module.__name__ if module else "celery",
                        key, merged[key], value)
            merged[key] = value
    return merged
