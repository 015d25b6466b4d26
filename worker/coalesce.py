"""Coalescing: the worker's main process gathers single ``custody.assign_device`` messages
as they arrive and hands them to a pool process a group at a time, which applies the group
in one transaction (``tasks.coalesced``). Celery's per-message cost in the main process
stays; the per-message hand-over to the pool, the per-command transaction and its round
trips go.

A group is sent when it is full (``coalesce_max``), or ``coalesce_wait_ms`` after its first
message while a pool process is free; while every process is busy the group keeps growing
and leaves as soon as one is done. Each message is acknowledged after its group committed
(late acknowledgement, as for every command); a group whose pool process was lost or ran
out of time goes back to the broker whole, where redeliveries are counted as for any
message. Messages with an ETA (retries), an expiry, or a delivery count (a message that
came back: were it poison, it would take a whole group back with it each time) take
Celery's usual path, one by one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.concurrency import prefork, solo
from celery.worker.strategy import default as default_strategy

from tasks.celery_tasks import Queued, run_group
from worker.consumer import DELIVERIES_HEADER

log = logging.getLogger("custody.worker")

_installed: dict[str, Celery] = {}  # task name -> the app whose pool processes run its groups


def install(app: Celery, task_name: str) -> None:
    """Let ``task_name`` coalesce; call before the pool forks (the children inherit it)."""
    _installed[task_name] = app
    app.tasks[task_name].Strategy = f"{__name__}:strategy"


def run_in_pool(task_name: str, queued: list[Queued]) -> list[bool]:
    """What a pool process runs for a group (module-level, so that it pickles by name)."""
    app = _installed[task_name]
    return run_group(app.tasks[task_name], app.custody_runtime, queued)


def strategy(task: Any, app: Celery, consumer: Any, **kwargs: Any) -> Callable[..., Any]:
    """Celery's per-task message handler: coalesce what can be, the rest as usual."""
    usual = default_strategy(task, app, consumer, **kwargs)
    settings = app.custody_runtime.settings
    if settings.coalesce_max <= 1 or not _callbacks_in_main_loop(consumer.pool):
        return usual
    group = _Coalescer(task.name, app, consumer)
    revoked = consumer.controller.state.revoked

    def handler(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **kw: Any) -> Any:
        headers = message.headers
        if (
            headers.get("eta")
            or headers.get("expires")
            or headers.get("retries")
            or headers.get(DELIVERIES_HEADER)
            or headers.get("id") in revoked
            or callbacks
        ):
            return usual(message, body, ack, reject, callbacks, **kw)
        group.add(message, ack, reject)
        return None

    return handler


def _callbacks_in_main_loop(pool: Any) -> bool:
    """Whether the pool calls back where messages arrive (prefork: in the main process's
    event loop; solo: at once), so that a group's state needs no lock. A thread pool calls
    back from its threads: there, messages go one by one."""
    return isinstance(pool, prefork.TaskPool | solo.TaskPool)


class _Coalescer:
    def __init__(self, task_name: str, app: Celery, consumer: Any) -> None:
        settings = app.custody_runtime.settings
        self._task_name = task_name
        self._pool = consumer.pool
        self._timer = consumer.timer
        self._connection_errors = consumer.connection_errors
        self._max = settings.coalesce_max
        self._wait_s = settings.coalesce_wait_ms / 1000
        self._processes = max(1, int(getattr(consumer.pool, "limit", 1) or 1))
        self._hard_s = app.conf.task_time_limit
        self._soft_s = app.conf.task_soft_time_limit
        self._buffer: list[tuple[Queued, Any, Any]] = []
        self._in_flight = 0
        self._scheduled: Any = None

    def add(self, message: Any, ack: Any, reject: Any) -> None:
        properties = message.properties
        queued = Queued(
            id=message.headers["id"],
            body=message.body,
            reply_to=properties.get("reply_to"),
            correlation_id=properties.get("correlation_id"),
            delivery_info={
                k: message.delivery_info.get(k) for k in ("exchange", "routing_key", "priority")
            },
        )
        self._buffer.append((queued, ack, reject))
        # Celery's per-task lines do not cover coalesced messages: the same, at DEBUG.
        log.debug("Task %s[%s] received (coalesced)", self._task_name, queued.id)
        if len(self._buffer) >= self._max:
            self._send()
        elif self._scheduled is None and self._in_flight < self._processes:
            self._scheduled = self._timer.call_after(self._wait_s, self._on_timer)

    def _on_timer(self) -> None:
        self._scheduled = None
        if self._buffer and self._in_flight < self._processes:
            self._send()

    def _send(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        taken, self._buffer = self._buffer[: self._max], self._buffer[self._max :]
        self._in_flight += 1
        try:
            self._pool.apply_async(
                run_in_pool,
                args=(self._task_name, [queued for queued, _, _ in taken]),
                callback=lambda acks: self._done(taken, acks),
                error_callback=lambda failure: self._failed(taken, failure),
                timeout_callback=lambda soft, timeout: self._timed_out(len(taken), soft, timeout),
                soft_timeout=self._soft_s,
                timeout=self._hard_s,
            )
        except Exception as exc:  # the pool is closing: the broker keeps the messages
            self._failed(taken, exc)

    def _done(self, taken: list[tuple[Queued, Any, Any]], acks: list[bool]) -> None:
        for (queued, ack, reject), acknowledge in zip(taken, acks, strict=True):
            if acknowledge:
                ack(log, self._connection_errors)
                log.debug("Task %s[%s] succeeded in a group", self._task_name, queued.id)
            else:
                reject(log, self._connection_errors, True)
                log.debug("Task %s[%s] requeued", self._task_name, queued.id)
        self._next()

    def _timed_out(self, count: int, soft: bool, limit_s: float) -> None:
        if soft:
            log.warning("Soft time limit (%ss) exceeded for a group of %d", limit_s, count)
        else:
            log.error("Hard time limit (%ss) exceeded for a group of %d", limit_s, count)

    def _failed(self, taken: list[tuple[Queued, Any, Any]], failure: Any) -> None:
        """The pool process was lost or outran the hard time limit, or the pool refused
        the group: back on the broker."""
        log.error(
            "a group of %d %s lost its pool process (%s); back on the broker",
            len(taken),
            self._task_name,
            getattr(failure, "exception", failure),
        )
        for queued, _, reject in taken:
            reject(log, self._connection_errors, True)
            log.debug("Task %s[%s] requeued", self._task_name, queued.id)
        self._next()

    def _next(self) -> None:
        self._in_flight -= 1
        if self._buffer and (len(self._buffer) >= self._max or self._in_flight < self._processes):
            self._send()
