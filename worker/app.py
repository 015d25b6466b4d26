"""The Celery app factory: one settings object in, a configured app out, nothing connected."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from models.settings import Settings
from models.topology import commands_queue
from tasks.celery_tasks import register_tasks
from worker.runtime import Runtime


def celery_config(settings: Settings) -> dict[str, Any]:
    """SPEC section 5's reliability settings, all in one place."""
    queue = commands_queue(settings.commands_queue)
    return {
        "broker_url": settings.resolved_broker_url,
        "broker_transport": settings.broker_transport,
        "broker_transport_options": settings.broker_transport_options(),
        "broker_connection_retry_on_startup": True,
        "task_protocol": 2,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_queues": [queue],
        "task_default_queue": queue.name,
        "task_default_exchange": queue.exchange.name,
        "task_default_routing_key": queue.routing_key,
        # Acknowledge after the transaction commits; a lost worker's message is redelivered.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": settings.prefetch_multiplier,
        "task_time_limit": settings.task_time_limit_s,
        "task_soft_time_limit": settings.task_time_limit_s * 0.9,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Results travel in the database and on reply queues, not in a result backend.
        "task_ignore_result": True,
        "result_backend": None,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_enable_remote_control": not settings.embedded,
        "worker_consumer": "worker.consumer:CustodyConsumer",
        "worker_hijack_root_logger": False,
    }


# Celery writes two INFO lines per task (received, succeeded). At hundreds of commands per
# second that is a sizeable share of the worker's work and of its log; they stay available
# at DEBUG. Custody's own line per command is DEBUG too; rejections and faults are not.
PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


def quiet_per_task_logs(level: str) -> None:
    """Call before the worker starts: Celery decides once whether it logs per task."""
    if logging.getLevelName(level.upper()) != logging.DEBUG:
        for name in PER_TASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def create_app(settings: Settings, runtime: Runtime | None = None) -> Celery:
    runtime = runtime or Runtime(settings)
    app = Celery("custody", set_as_current=False)
    app.conf.update(celery_config(settings))
    app.custody_runtime = runtime  # type: ignore[attr-defined]
    register_tasks(app, runtime)

    def _reset(**_: Any) -> None:
        runtime.after_fork()

    worker_process_init.connect(_reset, weak=False)
    return app
