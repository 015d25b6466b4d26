"""The worker's consumer: every message that cannot become a task call goes to the
dead-letter store with its raw body and the reason, and is acknowledged; none is dropped
and none loops."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from celery.worker.consumer import Consumer
from vine import promise

from models.constants import MAX_MESSAGE_BYTES
from tasks.dead_letters import bury
from tasks.registry import COMMANDS

log = logging.getLogger("custody.worker")


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


class CustodyConsumer(Consumer):  # type: ignore[misc]
    def create_task_handler(self, promise: Any = promise) -> Any:
        handle = super().create_task_handler(promise)

        def on_task_received(message: Any) -> Any:
            problem = inspect_message(message)
            if problem is None:
                return handle(message)
            self._bury(message, problem)
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

    def _bury(self, message: Any, reason: str) -> None:
        headers = message.headers if isinstance(message.headers, dict) else {}
        try:
            bury(
                self.app.custody_runtime.uow,
                body=body_text(message.body),
                reason=reason,
                message_id=headers.get("id") if isinstance(headers.get("id"), str) else None,
                task=headers.get("task") if isinstance(headers.get("task"), str) else None,
                headers={
                    "headers": headers,
                    "properties": dict(message.properties or {}),
                    "content_type": message.content_type,
                },
                attempts=1,
            )
        except Exception:
            # Not acknowledged: the broker hands it out again later (visibility timeout).
            log.exception("could not store a dead letter; message left unacknowledged")
            return
        message.ack()
