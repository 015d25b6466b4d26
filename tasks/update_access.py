"""``custody.update_access``: change an access; absent fields stay, explicit nulls clear."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from models.access import (
    AccessLevel,
    AccessTerms,
    AccessUpdated,
    Schedule,
    ScheduleError,
    authorize,
)
from models.access_commands import UpdateAccess
from models.access_wire import WIRE_NAMES, UpdateAccessResult, UpdatedAccess, view_fields
from models.errors import Rejected
from models.ports import UnitOfWork
from tasks.access_rules import access_on, authority, locked_device

# Wire field (Python name) → attribute of the Schedule it sets.
_SCHEDULE = {
    "week_days": "week_days",
    "start_date": "start",
    "end_date": "end",
    "day_start_time": "day_start",
    "day_end_time": "day_end",
    "time_zone": "time_zone",
}


def merged(terms: AccessTerms, changes: dict[str, Any]) -> AccessTerms:
    """``terms`` with ``changes`` applied; ``ScheduleError`` if the result is no schedule."""
    schedule: dict[str, Any] = {
        _SCHEDULE[name]: value for name, value in changes.items() if name in _SCHEDULE
    }
    if "time_zone" in schedule and schedule["time_zone"] is None:
        schedule["time_zone"] = Schedule().time_zone
    return AccessTerms(
        level=AccessLevel(changes.get("access_level", terms.level)),
        remote_access_disabled=changes.get("remote_access_disabled", terms.remote_access_disabled),
        schedule=replace(terms.schedule, **schedule),
    )


def changed_fields(before: AccessTerms, after: AccessTerms) -> list[str]:
    """Python names of the wire fields whose value differs, in wire order."""
    changed = []
    for name in WIRE_NAMES:
        if name in _SCHEDULE:
            old = getattr(before.schedule, _SCHEDULE[name])
            new = getattr(after.schedule, _SCHEDULE[name])
        else:
            attribute = "level" if name == "access_level" else name
            old, new = getattr(before, attribute), getattr(after, attribute)
        if old != new:
            changed.append(name)
    return changed


def update_access(command: UpdateAccess, uow: UnitOfWork) -> UpdateAccessResult:
    """Apply the change inside ``uow``'s transaction; the caller commits.

    An update that changes nothing writes nothing and records no event.
    """
    device = locked_device(uow, command.organization_id, command.device_identifier)
    access = access_on(uow, device, command.access_id)
    if access.user_email == command.updated_by:
        raise Rejected.invalid(f"updatedBy: cannot change your own access ({command.updated_by})")
    changes = command.changes()
    _, level = authority(uow, device, command.updated_by)
    levels = [access.terms.level]
    if "access_level" in changes:
        levels.append(AccessLevel(changes["access_level"]))
    authorize(
        actor=command.updated_by,
        actor_level=level,
        levels=levels,
        device_identifier=device.identifier,
    )
    if access.closed_at is not None:
        ended = "was revoked" if access.revoked_at else "was replaced by a newer grant"
        raise Rejected.not_found(
            "ACCESS_NOT_FOUND",
            f"accessId: access {access.id} on device {device.identifier!r} {ended}; "
            "grant a new one instead",
        )
    try:
        terms = merged(access.terms, changes)
    except ScheduleError as exc:
        raise Rejected.invalid(f"{exc.field}: {exc.reason}") from exc

    changed = changed_fields(access.terms, terms)
    if changed:
        access = uow.accesses.update(access.id, terms)
        uow.events.append(
            AccessUpdated(
                device_identifier=device.identifier,
                access=access,
                device_id=device.id,
                updated_by=command.updated_by,
                changed=changed,
            )
        )
    return UpdateAccessResult(
        result=UpdatedAccess(
            **view_fields(access, device.identifier),
            changed_fields=[WIRE_NAMES[name] for name in changed],
        )
    )
