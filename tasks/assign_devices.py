"""``custody.assign_devices``: many assignments in one transaction, with set-based SQL.

Items are answered as if applied one after the other: an item sees the devices, customers
and owners of the items before it. A fixed number of statements serves the whole batch,
whatever its size: lock the known devices, create the missing ones, ensure the customers,
add the owner rows, read the owner lists of the devices that changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.bulk import (
    AssignDevices,
    AssignDevicesResult,
    BulkSummary,
    ItemResult,
    ItemStatus,
    parse_item,
)
from models.constants import MAX_DEVICE_IDENTIFIER_CHARS
from models.domain import Customer, Device, DeviceAssigned, OwnerRef, select_emails
from models.errors import Rejected
from models.ports import UnitOfWork
from tasks.assignments import (
    Assignment,
    apply_assignments,
    device_not_found,
    devices_created,
    no_valid_email,
)


@dataclass
class _Change:
    """What the batch did to one device: the owners it added, in the order items named them."""

    device: Device
    created: bool
    added: list[Customer] = field(default_factory=list)


def assign_devices(command: AssignDevices, uow: UnitOfWork) -> AssignDevicesResult:
    """Apply every valid item inside ``uow``'s transaction; the caller commits.

    An invalid item (400) or an unknown device that the item may not create (404) is
    answered in its place and changes nothing; the other items are applied. One
    ``device.assigned`` event per device that gained an owner.
    """
    results: list[ItemResult | None] = [None] * len(command.items)
    indexes: list[int] = []  # of the valid items, in order
    requests: list[Assignment] = []
    skipped: list[list[str]] = []
    for index, raw in enumerate(command.items):
        parsed = parse_item(raw)
        if isinstance(parsed, list):
            results[index] = _rejected("failed", _identifier(raw), Rejected.invalid(*parsed))
            continue
        emails = select_emails(parsed.customer_emails)
        if not emails.valid:
            rejection = no_valid_email(parsed.customer_emails)
            results[index] = _rejected("failed", parsed.device_identifier, rejection)
            continue
        indexes.append(index)
        skipped.append(emails.skipped)
        requests.append(
            Assignment(
                parsed.device_identifier,
                emails.valid,
                parsed.auto_create_device,
                parsed.device_type,
            )
        )

    changes: dict[int, _Change] = {}
    applied = apply_assignments(uow, command.organization_id, requests)
    made = devices_created(applied)
    for index, request, done, invalid in zip(indexes, requests, applied, skipped, strict=True):
        if done is None:
            rejection = device_not_found(request.identifier)
            results[index] = _rejected("skipped", request.identifier, rejection)
            continue
        if done.added:
            change = changes.setdefault(
                done.device.id, _Change(done.device, created=done.device.id in made)
            )
            change.added.extend(done.added)
        results[index] = ItemResult(
            status="assigned" if done.added else "alreadyAssigned",
            status_code=200,
            device_identifier=done.device.identifier,
            device_id=done.device.id,
            device_created=done.device_created,
            customers_assigned=len(done.added),
            customers_created=sum(1 for c in done.customers if c.created),
            skipped_emails=invalid or None,
        )

    _record_events(uow, changes)
    return _result([r for r in results if r is not None])


def _record_events(uow: UnitOfWork, changes: dict[int, _Change]) -> None:
    """One ``device.assigned`` per device that gained owners, with its full owner list."""
    # A device this batch created has exactly the owners it added, inserted in customer-id
    # order; only the others need their owner lists read back.
    owners = uow.owners.of_many([i for i, change in changes.items() if not change.created])
    for device_id, change in changes.items():
        if change.created:
            current = sorted(change.added, key=lambda customer: customer.id)
        else:
            current = owners.get(device_id, [])
        uow.events.append(
            DeviceAssigned(
                device_identifier=change.device.identifier,
                device_id=device_id,
                device_created=change.created,
                owners_added=[OwnerRef(c.id, c.email) for c in change.added],
                owners=[OwnerRef(c.id, c.email) for c in current],
            )
        )


def _rejected(status: ItemStatus, identifier: str | None, rejection: Rejected) -> ItemResult:
    return ItemResult(
        status=status,
        status_code=rejection.status_code,
        device_identifier=identifier,
        error_code=rejection.error_code,
        error_messages=rejection.messages,
    )


def _identifier(raw: Any) -> str | None:
    """The device identifier of an invalid item, when it has a usable one."""
    value = raw.get("deviceIdentifier") if isinstance(raw, dict) else None
    if isinstance(value, str) and 0 < len(value.strip()) <= MAX_DEVICE_IDENTIFIER_CHARS:
        return value.strip()
    return None


def _result(items: list[ItemResult]) -> AssignDevicesResult:
    counts = {status: 0 for status in ("assigned", "alreadyAssigned", "skipped", "failed")}
    for item in items:
        counts[item.status] += 1
    summary = BulkSummary(
        assigned=counts["assigned"],
        already_assigned=counts["alreadyAssigned"],
        skipped=counts["skipped"],
        failed=counts["failed"],
    )
    return AssignDevicesResult(
        message=(
            f"Processed {len(items)} item(s): {summary.assigned} assigned, "
            f"{summary.already_assigned} already assigned, {summary.skipped} skipped, "
            f"{summary.failed} failed"
        ),
        summary=summary,
        items=items,
    )
