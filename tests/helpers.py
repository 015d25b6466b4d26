"""Small builders shared by tests."""

from __future__ import annotations

import uuid
from typing import Any

from models import constants as c
from tasks.pipeline import Delivery, Outcome, process


def assign_body(org: str, device: str, emails: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "requestId": extra.pop("requestId", f"req-{uuid.uuid4().hex}"),
        "organizationId": org,
        "deviceIdentifier": device,
        "customerEmails": emails,
        **extra,
    }


def deliver(backend: Any, body: Any, task: str = c.ASSIGN_DEVICE) -> Outcome:
    return process(Delivery(task=task, message_id=str(uuid.uuid4()), command=body), backend.uow)


def new_device() -> str:
    return f"SN-{uuid.uuid4().hex[:10]}"


def unassign_body(org: str, device: str, emails: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "requestId": extra.pop("requestId", f"req-{uuid.uuid4().hex}"),
        "organizationId": org,
        "deviceIdentifier": device,
        "customerEmails": emails,
        **extra,
    }
