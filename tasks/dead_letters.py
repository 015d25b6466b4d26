"""The dead-letter store's write side: messages that could not be processed, kept whole."""

from __future__ import annotations

import logging
from typing import Any

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
        message_id=message_id,
        task=task,
        reason=reason[:MAX_REASON_CHARS],
        body=body,
        headers=_json_safe(headers),
        attempts=attempts,
    )
    with uow_factory() as uow:
        dead_letter_id = uow.dead_letters.add(record)
        uow.commit()
    log.warning(
        "dead-lettered message %s (task %s): %s",
        message_id,
        task,
        record.reason,
        extra={"message_id": message_id, "dead_letter_id": dead_letter_id},
    )
    return dead_letter_id


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)
