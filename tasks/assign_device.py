"""``custody.assign_device``: map a device to one or more owner customers."""

from __future__ import annotations

from models.commands import AssignDevice
from models.domain import DeviceAssigned, OwnerRef, select_emails
from models.ports import UnitOfWork
from models.results import AssignDeviceResult, AssignedCustomer
from tasks.assignments import device_not_found, no_valid_email


def assign_device(command: AssignDevice, uow: UnitOfWork) -> AssignDeviceResult:
    """Apply the assignment inside ``uow``'s transaction; the caller commits.

    Re-assigning an existing owner creates nothing and records no event.
    """
    org = command.organization_id
    emails = select_emails(command.customer_emails)
    if not emails.valid:
        raise no_valid_email(command.customer_emails)

    if command.auto_create_device:
        # Create first: one statement for a new device; an existing one is then loaded
        # and locked, as ``get(lock=True)`` would have done.
        device, device_created = uow.devices.add(
            org, command.device_identifier, command.device_type
        )
    else:
        found = uow.devices.get(org, command.device_identifier, lock=True)
        if found is None:
            raise device_not_found(command.device_identifier)
        device, device_created = found, False

    customers = uow.customers.ensure(org, emails.valid)
    added = uow.owners.add(org, device.id, [c.id for c in customers])

    if added:
        # A device made by this command has exactly the owners it just added (inserted in
        # customer-id order); only an existing one needs its owner list read back.
        if device_created:
            owners = sorted((c for c in customers if c.id in added), key=lambda c: c.id)
        else:
            owners = uow.owners.of(device.id)
        uow.events.append(
            DeviceAssigned(
                device_identifier=device.identifier,
                device_id=device.id,
                device_created=device_created,
                owners_added=[OwnerRef(c.id, c.email) for c in customers if c.id in added],
                owners=[OwnerRef(c.id, c.email) for c in owners],
            )
        )

    return AssignDeviceResult(
        message=f"Successfully assigned device to {len(customers)} customer(s)",
        device_id=device.id,
        device_identifier=device.identifier,
        device_created=device_created,
        customers=[
            AssignedCustomer(
                email=c.email,
                customer_id=c.id,
                name=c.name,
                created=c.created,
                already_assigned=c.id not in added,
            )
            for c in customers
        ],
        skipped_emails=emails.skipped,
    )
