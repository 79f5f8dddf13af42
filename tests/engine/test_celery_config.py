"""Celery's configuration in layers: flowrunner's defaults, a standard Celery configuration
module, then FLOWRUN_BROKER_URL and FLOWRUN_CELERY_* set in the environment.

Pure configuration (no broker is contacted). The modules are real files imported the way a
worker imports them: ``celeryconfig.py`` in the folder the worker starts in, or the module
``FLOWRUN_CELERY_CONFIG`` names.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.celery_executor import CelerySettings, celery_config
from engine.settings import Settings

REDIS = "redis://127.0.0.1:6399/0"


MODULES = ("celeryconfig", "platform_celery")


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for var in ("FLOWRUN_CELERY_CONFIG", "FLOWRUN_CELERY_PREFETCH_MULTIPLIER",
                "FLOWRUN_CELERY_VISIBILITY_TIMEOUT", "FLOWRUN_BROKER_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    yield
    # an imported module stays imported: left behind, this test's celeryconfig (an AMQP
    # broker) would configure every later Celery app of the session
    for name in MODULES:
        sys.modules.pop(name, None)


def _config(**settings: str) -> dict[str, object]:
    return celery_config(Settings(redis_url=REDIS, **settings), CelerySettings())


MODULE = """\
import os  # a module's imports are not settings

broker_url = "amqp://guest@127.0.0.1:5672//"
worker_prefetch_multiplier = 4
worker_max_tasks_per_child = 500
broker_transport_options = {"visibility_timeout": 900}
"""


def test_without_a_module_flowrunners_defaults_apply() -> None:
    config = _config()
    assert config["broker_url"] == REDIS and config["worker_prefetch_multiplier"] == 1
    assert config["broker_transport_options"] == {
        "visibility_timeout": 300.0, "unacked_restore_interval": 10.0,
        "unacked_restore_throttle": 1}


def test_celeryconfig_in_the_start_folder_overrides_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "celeryconfig.py").write_text(MODULE)
    config = _config()
    assert config["broker_url"] == "amqp://guest@127.0.0.1:5672//"
    assert (config["worker_prefetch_multiplier"], config["worker_max_tasks_per_child"]) == (4, 500)
    # merged key by key: the module's visibility timeout, flowrunner's restore interval
    assert config["broker_transport_options"] == {
        "visibility_timeout": 900, "unacked_restore_interval": 10.0,
        "unacked_restore_throttle": 1}
    assert "os" not in config


def test_flowrun_variables_set_in_the_environment_win_over_the_module(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "celeryconfig.py").write_text(MODULE)
    monkeypatch.setenv("FLOWRUN_CELERY_PREFETCH_MULTIPLIER", "2")
    monkeypatch.setenv("FLOWRUN_CELERY_VISIBILITY_TIMEOUT", "120")
    config = celery_config(Settings(redis_url=REDIS, broker_url="redis://127.0.0.1:6398/1"),
                           CelerySettings())
    assert config["broker_url"] == "redis://127.0.0.1:6398/1"
    assert (config["worker_prefetch_multiplier"], config["worker_max_tasks_per_child"]) == (2, 500)
    assert config["broker_transport_options"]["visibility_timeout"] == 120.0


def test_flowrun_celery_config_names_the_module(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "platform_celery.py").write_text("worker_max_tasks_per_child = 7\n")
    (tmp_path / "celeryconfig.py").write_text("worker_max_tasks_per_child = 1\n")
    monkeypatch.setenv("FLOWRUN_CELERY_CONFIG", "platform_celery")
    assert _config()["worker_max_tasks_per_child"] == 7


def test_a_named_module_that_is_missing_is_one_clear_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWRUN_CELERY_CONFIG", "platform_celery")
    with pytest.raises(ValueError, match="FLOWRUN_CELERY_CONFIG=platform_celery: No module "
                                         "named 'platform_celery'"):
        _config()


def test_the_guarantees_are_not_configurable(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "celeryconfig.py").write_text("task_acks_late = False\n"
                                              "task_serializer = 'pickle'\n")
    with caplog.at_level(logging.WARNING, "flowrunner.celery"):
        config = _config()
    assert (config["task_acks_late"], config["task_serializer"]) == (True, "json")
    assert "celeryconfig: task_acks_late = False ignored" in caplog.text
    assert "task_serializer = 'pickle' ignored" in caplog.text


def test_a_producer_without_any_broker_is_refused() -> None:
    with pytest.raises(ValueError, match=r"FLOWRUN_REDIS_URL .* is not set"):
        celery_config(Settings(), CelerySettings())


def test_task_events_are_on_by_default_and_flowrun_task_events_turns_them_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config()
    assert (config["worker_send_task_events"], config["task_send_sent_event"]) == (True, True)
    assert config["task_store_errors_even_if_ignored"] is True
    # a module may turn them off; FLOWRUN_TASK_EVENTS set in the environment has the last word
    (tmp_path / "celeryconfig.py").write_text("worker_send_task_events = False\n")
    assert _config()["worker_send_task_events"] is False
    monkeypatch.setenv("FLOWRUN_TASK_EVENTS", "true")
    assert _config()["worker_send_task_events"] is True
    monkeypatch.setenv("FLOWRUN_TASK_EVENTS", "false")
    config = _config()
    assert (config["worker_send_task_events"], config["task_send_sent_event"]) == (False, False)


def test_a_dead_lettered_tasks_failure_is_always_acknowledged(tmp_path: Path) -> None:
    (tmp_path / "celeryconfig.py").write_text("task_acks_on_failure_or_timeout = False\n")
    assert _config()["task_acks_on_failure_or_timeout"] is True


def test_a_redis_broker_acknowledges_through_flowrunners_transport(tmp_path: Path) -> None:
    assert _config()["broker_transport"] == "engine.broker:Transport"
    # TLS, Sentinel and other brokers keep kombu's own transport
    for url in ("rediss://127.0.0.1:6399/0", "amqp://guest@127.0.0.1:5672//",
                "sentinel://127.0.0.1:26379/0"):
        assert celery_config(Settings(redis_url=REDIS, broker_url=url),
                             CelerySettings())["broker_transport"] is None, url
    (tmp_path / "celeryconfig.py").write_text('broker_transport = "redis"\n')
    assert _config()["broker_transport"] == "redis"  # a module that names one keeps it
