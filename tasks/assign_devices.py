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
    AssignmentItem,
    BulkSummary,
    ItemResult,
    ItemStatus,
    parse_item,
)
from models.constants import MAX_DEVICE_IDENTIFIER_CHARS
from models.domain import Customer, Device, DeviceAssigned, EmailSelection, OwnerRef, select_emails
from models.ports import UnitOfWork


@dataclass(frozen=True)
class _Plan:
    """A valid item, before it meets the database."""

    index: int
    item: AssignmentItem
    emails: EmailSelection
    identifier: str  # the item's device identifier, trimmed


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
    org = command.organization_id
    results: list[ItemResult | None] = [None] * len(command.items)
    plans: list[_Plan] = []
    for index, raw in enumerate(command.items):
        parsed = parse_item(raw)
        if isinstance(parsed, list):
            results[index] = _rejected("failed", 400, "INVALID_REQUEST", parsed, _identifier(raw))
            continue
        emails = select_emails(parsed.customer_emails)
        if not emails.valid:
            given = ", ".join(repr(e) for e in parsed.customer_emails)
            problem = f"customerEmails: no valid e-mail address in {given}"
            results[index] = _rejected(
                "failed", 400, "INVALID_REQUEST", [problem], parsed.device_identifier
            )
            continue
        plans.append(_Plan(index, parsed, emails, parsed.device_identifier))

    # Devices: lock the known ones (in identifier order), then create the missing ones that
    # some item may create; the first such item creates it, with its deviceType.
    devices = uow.devices.lock_many(org, [p.identifier for p in plans])
    creators: dict[str, _Plan] = {}
    for plan in plans:
        if plan.identifier not in devices and plan.item.auto_create_device:
            creators.setdefault(plan.identifier, plan)
    made, created = uow.devices.add_many(
        org, {ident: plan.item.device_type for ident, plan in creators.items()}
    )
    devices.update(made)

    applied: list[tuple[_Plan, Device]] = []
    for plan in plans:
        device = devices.get(plan.identifier)
        creator = creators.get(plan.identifier)
        made_later = (
            plan.identifier in created and creator is not None and creator.index > plan.index
        )
        if device is None or made_later:
            message = (
                f"device {plan.identifier!r} not found "
                "(set autoCreateDevice and deviceType to create it)"
            )
            results[plan.index] = _rejected(
                "skipped", 404, "DEVICE_NOT_FOUND", [message], plan.identifier
            )
            continue
        applied.append((plan, device))

    wanted = sorted({email for plan, _ in applied for email in plan.emails.valid})
    customers = {customer.email: customer for customer in uow.customers.ensure(org, wanted)}
    added = uow.owners.add_many(
        org, [(device.id, customers[e].id) for plan, device in applied for e in plan.emails.valid]
    )

    changes: dict[int, _Change] = {}
    seen_pairs: set[tuple[int, int]] = set()
    seen_emails: set[str] = set()
    for plan, device in applied:
        assigned = created_customers = 0
        for email in plan.emails.valid:
            customer = customers[email]
            pair = (device.id, customer.id)
            if pair in added and pair not in seen_pairs:
                assigned += 1
                change = changes.setdefault(
                    device.id, _Change(device, created=device.identifier in created)
                )
                change.added.append(customer)
            seen_pairs.add(pair)
            if customer.created and email not in seen_emails:
                created_customers += 1
            seen_emails.add(email)
        results[plan.index] = ItemResult(
            status="assigned" if assigned else "alreadyAssigned",
            status_code=200,
            device_identifier=device.identifier,
            device_id=device.id,
            device_created=creators.get(plan.identifier) is plan and plan.identifier in created,
            customers_assigned=assigned,
            customers_created=created_customers,
            skipped_emails=plan.emails.skipped or None,
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


def _rejected(
    status: ItemStatus,
    status_code: int,
    error_code: str,
    messages: list[str],
    identifier: str | None,
) -> ItemResult:
    return ItemResult(
        status=status,
        status_code=status_code,
        device_identifier=identifier,
        error_code=error_code,
        error_messages=messages,
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
