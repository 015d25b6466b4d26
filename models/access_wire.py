"""Results and event data of the access commands, as they travel on the wire.

Importing this module declares the ``data`` shape of ``access.granted``,
``access.updated`` and ``access.revoked``.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any, Literal

from pydantic import Field

from models.access import Access, AccessGranted, AccessRevoked, AccessUpdated
from models.commands import WireModel
from models.events import register_event_data

# Python field names of the schedule → their names on the wire, for ``changedFields``.
WIRE_NAMES = {
    "access_level": "accessLevel",
    "remote_access_disabled": "remoteAccessDisabled",
    "week_days": "weekDays",
    "start_date": "startDate",
    "end_date": "endDate",
    "day_start_time": "dayStartTime",
    "day_end_time": "dayEndTime",
    "time_zone": "timeZone",
}


class SharedAccess(WireModel):
    """The ``result`` of a grant, as in the API it is modelled on."""

    id: int
    shared_user_display_name: str


class AccessView(WireModel):
    """An access as it is stored now."""

    id: int
    shared_user_display_name: str
    user_email: str
    device_identifier: str
    access_level: int
    remote_access_disabled: bool
    week_days: int | None
    start_date: datetime | None
    end_date: datetime | None
    day_start_time: time | None
    day_end_time: time | None
    time_zone: str
    created_at: datetime
    updated_at: datetime
    revoked_at: datetime | None


class UpdatedAccess(AccessView):
    changed_fields: list[str]  # wire names; empty when the update changed nothing


class RevokedAccess(AccessView):
    already_ended: bool  # revoked or replaced before this command; nothing was written


class GrantAccessResult(WireModel):
    """201 when the access was created; 200 when the same grant was already active."""

    success: Literal[True] = True
    status_code: int = 201
    result: SharedAccess
    error_messages: list[str] = Field(default_factory=list)


class UpdateAccessResult(WireModel):
    success: Literal[True] = True
    status_code: int = 200
    result: UpdatedAccess
    error_messages: list[str] = Field(default_factory=list)


class RevokeAccessResult(WireModel):
    success: Literal[True] = True
    status_code: int = 200
    result: RevokedAccess
    error_messages: list[str] = Field(default_factory=list)


def view_fields(access: Access, device_identifier: str) -> dict[str, Any]:
    """The fields of ``AccessView`` for ``access``."""
    schedule = access.terms.schedule
    return {
        "id": access.id,
        "shared_user_display_name": access.user_name,
        "user_email": access.user_email,
        "device_identifier": device_identifier,
        "access_level": int(access.terms.level),
        "remote_access_disabled": access.terms.remote_access_disabled,
        "week_days": schedule.week_days,
        "start_date": schedule.start,
        "end_date": schedule.end,
        "day_start_time": schedule.day_start,
        "day_end_time": schedule.day_end,
        "time_zone": schedule.time_zone,
        "created_at": access.created_at,
        "updated_at": access.updated_at,
        "revoked_at": access.revoked_at,
    }


class AccessEventData(WireModel):
    """What every access event says about the access (after the change)."""

    access_id: int
    device_id: int
    device_identifier: str
    customer_id: int
    user_email: str
    shared_user_display_name: str
    access_level: int
    remote_access_disabled: bool
    week_days: int | None
    start_date: datetime | None
    end_date: datetime | None
    day_start_time: time | None
    day_end_time: time | None
    time_zone: str


class AccessGrantedData(AccessEventData):
    granted_by: str
    replaced_access_id: int | None  # an expired access of the same user this grant closed


class AccessUpdatedData(AccessEventData):
    updated_by: str
    changed_fields: list[str]


class AccessRevokedData(AccessEventData):
    revoked_by: str
    revoked_at: datetime


def _event_fields(access: Access, device_id: int, device_identifier: str) -> dict[str, Any]:
    fields = view_fields(access, device_identifier)
    for name in ("id", "created_at", "updated_at", "revoked_at"):
        del fields[name]
    return {
        **fields,
        "access_id": access.id,
        "device_id": device_id,
        "customer_id": access.customer_id,
    }


def _granted(event: AccessGranted) -> WireModel:
    return AccessGrantedData(
        **_event_fields(event.access, event.device_id, event.device_identifier),
        granted_by=event.granted_by,
        replaced_access_id=event.replaced_access_id,
    )


def _updated(event: AccessUpdated) -> WireModel:
    return AccessUpdatedData(
        **_event_fields(event.access, event.device_id, event.device_identifier),
        updated_by=event.updated_by,
        changed_fields=[WIRE_NAMES[name] for name in event.changed],
    )


def _revoked(event: AccessRevoked) -> WireModel:
    assert event.access.revoked_at is not None, "a revoked access carries its revocation time"
    return AccessRevokedData(
        **_event_fields(event.access, event.device_id, event.device_identifier),
        revoked_by=event.revoked_by,
        revoked_at=event.access.revoked_at,
    )


register_event_data(AccessGranted, _granted, model=AccessGrantedData)
register_event_data(AccessUpdated, _updated, model=AccessUpdatedData)
register_event_data(AccessRevoked, _revoked, model=AccessRevokedData)
