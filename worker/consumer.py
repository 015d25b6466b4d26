"""The worker's consumer: every message that cannot become a task call goes to the
dead-letter store with its raw body and the reason, and is acknowledged; none is dropped
and none loops.

A message the broker hands out again (its worker was lost, or it outran the hard time
limit) is counted: the consumer publishes a copy carrying the delivery count and
acknowledges the original; past ``max_deliveries`` the message is dead-lettered instead.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from celery.worker.consumer import Consumer
from vine import promise

from models.constants import MAX_MESSAGE_BYTES
from models.topology import commands_queue
from tasks.dead_letters import BODY_MESSAGE, bury
from tasks.registry import COMMANDS

log = logging.getLogger("custody.worker")

# Message header counting the deliveries of a command that ended without an outcome.
DELIVERIES_HEADER = "custody_deliveries"


def inspect_message(message: Any) -> str | None:
    """Why this message cannot be processed, or None if it is a well-formed command call."""
    body = message.body
    size = len(body) if isinstance(body, bytes | str) else 0
    if size > MAX_MESSAGE_BYTES:
        return f"message too large: {size} bytes, at most {MAX_MESSAGE_BYTES}"
    headers = message.headers
    if not isinstance(headers, dict) or not isinstance(headers.get("task"), str):
        return "not a task message: no 'task' header (Celery task protocol 2 expected)"
    if not isinstance(headers.get("id"), str):
        return "not a task message: no 'id' header"
    task = headers["task"]
    if task not in COMMANDS:
        return f"unknown task {task!r}; known: {', '.join(sorted(COMMANDS))}"
    if message.content_type != "application/json":
        return f"content type {message.content_type!r} not accepted; application/json expected"
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"body is not JSON: {exc}"
    if not (
        isinstance(decoded, list)
        and len(decoded) == 3
        and isinstance(decoded[0], list)
        and isinstance(decoded[1], dict)
    ):
        return "wrong shape: body must be [args, kwargs, embed]"
    if len(decoded[0]) != 1 or decoded[1]:
        return "wrong shape: exactly one positional argument (the command) and no keyword arguments"
    return None


def body_text(body: Any) -> str:
    """The raw body as text, kept losslessly: UTF-8 as is, anything else as base64."""
    if isinstance(body, str):
        return body
    if isinstance(body, bytes):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(body).decode("ascii")
    return repr(body)


def was_redelivered(message: Any) -> bool:
    """Whether the broker handed this message out before (AMQP, Redis, filesystem)."""
    headers = message.headers if isinstance(message.headers, dict) else {}
    info = message.delivery_info if isinstance(message.delivery_info, dict) else {}
    raw = getattr(message, "_raw", None)  # kombu's virtual transports mark the payload
    return bool(
        headers.get("redelivered")
        or info.get("redelivered")
        or (isinstance(raw, dict) and raw.get("redelivered"))
    )


def deliveries_so_far(message: Any) -> int:
    """How many times this message was delivered before, by the count it carries."""
    headers = message.headers if isinstance(message.headers, dict) else {}
    count = headers.get(DELIVERIES_HEADER)
    return count if isinstance(count, int) and count >= 1 else 1


class CustodyConsumer(Consumer):  # type: ignore[misc]
    def create_task_handler(self, promise: Any = promise) -> Any:
        handle = super().create_task_handler(promise)

        def on_task_received(message: Any) -> Any:
            problem = inspect_message(message)
            if problem is not None:
                self._bury(message, problem)
            elif was_redelivered(message):
                self._count_redelivery(message)
            else:
                return handle(message)
            return None

        return on_task_received

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        self._bury(message, f"undecodable message: {exc}")

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self._bury(message, "not a task message")

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        self._bury(message, f"unknown task: {exc}")

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        self._bury(message, f"invalid task message: {exc}")

    def _count_redelivery(self, message: Any) -> None:
        """Send a redelivered message on with its delivery count, or dead-letter it."""
        settings = self.app.custody_runtime.settings
        deliveries = deliveries_so_far(message) + 1
        headers = message.headers if isinstance(message.headers, dict) else {}
        if deliveries > settings.max_deliveries:
            self._bury(
                message,
                f"delivered {deliveries - 1} times without an outcome (the worker was lost or "
                "the hard time limit passed each time)",
                attempts=deliveries - 1,
            )
            return
        log.warning(
            "message %s redelivered (delivery %d of at most %d)",
            headers.get("id"),
            deliveries,
            settings.max_deliveries,
        )
        queue = commands_queue(settings.commands_queue)
        properties = message.properties if isinstance(message.properties, dict) else {}
        forwarded = {
            k: properties[k] for k in ("correlation_id", "reply_to", "priority") if k in properties
        }
        try:
            with self.app.producer_or_acquire() as producer:
                producer.publish(
                    message.body,
                    exchange=queue.exchange,
                    routing_key=queue.routing_key,
                    headers={
                        **{k: v for k, v in headers.items() if k != "redelivered"},
                        DELIVERIES_HEADER: deliveries,
                    },
                    content_type=message.content_type,
                    content_encoding=message.content_encoding,
                    delivery_mode=2,
                    retry=True,
                    retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
                    **forwarded,
                )
        except Exception:
            log.exception("could not forward redelivered message %s", headers.get("id"))
            self._requeue_later(message)
            return
        message.ack()

    def _bury(self, message: Any, reason: str, *, attempts: int = 1) -> None:
        headers = message.headers if isinstance(message.headers, dict) else {}
        try:
            bury(
                self.app.custody_runtime.uow,
                body=body_text(message.body),
                reason=reason,
                message_id=headers.get("id") if isinstance(headers.get("id"), str) else None,
                task=headers.get("task") if isinstance(headers.get("task"), str) else None,
                headers={
                    "body_format": BODY_MESSAGE,
                    "headers": headers,
                    "properties": dict(message.properties or {}),
                    "content_type": message.content_type,
                },
                attempts=attempts,
            )
        except Exception:
            log.exception("could not store a dead letter; message goes back to the broker")
            self._requeue_later(message)
            return
        message.ack()

    def _requeue_later(self, message: Any) -> None:
        """Give the message back to the broker after a pause (the store may be down for a
        while): it is neither lost nor kept here holding a prefetch slot, nor spun on."""
        delay_s = self.app.custody_runtime.settings.retry_backoff_max_s

        def requeue() -> None:
            if getattr(message.channel, "closed", False):
                # Received on a connection since replaced: rejecting through it would drop
                # the message (kombu's Redis transport); the broker restores it instead.
                return
            try:
                message.reject(requeue=True)
            except Exception:  # connection gone: the broker restores it (visibility timeout)
                log.warning("could not requeue message; the broker restores it", exc_info=True)

        self.timer.call_after(delay_s, requeue)
