"""The Celery app factory: one settings object in, a configured app out, nothing connected."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, bootsteps
from celery.signals import worker_process_init, worker_process_shutdown

from models import constants as c
from models.settings import Settings
from models.topology import commands_queue
from tasks.celery_tasks import register_tasks
from worker.broker import transport_for
from worker.coalesce import install as install_coalescing
from worker.consumer import refuse_compressed_messages
from worker.prefork import pool_for
from worker.relay import RelayThread
from worker.runtime import Runtime


def celery_config(settings: Settings) -> dict[str, Any]:
    """SPEC section 5's reliability settings, all in one place."""
    queue = commands_queue(settings.commands_queue)
    return {
        "broker_url": settings.resolved_broker_url,
        # The Redis transport hardened for broker restarts; the embedded default's
        # filesystem transport made safe for several processes.
        "broker_transport": transport_for(settings.resolved_broker_url)
        or settings.broker_transport,
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
        # Back on the broker when the worker is lost or a command outruns the hard time limit
        # (the soft limit dead-letters it first); the consumer counts such deliveries and
        # dead-letters a message after settings.max_deliveries, so none loops forever.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_timeout": False,
        "task_acks_on_failure": True,
        "worker_prefetch_multiplier": settings.prefetch_multiplier,
        "task_time_limit": settings.task_time_limit_s,
        "task_soft_time_limit": settings.soft_time_limit_s,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Results travel in the database and on reply queues, not in a result backend.
        "task_ignore_result": True,
        "result_backend": None,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_enable_remote_control": not settings.embedded,
        "worker_consumer": "worker.consumer:CustodyConsumer",
        "worker_pool": pool_for(settings.worker_pool),
        "worker_hijack_root_logger": False,
    }


class RelayStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """The outbox relay as a thread of the worker's main process, started once the pool
    has forked its children and stopped when the worker stops."""

    label = "custody relay"
    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.thread: RelayThread | None = None

    def include_if(self, worker: Any) -> bool:
        return bool(getattr(worker.app, "custody_relay", False))

    def start(self, worker: Any) -> None:
        self.thread = RelayThread(worker.app.custody_runtime.settings)
        self.thread.start()

    def stop(self, worker: Any) -> None:
        if self.thread is not None:
            self.thread.stop()
            self.thread = None

    def terminate(self, worker: Any) -> None:
        self.stop(worker)

    def shutdown(self, worker: Any) -> None:
        self.stop(worker)


# Celery writes two INFO lines per task (received, succeeded). At hundreds of commands per
# second that is a sizeable share of the worker's work and of its log; they stay available
# at DEBUG. Custody's own line per command is DEBUG too; rejections and faults are not.
PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


def quiet_per_task_logs(level: str) -> None:
    """Call before the worker starts: Celery decides once whether it logs per task."""
    if logging.getLevelName(level.upper()) != logging.DEBUG:
        for name in PER_TASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def create_app(
    settings: Settings, runtime: Runtime | None = None, *, relay: bool = False
) -> Celery:
    runtime = runtime or Runtime(settings)
    refuse_compressed_messages()
    app = Celery("custody", set_as_current=False)
    app.conf.update(celery_config(settings))
    app.custody_runtime = runtime  # type: ignore[attr-defined]
    app.custody_relay = relay  # type: ignore[attr-defined]
    app.steps["worker"].add(RelayStep)
    register_tasks(app, runtime)
    install_coalescing(app, c.ASSIGN_DEVICE)

    def _reset(**_: Any) -> None:
        runtime.after_fork()

    worker_process_init.connect(_reset, weak=False)
    if settings.metrics_port is not None:

        def _gone(pid: int | None = None, **_: Any) -> None:
            from worker.metrics import process_exited

            process_exited(pid or os.getpid())

        worker_process_shutdown.connect(_gone, weak=False)
    return app
