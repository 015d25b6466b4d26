"""Read side for operators: the recorded answer to a requestId."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.ports import UnitOfWork


@dataclass(frozen=True)
class RecordedResult:
    request_id: str
    organization_id: str | None
    task: str
    result: dict[str, Any]
    binding: bool  # True: the idempotency record; False: a rejection that bound nothing


def find_result(uow: UnitOfWork, organization_id: str, request_id: str) -> RecordedResult | None:
    stored = uow.commands.get(organization_id, request_id)
    if stored is not None:
        return RecordedResult(request_id, organization_id, stored.task, stored.result, True)
    rejection = uow.rejections.latest(organization_id, request_id)
    if rejection is None:
        rejection = uow.rejections.latest(None, request_id)
    if rejection is not None:
        return RecordedResult(
            request_id, rejection.organization_id, rejection.task, rejection.result, False
        )
    return None
