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
    else:
        change = json.dumps(data, ensure_ascii=False, sort_keys=True)
        change = change if len(change) <= 160 else change[:157] + "..."
    when = event.time.strftime("%H:%M:%S")
    return (
        f"{when} {event.type:<17} {event.subject}  {change}  "
        f"[{event.organizationid}, {event.correlationid}]"
    )
