"""``custody.assign_device``: map a device to one or more owner customers."""

from __future__ import annotations

from models.commands import AssignDevice
from models.domain import Customer, DeviceAssigned, OwnerRef, select_emails
from models.ports import UnitOfWork
from models.results import AssignDeviceResult, AssignedCustomer
from tasks.assignments import Applied, device_not_found, no_valid_email


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
    applied = Applied(device, device_created, customers, [c for c in customers if c.id in added])

    if applied.added:
        # A device made by this command has exactly the owners it just added; only an
        # existing one needs its owner list read back.
        owners = [] if device_created else uow.owners.of(device.id)
        uow.events.append(assigned_event(applied, owners))
    return assignment_result(applied, emails.skipped)


def owners_after(applied: Applied, owners_before: list[Customer]) -> list[Customer]:
    """The device's owners after the assignment, in ownership order. ``owners_before``:
    its owners in ownership order, the ones this assignment added included or not: those
    are (again) appended in customer-id order, the order their rows were inserted in."""
    added = {c.id for c in applied.added}
    owners = [c for c in owners_before if c.id not in added]
    return owners + sorted(applied.added, key=lambda c: c.id)


def assigned_event(applied: Applied, owners_before: list[Customer]) -> DeviceAssigned:
    """The fact of an assignment that added owners (``owners_before`` as for
    ``owners_after``)."""
    owners = owners_after(applied, owners_before)
    return DeviceAssigned(
        device_identifier=applied.device.identifier,
        device_id=applied.device.id,
        device_created=applied.device_created,
        owners_added=[OwnerRef(c.id, c.email) for c in applied.added],
        owners=[OwnerRef(c.id, c.email) for c in owners],
    )


def assignment_result(applied: Applied, skipped_emails: list[str]) -> AssignDeviceResult:
    added = {c.id for c in applied.added}
    return AssignDeviceResult(
        message=f"Successfully assigned device to {len(applied.customers)} customer(s)",
        device_id=applied.device.id,
        device_identifier=applied.device.identifier,
        device_created=applied.device_created,
        customers=[
            AssignedCustomer(
                email=c.email,
                customer_id=c.id,
                name=c.name,
                created=c.created,
                already_assigned=c.id not in added,
            )
            for c in applied.customers
        ],
        skipped_emails=skipped_emails,
    )
