"""The dead-letter store's write side: messages that could not be processed, kept whole."""

from __future__ import annotations

import logging
import math
from typing import Any

from models.limits import clean_text
from models.ports import DeadLetterRecord, UnitOfWorkFactory

log = logging.getLogger("custody.dead_letters")

MAX_REASON_CHARS = 2_000


def bury(
    uow_factory: UnitOfWorkFactory,
    *,
    body: str,
    reason: str,
    message_id: str | None,
    task: str | None,
    headers: dict[str, Any],
    attempts: int,
) -> int:
    """Store a dead letter and return its id. Raises if the store is unreachable, so the
    caller can leave the message on the queue rather than lose it."""
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
        uow.commit()
    log.warning(
        "dead-lettered message %r (task %r): %r",
        record.message_id,
        record.task,
        record.reason,
        extra={"message_id": record.message_id, "dead_letter_id": dead_letter_id},
    )
    return dead_letter_id


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
