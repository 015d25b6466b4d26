"""What the access handlers share: the locked device, the access named by a command, and
the authority of the user who acts."""

from __future__ import annotations

from models.access import Access, AccessLevel
from models.domain import Customer, Device
from models.errors import Rejected
from models.ports import UnitOfWork


def locked_device(uow: UnitOfWork, organization_id: str, identifier: str) -> Device:
    """Load and lock the device: every change to one device's accesses is serialized, so
    its events are in commit order."""
    device = uow.devices.get(organization_id, identifier, lock=True)
    if device is None:
        raise Rejected.not_found("DEVICE_NOT_FOUND", f"device {identifier!r} not found")
    return device


def access_on(uow: UnitOfWork, device: Device, access_id: int) -> Access:
    """The access ``access_id`` of ``device``; 404 if there is none (or it is another's)."""
    access = uow.accesses.get(device.organization_id, access_id)
    if access is None or access.device_id != device.id:
        raise Rejected.not_found(
            "ACCESS_NOT_FOUND", f"accessId: no access {access_id} on device {device.identifier!r}"
        )
    return access


def authority(
    uow: UnitOfWork, device: Device, email: str
) -> tuple[Customer | None, AccessLevel | None]:
    """Who ``email`` is and what they hold on the device: owner (assigned customer), the
    level of an access in force, or nothing."""
    actor = uow.customers.find(device.organization_id, email)
    if actor is None:
        return None, None
    if any(owner.id == actor.id for owner in uow.owners.of(device.id)):
        return actor, AccessLevel.OWNER
    access = uow.accesses.open_for(device.id, actor.id)
    if access is not None and access.in_force(uow.now):
        return actor, access.terms.level
    return actor, None
