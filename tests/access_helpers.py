"""Builders for the access tests: commands, and a device with an owner to grant from."""

from __future__ import annotations

import uuid
from typing import Any

from models import constants as c
from tasks.pipeline import Outcome
from tests.helpers import assign_body, deliver, new_device

OWNER = "owner@example.com"


def grant_body(
    org: str, device: str, user: str, *, by: str = OWNER, level: int = 0, **extra: Any
) -> dict[str, Any]:
    return {
        "requestId": extra.pop("requestId", f"grant-{uuid.uuid4().hex}"),
        "organizationId": org,
        "deviceIdentifier": device,
        "grantedBy": by,
        "userEmail": user,
        "accessLevel": level,
        **extra,
    }


def update_body(
    org: str, device: str, access_id: int, *, by: str = OWNER, **changes: Any
) -> dict[str, Any]:
    return {
        "requestId": changes.pop("requestId", f"update-{uuid.uuid4().hex}"),
        "organizationId": org,
        "deviceIdentifier": device,
        "accessId": access_id,
        "updatedBy": by,
        **changes,
    }


def revoke_body(org: str, device: str, access_id: int, *, by: str = OWNER) -> dict[str, Any]:
    return {
        "requestId": f"revoke-{uuid.uuid4().hex}",
        "organizationId": org,
        "deviceIdentifier": device,
        "accessId": access_id,
        "revokedBy": by,
    }


def owned_device(backend: Any, owner: str = OWNER) -> tuple[str, str]:
    """A new organization and a device in it owned by ``owner``."""
    org, device = backend.new_org(), new_device()
    outcome = deliver(
        backend, assign_body(org, device, [owner], autoCreateDevice=True, deviceType="Lock")
    )
    assert outcome.success, outcome.result
    return org, device


def grant(backend: Any, body: dict[str, Any]) -> Outcome:
    return deliver(backend, body, c.GRANT_ACCESS)


def update(backend: Any, body: dict[str, Any]) -> Outcome:
    return deliver(backend, body, c.UPDATE_ACCESS)


def revoke(backend: Any, body: dict[str, Any]) -> Outcome:
    return deliver(backend, body, c.REVOKE_ACCESS)


def granted(backend: Any, org: str, device: str, user: str, **fields: Any) -> int:
    """Grant ``user`` access (from the owner unless ``by``) and return the access id."""
    outcome = grant(backend, grant_body(org, device, user, **fields))
    assert outcome.success, outcome.result
    return int(outcome.result["result"]["id"])


def without_records(state: Any) -> Any:
    """The state minus the idempotency and rejection records every command leaves."""
    state.processed, state.rejections = {}, []
    return state
