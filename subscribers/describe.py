"""How an event reads to a person: one line per event."""

from __future__ import annotations

import json
from typing import Any

from models import constants as c
from models.events import CloudEvent


def _emails(owners: list[dict[str, Any]]) -> str:
    return ", ".join(str(o.get("email")) for o in owners) or "none"


def describe_event(event: CloudEvent) -> str:
    """``time type subject what-changed [organization, requestId]``."""
    data = event.data
    if event.type == c.DEVICE_ASSIGNED:
        added = " ".join(f"+{o.get('email')}" for o in data.get("ownersAdded", []))
        created = " (device created)" if data.get("deviceCreated") else ""
        change = f"{added}{created} -> owners: {_emails(data.get('owners', []))}"
    elif event.type == c.DEVICE_UNASSIGNED:
        removed = " ".join(f"-{o.get('email')}" for o in data.get("ownersRemoved", []))
        change = f"{removed} -> owners: {_emails(data.get('owners', []))}"
    elif event.type in (c.ACCESS_GRANTED, c.ACCESS_UPDATED, c.ACCESS_REVOKED):
        change = _access_change(event.type, data)
    else:
        change = json.dumps(data, ensure_ascii=False, sort_keys=True)
        change = change if len(change) <= 160 else change[:157] + "..."
    when = event.time.strftime("%H:%M:%S")
    return (
        f"{when} {event.type:<17} {event.subject}  {change}  "
        f"[{event.organizationid}, {event.correlationid}]"
    )


_LEVELS = {0: "guest", 1: "admin"}


def _access_change(kind: str, data: dict[str, Any]) -> str:
    """``access 3 of joe@example.com (guest): weekDays 7, 08:00:00-20:00:00 by alice@…``."""
    who = f"access {data.get('accessId')} of {data.get('userEmail')}"
    level = _LEVELS.get(data.get("accessLevel"), str(data.get("accessLevel")))
    if kind == c.ACCESS_REVOKED:
        return f"{who} revoked by {data.get('revokedBy')}"
    terms = [
        f"{name} {data[key]}"
        for key, name in (
            ("weekDays", "weekDays"),
            ("startDate", "from"),
            ("endDate", "until"),
        )
        if data.get(key) is not None
    ]
    if data.get("dayStartTime") is not None:
        terms.append(f"{data['dayStartTime']}-{data.get('dayEndTime')} {data.get('timeZone')}")
    schedule = ", ".join(terms) or "permanent"
    if kind == c.ACCESS_UPDATED:
        changed = ", ".join(data.get("changedFields") or [])
        return f"{who} ({level}) changed {changed}: {schedule}, by {data.get('updatedBy')}"
    return f"{who} ({level}): {schedule}, granted by {data.get('grantedBy')}"
