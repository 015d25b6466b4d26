"""Small builders shared by tests."""

from __future__ import annotations

import uuid
from typing import Any

from models import constants as c
from models.signing import sign
from tasks.authenticate import Authenticator
from tasks.pipeline import Delivery, Outcome, process


def assign_body(org: str, device: str, emails: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "requestId": extra.pop("requestId", f"req-{uuid.uuid4().hex}"),
        "organizationId": org,
        "deviceIdentifier": device,
        "customerEmails": emails,
        **extra,
    }


def deliver(
    backend: Any,
    body: Any,
    task: str = c.ASSIGN_DEVICE,
    *,
    authenticator: Authenticator | None = None,
) -> Outcome:
    """Run ``body`` through the pipeline; signatures are checked when present (required
    only with an ``authenticator`` that requires them)."""
    return process(
        Delivery(task=task, message_id=str(uuid.uuid4()), command=body),
        backend.uow,
        authenticator=authenticator or backend.authenticator,
    )


def signed(backend: Any, body: dict[str, Any], org: str | None = None) -> dict[str, Any]:
    """``body`` signed with the key of ``org`` (default: the organization it names)."""
    key = backend.key_for(org or body["organizationId"])
    assert key is not None, "sign with a key of an organization made by backend.new_org()"
    return sign(body, key)


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
