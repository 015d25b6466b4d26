"""The worker's consumer: every message that cannot become a task call goes to the
dead-letter store with its raw body and the reason, and is acknowledged; none is dropped
and none loops.

A message the broker hands out again (its worker was lost, or it outran the hard time
limit) is counted: the consumer publishes a copy carrying the delivery count and
acknowledges the original; past ``max_deliveries`` the message is dead-lettered instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from typing import Any

from celery.worker.consumer import Consumer
from kombu import compression
from vine import promise

from models.constants import MAX_MESSAGE_BYTES
from models.limits import is_clean_text
from models.signing import redact_text
from models.topology import commands_queue
from tasks.dead_letters import BODY_MESSAGE, bury
from tasks.registry import COMMANDS

log = logging.getLogger("custody.worker")

MAX_MESSAGE_ID_CHARS = 255  # the column that keeps it
MAX_KEPT_OVERSIZED_BYTES = 65_536  # of an oversized message's body, kept in its dead letter
# Message header counting the deliveries of a command that ended without an outcome.
DELIVERIES_HEADER = "custody_deliveries"


def inspect_message(message: Any) -> str | None:
    """Why this message cannot be processed, or None if it is a well-formed command call."""
    body = message.body
    size = len(body) if isinstance(body, bytes | str) else 0
    if size > MAX_MESSAGE_BYTES:
        return f"message too large: {size} bytes, at most {MAX_MESSAGE_BYTES} (limit on size)"
    headers = message.headers
    if not isinstance(headers, dict) or not isinstance(headers.get("task"), str):
        return "not a task message: no 'task' header (Celery task protocol 2 expected)"
    message_id = headers.get("id")
    if not isinstance(message_id, str):
        return "not a task message: no 'id' header"
    if not 0 < len(message_id) <= MAX_MESSAGE_ID_CHARS or not is_clean_text(message_id):
        return f"'id' header: a text of 1 to {MAX_MESSAGE_ID_CHARS} characters expected"
    task = headers["task"]
    if task not in COMMANDS:
        return f"unknown task {task!r:.300}; known: {', '.join(sorted(COMMANDS))}"
    if headers.get("compression") is not None:
        return "compressed messages are not accepted (their size is unknown until unpacked)"
    if message.content_type != "application/json":
        return f"content type {message.content_type!r:.100} not accepted; application/json expected"
    try:
        # UTF-8 as the worker will read it (json.loads would also guess UTF-16 and UTF-32)
        decoded = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        return f"body is not JSON: {exc}"
    except RecursionError:
        return "body is not JSON this worker can read: nested too deeply"
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
    """The raw body as text, kept losslessly: UTF-8 as is, anything else (or text with NUL,
    which a text column refuses) as base64."""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and "\x00" not in text:
            return text
        return "base64:" + base64.b64encode(body).decode("ascii")
    return repr(body)


def kept_body(body: Any) -> tuple[str, dict[str, Any]]:
    """What a dead letter keeps of a body, and notes on it: the body whole, its signature
    values redacted; of an oversized body only the start, its size and digest."""
    notes: dict[str, Any] = {}
    if isinstance(body, bytes | str) and len(body) > MAX_MESSAGE_BYTES:
        raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
        notes = {
            "truncated": True,
            "size_bytes": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest(),
        }
        body = raw[:MAX_KEPT_OVERSIZED_BYTES]
    return redact_text(body_text(body)), notes


def bury_message(uow_factory: Any, message: Any, reason: str, *, attempts: int = 1) -> int:
    """Store ``message`` as a dead letter with ``reason``; raises if the store is unreachable."""
    headers = message.headers if isinstance(message.headers, dict) else {}
    body, notes = kept_body(message.body)
    return bury(
        uow_factory,
        body=body,
        reason=reason,
        message_id=headers.get("id") if isinstance(headers.get("id"), str) else None,
        task=headers.get("task") if isinstance(headers.get("task"), str) else None,
        headers={
            "body_format": BODY_MESSAGE,
            "headers": headers,
            "properties": dict(message.properties or {}),
            "content_type": message.content_type,
            **notes,
        },
        attempts=attempts,
    )


def refuse_compressed_messages() -> None:
    """Make kombu refuse to unpack compressed bodies in this process: a small compressed
    message can unpack to gigabytes before any size check sees it. Such a message then
    fails to decode and goes to the dead-letter store."""
    for content_type in compression.encoders():
        encoder, _ = compression.get_encoder(content_type)
        compression.register(encoder, _refuse_compressed, content_type)


def _refuse_compressed(body: bytes) -> bytes:
    raise ValueError("compressed messages are not accepted (their size is unknown until unpacked)")


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
        try:
            bury_message(self.app.custody_runtime.uow, message, reason, attempts=attempts)
            self.app.custody_runtime.observe_dead_letter("consumer")
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
