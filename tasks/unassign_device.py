"""``custody.unassign_device``: remove owner mappings of a device."""

from __future__ import annotations

from models.commands import UnassignDevice
from models.domain import DeviceUnassigned, OwnerRef, select_emails
from models.errors import Rejected
from models.ports import UnitOfWork
from models.results import UnassignDeviceResult


def unassign_device(command: UnassignDevice, uow: UnitOfWork) -> UnassignDeviceResult:
    """Remove the named owners inside ``uow``'s transaction; the caller commits.

    Customers stay (they may own other devices or hold accesses). Naming someone who is not
    an owner removes nothing for them; when nobody was removed, no event is recorded.
    """
    org = command.organization_id
    emails = select_emails(command.customer_emails)
    if not emails.valid:
        raise Rejected.invalid(
            "customerEmails: no valid e-mail address in "
            + ", ".join(repr(e) for e in command.customer_emails)
        )

    device = uow.devices.get(org, command.device_identifier, lock=True)
    if device is None:
        raise Rejected.not_found(
            "DEVICE_NOT_FOUND", f"device {command.device_identifier!r} not found"
        )

    customers = uow.customers.find_all(org, emails.valid)
    removed = uow.owners.remove(org, device.id, [c.id for c in customers])
    removed_emails = [c.email for c in customers if c.id in removed]

    if removed:
        remaining = uow.owners.of(device.id)
        uow.events.append(
            DeviceUnassigned(
                device_identifier=device.identifier,
                device_id=device.id,
                owners_removed=[OwnerRef(c.id, c.email) for c in customers if c.id in removed],
                owners=[OwnerRef(c.id, c.email) for c in remaining],
            )
        )

    return UnassignDeviceResult(
        message=f"Removed {len(removed_emails)} owner(s) from device",
        device_id=device.id,
        device_identifier=device.identifier,
        removed_emails=removed_emails,
        not_owner_emails=[e for e in emails.valid if e not in removed_emails],
        skipped_emails=emails.skipped,
    )
