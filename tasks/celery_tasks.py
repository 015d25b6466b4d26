"""Thin Celery adapters: one task per command name. Each parses nothing itself; it hands
the delivery to the pipeline and maps the outcome to reply, retry or dead letter.

No outcome loses the message: it is answered (and acknowledged), retried (a new message is
published before this one is acknowledged), dead-lettered (stored before it is
acknowledged), or left on the broker (rejected with requeue) when none of that is possible.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from celery import Celery, Task
from celery.exceptions import Reject, Retry, SoftTimeLimitExceeded
from kombu.exceptions import OperationalError as KombuOperationalError

from models.constants import MAX_MESSAGE_BYTES
from models.errors import Rejected, Transient
from models.limits import storable_json
from models.ports import UnitOfWork
from models.results import Rejection
from models.signing import redacted
from tasks.authenticate import Authenticator
from tasks.coalesced import process_group
from tasks.dead_letters import BODY_COMMAND, bury
from tasks.pipeline import Delivery, Outcome, process, unbound_rejection
from tasks.registry import COMMANDS
from tasks.retry import RetryPolicy, call_with_retries

log = logging.getLogger("custody.tasks")


class TaskRuntime(Protocol):
    """What the adapters need from the process they run in."""

    retry_policy: RetryPolicy  # transient faults of a command
    publish_policy: RetryPolicy  # a publish (retry message, reply) the broker refused

    @property
    def authenticator(self) -> Authenticator: ...

    def uow(self) -> UnitOfWork: ...

    def observe(self, task: str, outcome: str, duration_s: float) -> None:
        """Count one answered command (applied, replayed, rejected, failed) and its time."""

    def observe_retry(self, task: str) -> None: ...

    def observe_dead_letter(self, source: str) -> None: ...


class PublishFailed(Exception):
    """Raised when the broker refused to take a message a worker publishes."""


def register_tasks(app: Celery, runtime: TaskRuntime) -> None:
    for name in COMMANDS:
        _register(app, name, runtime)


def _register(app: Celery, name: str, runtime: TaskRuntime) -> None:
    @app.task(  # type: ignore[untyped-decorator]
        name=name,
        shared=False,  # this app's own (another app in the process gets its own)
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        typing=False,
        max_retries=None,  # the retry policy is the one bound (Celery's default would be 3)
    )
    def run(self: Task, command: Any = None, *_: Any, **__: Any) -> None:
        _guarded(self, name, runtime, command)

    del run


def _guarded(task: Task, name: str, runtime: TaskRuntime, command: Any) -> None:
    try:
        _handle(task, name, runtime, command)
    except (Retry, Reject):
        raise
    except Exception as exc:  # last resort: back on the broker, counted, never dropped
        log.exception("unexpected error around %s; message left on the broker", name)
        raise Reject(f"unexpected error: {exc!r}", requeue=True) from exc


@dataclass(frozen=True)
class Queued:
    """What a pool process needs of one message of a group (picklable)."""

    id: str
    body: bytes | str  # the raw task message body: [args, kwargs, embed]
    reply_to: str | None
    correlation_id: str | None
    delivery_info: dict[str, Any]


def run_group(task: Task, runtime: TaskRuntime, queued: list[Queued]) -> list[bool]:
    """Apply a group of the same task's messages; for each, whether to acknowledge it
    (True) or give it back to the broker (False).

    The group goes through ``process_group``; what it leaves, and every message of a group
    whose transaction failed, takes the one-by-one path with its retries and dead letters,
    in delivery order, each as if it had come alone.
    """
    name = task.name
    started = time.monotonic()
    deliveries = [Delivery(name, q.id, _command_of(q.body)) for q in queued]
    try:
        outcomes = process_group(deliveries, runtime.uow, authenticator=runtime.authenticator)
    except SoftTimeLimitExceeded:
        log.warning("a group of %d ran out of time; back on the broker", len(queued))
        return [False] * len(queued)
    except Transient as exc:
        log.warning("group of %d not applied (%s); one by one", len(queued), exc)
        outcomes = [None] * len(queued)
    except Exception:  # a defect: logged in full, and each message on its own then
        log.exception("group of %d not applied; one by one", len(queued))
        outcomes = [None] * len(queued)
    took_s = (time.monotonic() - started) / max(1, len(queued))
    acks = []
    for q, delivery, outcome in zip(queued, deliveries, outcomes, strict=True):
        if outcome is None:
            acks.append(_alone(task, runtime, q, delivery.command))
            continue
        _log(outcome, name)
        runtime.observe(name, _outcome_label(outcome), took_s)
        _reply(task.app, runtime, outcome, q.reply_to, q.correlation_id or q.id)
        acks.append(True)
    return acks


def _command_of(body: bytes | str) -> Any:
    """The single positional argument (the consumer checked the shape on receipt)."""
    args, _, _ = json.loads(body)
    return args[0]


def _alone(task: Task, runtime: TaskRuntime, q: Queued, command: Any) -> bool:
    """One message of a group through the one-by-one path, as the task would run it."""
    task.push_request(
        id=q.id,
        args=[command],
        kwargs={},
        retries=0,
        reply_to=q.reply_to,
        correlation_id=q.correlation_id,
        delivery_info=q.delivery_info,
        is_eager=False,
        called_directly=False,
    )
    try:
        _guarded(task, task.name, runtime, command)
    except Retry:
        return True  # its retry is on the broker
    except Reject as refused:
        return not refused.requeue
    finally:
        task.pop_request()
    return True


def _handle(task: Task, name: str, runtime: TaskRuntime, command: Any) -> None:
    started = time.monotonic()
    delivery = Delivery(task=name, message_id=str(task.request.id), command=command)
    retries = int(task.request.retries or 0)
    try:
        outcome = process(delivery, runtime.uow, authenticator=runtime.authenticator)
    except Transient as exc:
        if not runtime.retry_policy.exhausted(retries):
            delay = runtime.retry_policy.delay_s(retries)
            log.warning("transient fault, retry %d in %.1fs: %s", retries + 1, delay, exc)
            runtime.observe_retry(name)
            _retry_later(task, runtime, exc, delay)
        outcome = _give_up(
            task, delivery, runtime, f"transient fault outlived {retries} retries: {exc}"
        )
    except SoftTimeLimitExceeded:
        limit = task.app.conf.task_soft_time_limit
        outcome = _give_up(task, delivery, runtime, f"time limit: not done within {limit}s")
    except Exception as exc:  # a defect must not loop: keep the message, answer 500
        log.exception("unexpected error processing %s", delivery.message_id)
        outcome = _give_up(task, delivery, runtime, f"internal error: {exc!r}")
    _log(outcome, name)
    runtime.observe(name, _outcome_label(outcome), time.monotonic() - started)
    request = task.request
    _reply(task.app, runtime, outcome, request.reply_to, request.correlation_id or request.id)


def _outcome_label(outcome: Outcome) -> str:
    if outcome.replayed:
        return "replayed"
    if outcome.success:
        return "applied"
    return "failed" if outcome.result.get("statusCode") == 500 else "rejected"


def _retry_later(task: Task, runtime: TaskRuntime, exc: Exception, delay_s: float) -> NoReturn:
    """Publish the retry, then let Celery acknowledge this message. A broker that refuses
    the retry (after the publish policy's own retries) gets this message back instead."""

    def publish() -> Any:
        try:
            return task.retry(exc=exc, countdown=delay_s, throw=False)
        except Reject as refused:  # what Celery raises when the retry could not be sent
            raise PublishFailed(str(refused.reason)) from refused

    try:
        retry = call_with_retries(
            publish, policy=runtime.publish_policy, retry_on=(PublishFailed,), what="retry publish"
        )
    except PublishFailed as failed:
        log.error("cannot publish a retry (%s); message left on the broker", failed)
        raise Reject(f"retry not published: {failed}", requeue=True) from exc
    raise retry


def _give_up(task: Task, delivery: Delivery, runtime: TaskRuntime, reason: str) -> Outcome:
    """Dead-letter the command with its payload and answer 500 INTERNAL, in one transaction."""
    retries = int(task.request.retries or 0)
    record, outcome = unbound_rejection(delivery, Rejected(500, "INTERNAL", reason))
    try:
        bury(
            runtime.uow,
            body=storable_json(redacted(delivery.command), max_chars=MAX_MESSAGE_BYTES) or "",
            reason=reason,
            message_id=delivery.message_id,
            task=delivery.task,
            headers={
                "body_format": BODY_COMMAND,
                "retries": retries,
                "reply_to": task.request.reply_to,
                "correlation_id": task.request.correlation_id,
            },
            attempts=retries + 1,
            rejection=record,
        )
        runtime.observe_dead_letter("task")
    except Transient as exc:
        # The store itself is unreachable: keep the message and try again later.
        log.error("cannot store dead letter (%s); message kept", exc)
        _retry_later(task, runtime, exc, runtime.retry_policy.max_s)
    except Exception as exc:
        raise Reject(f"cannot store dead letter: {exc!r}", requeue=True) from exc
    return outcome


def _log(outcome: Outcome, task: str) -> None:
    quiet = outcome.success or outcome.replayed
    # One line per applied command is too much at this rate, except when debugging; an
    # answer replayed from the idempotency record (a duplicate, a rerun) is worth a line.
    level = logging.INFO if outcome.replayed else logging.DEBUG
    if quiet and not log.isEnabledFor(level):
        return
    context = {
        "task": task,
        "request_id": outcome.request_id,
        "organization_id": outcome.organization_id,
        "status_code": outcome.result.get("statusCode"),
        "outcome": _outcome_label(outcome),
    }
    if quiet:
        log.log(
            level,
            "%s %s/%s -> %s%s",
            task,
            outcome.organization_id,
            outcome.request_id,
            outcome.result.get("statusCode"),
            " (replayed)" if outcome.replayed else "",
            extra=context,
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
            extra={**context, "error_code": rejection.error_code},
        )


def _reply(
    app: Celery, runtime: TaskRuntime, outcome: Outcome, reply_to: str | None, correlation_id: str
) -> None:
    """Send the result to the publisher's reply queue, if it asked for one. The result is
    committed already: a reply that cannot be sent is logged, and ``custody status`` has it.
    """
    if not reply_to:
        return

    def publish() -> None:
        with app.producer_or_acquire() as producer:
            producer.publish(
                outcome.reply(),
                exchange="",
                routing_key=reply_to,
                correlation_id=correlation_id,
                serializer="json",
                retry=True,
                retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.5},
            )

    try:
        call_with_retries(
            publish, policy=runtime.publish_policy, retry_on=_broker_errors(app), what="reply"
        )
    except Exception:
        log.warning("could not reply to %s for %s", reply_to, outcome.request_id, exc_info=True)


@functools.cache
def _broker_errors(app: Celery) -> tuple[type[BaseException], ...]:
    """What the broker raises when it is unreachable (Redis, AMQP… alike)."""
    with app.connection_for_write() as connection:
        return (KombuOperationalError, OSError, *connection.connection_errors)
