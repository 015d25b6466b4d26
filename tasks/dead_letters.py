"""The dead-letter store: messages that could not be processed, kept whole, and what a
replay of each one sends again."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from models.constants import MAX_MESSAGE_BYTES
from models.errors import CustodyError
from models.limits import clean_text
from models.ports import DeadLetterRecord, RejectionRecord, StoredDeadLetter, UnitOfWorkFactory

log = logging.getLogger("custody.dead_letters")

MAX_REASON_CHARS = 2_000

# What a dead letter's ``body`` holds, named in its headers under "body_format":
BODY_COMMAND = "command"  # the JSON of the command a task call carried (retries ran out…)
BODY_MESSAGE = "message"  # the message body exactly as it came off the queue


def bury(
    uow_factory: UnitOfWorkFactory,
    *,
    body: str,
    reason: str,
    message_id: str | None,
    task: str | None,
    headers: dict[str, Any],
    attempts: int,
    rejection: RejectionRecord | None = None,
) -> int:
    """Store a dead letter (and the rejection that answers it, in the same transaction)
    and return its id. Raises if the store is unreachable, so the caller can leave the
    message on the queue rather than lose it."""
    record = DeadLetterRecord(
        message_id=_short(message_id),
        task=_short(task),
        reason=clean_text(reason[:MAX_REASON_CHARS]),
        body=clean_text(body),
        headers=_json_safe(headers),
        attempts=attempts,
    )
    with uow_factory() as uow:
        dead_letter_id = uow.dead_letters.add(record)
        if rejection is not None:
            uow.rejections.add(rejection)
        uow.commit()
    log.warning(
        "dead-lettered message %r (task %r) as #%d: %r",
        record.message_id,
        record.task,
        dead_letter_id,
        record.reason,
        extra={"message_id": record.message_id, "dead_letter_id": dead_letter_id},
    )
    return dead_letter_id


class NotReplayable(CustodyError):
    """Raised when a dead letter holds nothing that can be sent again."""


@dataclass(frozen=True)
class Replay:
    """What replaying a dead letter publishes: one command to its task."""

    task: str
    command: Any
    message_id: str | None  # the original message id, so the trail stays one message


def replay_of(dead: StoredDeadLetter, *, known_tasks: Collection[str]) -> Replay:
    """The command a dead letter carried, ready to publish again; ``NotReplayable`` says
    why not when the letter holds no single command of a known task."""
    refuse = f"dead letter #{dead.id} cannot be replayed"
    if dead.task is None or dead.task not in known_tasks:
        raise NotReplayable(f"{refuse}: task {dead.task!r} is not a command this version knows")
    if len(dead.body.encode()) > MAX_MESSAGE_BYTES:
        raise NotReplayable(f"{refuse}: its body is over {MAX_MESSAGE_BYTES} bytes")
    try:
        decoded = json.loads(dead.body)
    except ValueError:
        raise NotReplayable(
            f"{refuse}: its body is not JSON (an undecodable message); it is kept for inspection"
        ) from None
    if _body_format(dead) == BODY_COMMAND:
        return Replay(dead.task, decoded, dead.message_id)
    if not (
        isinstance(decoded, list)
        and len(decoded) == 3
        and isinstance(decoded[0], list)
        and len(decoded[0]) == 1
        and not decoded[1]
    ):
        raise NotReplayable(
            f"{refuse}: its body is not a call with exactly one command (wrong shape)"
        )
    return Replay(dead.task, decoded[0][0], dead.message_id)


def _body_format(dead: StoredDeadLetter) -> str:
    given = dead.headers.get("body_format")
    if isinstance(given, str):
        return given
    # Written before the format was named: the worker's consumer kept the message headers.
    return BODY_MESSAGE if "headers" in dead.headers else BODY_COMMAND


MAX_HEADER_DEPTH = 6  # a message's headers are kept to this depth …
MAX_HEADER_ITEMS = 100  # … this many items per object or array …
MAX_HEADER_CHARS = 2_000  # … and this many characters per text; the rest is cut


def _json_safe(value: Any, depth: int = 0) -> Any:
    """Headers as a JSON column takes them, bounded: they come from the sender."""
    if isinstance(value, dict | list | tuple) and depth >= MAX_HEADER_DEPTH:
        return "<cut: nested too deeply>"
    if isinstance(value, dict):
        items = list(value.items())[:MAX_HEADER_ITEMS]
        return {_json_safe(str(k), depth): _json_safe(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple):
        return [_json_safe(v, depth + 1) for v in value[:MAX_HEADER_ITEMS]]
    if isinstance(value, str):
        return clean_text(value[:MAX_HEADER_CHARS])
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, int | float | bool):
        return value
    return repr(value)[:MAX_HEADER_CHARS]


def _short(value: str | None) -> str | None:
    """A message id or task name as its 255-character column takes it."""
    return None if value is None else clean_text(value)[:255]
