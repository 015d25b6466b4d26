"""How results read to a person; ``--json`` prints them as they are on the wire."""

from __future__ import annotations

import json
from typing import Any

import click

MAX_ITEMS_SHOWN = 20  # of a bulk result's failed and skipped items, in text output


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def describe_result(result: dict[str, Any], *, request_id: str | None = None) -> str:
    """A few lines that say what happened."""
    lines: list[str] = []
    if not result.get("success"):
        lines.append(
            f"rejected {result.get('statusCode')} {result.get('errorCode')}: "
            + "; ".join(result.get("errorMessages") or [])
        )
    elif "customers" in result:
        created = ", created" if result.get("deviceCreated") else ""
        lines.append(
            f"{result.get('message')}: device {result.get('deviceIdentifier')!r} "
            f"(id {result.get('deviceId')}{created})"
        )
        for customer in result["customers"]:
            flags = ["new customer" if customer["created"] else "existing customer"]
            flags.append("already assigned" if customer["alreadyAssigned"] else "newly assigned")
            lines.append(
                f"  {customer['email']:<32} customer {customer['customerId']:<5} "
                f"{customer['name']:<16} {', '.join(flags)}"
            )
        if result.get("skippedEmails"):
            lines.append(f"  skipped invalid e-mail(s): {', '.join(result['skippedEmails'])}")
    elif "removedEmails" in result:
        lines.append(
            f"{result.get('message')}: device {result.get('deviceIdentifier')!r} "
            f"(id {result.get('deviceId')})"
        )
        for email in result["removedEmails"]:
            lines.append(f"  {email:<32} removed")
        for email in result.get("notOwnerEmails") or []:
            lines.append(f"  {email:<32} was not an owner")
        if result.get("skippedEmails"):
            lines.append(f"  skipped invalid e-mail(s): {', '.join(result['skippedEmails'])}")
    elif "summary" in result:  # custody.assign_devices: one line, then the items that did not go
        lines.append(str(result.get("message")))
        troubled = [
            (n, item) for n, item in enumerate(result.get("items") or []) if "errorCode" in item
        ]
        for n, item in troubled[:MAX_ITEMS_SHOWN]:
            device = f" {item['deviceIdentifier']}" if item.get("deviceIdentifier") else ""
            lines.append(
                f"  item {n}{device}: {item['status']} {item['statusCode']} "
                f"{item['errorCode']}: {'; '.join(item['errorMessages'])}"
            )
        if len(troubled) > MAX_ITEMS_SHOWN:
            lines.append(f"  … and {len(troubled) - MAX_ITEMS_SHOWN} more (--json shows all)")
    else:
        lines.append(json.dumps(result, ensure_ascii=False))
    if request_id:
        lines.append(f"  requestId {request_id}")
    return "\n".join(lines)
