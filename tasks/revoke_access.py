"""``custody.revoke_access``: end an access. It is kept, marked revoked."""

from __future__ import annotations

from models.access import AccessRevoked, authorize
from models.access_commands import RevokeAccess
from models.access_wire import RevokeAccessResult, RevokedAccess, view_fields
from models.ports import UnitOfWork
from tasks.access_rules import access_on, authority, locked_device


def revoke_access(command: RevokeAccess, uow: UnitOfWork) -> RevokeAccessResult:
    """Revoke inside ``uow``'s transaction; the caller commits.

    Revoking an access that has already ended (revoked, or replaced by a newer grant)
    answers success with ``alreadyEnded`` and writes nothing.
    """
    device = locked_device(uow, command.organization_id, command.device_identifier)
    access = access_on(uow, device, command.access_id)
    _, level = authority(uow, device, command.revoked_by)
    authorize(
        actor=command.revoked_by,
        actor_level=level,
        levels=[access.terms.level],
        device_identifier=device.identifier,
    )
    already_ended = access.closed_at is not None
    if not already_ended:
        access = uow.accesses.close(access.id, revoke=True)
        uow.events.append(
            AccessRevoked(
                device_identifier=device.identifier,
                access=access,
                device_id=device.id,
                revoked_by=command.revoked_by,
            )
        )
    return RevokeAccessResult(
        result=RevokedAccess(**view_fields(access, device.identifier), already_ended=already_ended)
    )
