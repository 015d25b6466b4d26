"""Thin Celery adapters: one task per command name. Each parses nothing itself; it hands
the delivery to the pipeline and maps the outcome to reply, retry or dead letter."""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from celery import Celery, Task
from celery.exceptions import Reject

from models.errors import Rejected, Transient
from models.ports import UnitOfWork
from models.results import Rejection
from tasks.dead_letters import bury
from tasks.pipeline import Delivery, Outcome, process, reject_unbound
from tasks.registry import COMMANDS
from tasks.retry import RetryPolicy

log = logging.getLogger("custody.tasks")


class TaskRuntime(Protocol):
    """What the adapters need from the process they run in."""

    retry_policy: RetryPolicy

    def uow(self) -> UnitOfWork: ...


def register_tasks(app: Celery, runtime: TaskRuntime) -> None:
    for name in COMMANDS:
        _register(app, name, runtime)


def _register(app: Celery, name: str, runtime: TaskRuntime) -> None:
    @app.task(  # type: ignore[untyped-decorator]
        name=name,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        typing=False,
    )
    def run(self: Task, command: Any = None, *_: Any, **__: Any) -> None:
        delivery = Delivery(task=name, message_id=str(self.request.id), command=command)
        retries = int(self.request.retries or 0)
        try:
            outcome = process(delivery, runtime.uow)
        except Transient as exc:
            if not runtime.retry_policy.exhausted(retries):
                delay = runtime.retry_policy.delay_s(retries)
                log.warning("transient fault, retry %d in %.1fs: %s", retries + 1, delay, exc)
                raise self.retry(exc=exc, countdown=delay, max_retries=None) from exc
            outcome = _give_up(self, delivery, runtime, f"transient fault outlived retries: {exc}")
        except Exception as exc:  # a defect must not loop: keep the message, answer 500
            log.exception("unexpected error processing %s", delivery.message_id)
            outcome = _give_up(self, delivery, runtime, f"internal error: {exc!r}")
        _log(outcome, name)
        _reply(self, outcome)

    del run


def _give_up(task: Task, delivery: Delivery, runtime: TaskRuntime, reason: str) -> Outcome:
    """Dead-letter the command with its payload and answer 500 INTERNAL."""
    retries = int(task.request.retries or 0)
    try:
        bury(
            runtime.uow,
            body=json.dumps(delivery.command, ensure_ascii=False),
            reason=reason,
            message_id=delivery.message_id,
            task=delivery.task,
            headers={"retries": retries, "reply_to": task.request.reply_to},
            attempts=retries + 1,
        )
        return reject_unbound(delivery, Rejected(500, "INTERNAL", reason), runtime.uow)
    except Transient as exc:
        # The store itself is unreachable: keep the message where it is and try later.
        delay = runtime.retry_policy.max_s
        log.error("cannot store dead letter (%s); message kept, retry in %.0fs", exc, delay)
        raise task.retry(exc=exc, countdown=delay, max_retries=None) from exc
    except Exception as exc:
        raise Reject(f"cannot store dead letter: {exc!r}", requeue=True) from exc


def _log(outcome: Outcome, task: str) -> None:
    if outcome.success or outcome.replayed:
        if not log.isEnabledFor(logging.DEBUG):
            return  # one line per command is too much at this rate, except when debugging
        log.debug(
            "%s %s/%s -> %s%s",
            task,
            outcome.organization_id,
            outcome.request_id,
            outcome.result.get("statusCode"),
            " (replayed)" if outcome.replayed else "",
        )
    else:
        rejection = Rejection.model_validate(outcome.result, by_alias=True)
        log.info(
            "%s %s/%s rejected %s %s: %s",
            task,
            outcome.organization_id,
            outcome.request_id,
            rejection.status_code,
            rejection.error_code,
            "; ".join(rejection.error_messages),
        )


def _reply(task: Task, outcome: Outcome) -> None:
    """Send the result to the publisher's reply queue, if it asked for one."""
    reply_to = task.request.reply_to
    if not reply_to:
        return
    try:
        with task.app.producer_or_acquire() as producer:
            producer.publish(
                outcome.reply(),
                exchange="",
                routing_key=reply_to,
                correlation_id=task.request.correlation_id or task.request.id,
                serializer="json",
                retry=True,
                retry_policy={"max_retries": 3},
            )
    except Exception:  # the result is committed; the publisher can ask for it by requestId
        log.warning("could not reply to %s for %s", reply_to, outcome.request_id, exc_info=True)
