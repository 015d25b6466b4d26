"""``custody.grant_access``: give a user access to a device, with a schedule."""

from __future__ import annotations

from models.access import AccessGranted, AccessLevel, AccessTerms, Schedule, authorize
from models.access_commands import GrantAccess
from models.access_wire import GrantAccessResult, SharedAccess
from models.errors import Rejected, Transient
from models.ports import UnitOfWork
from tasks.access_rules import authority, locked_device


def terms_of(command: GrantAccess) -> AccessTerms:
    return AccessTerms(
        level=AccessLevel(command.access_level),
        remote_access_disabled=command.remote_access_disabled,
        schedule=Schedule(
            week_days=command.week_days,
            start=command.start_date,
            end=command.end_date,
            day_start=command.day_start_time,
            day_end=command.day_end_time,
            time_zone=command.time_zone,
        ),
    )


def grant_access(command: GrantAccess, uow: UnitOfWork) -> GrantAccessResult:
    """Apply the grant inside ``uow``'s transaction; the caller commits.

    One active access per user and device: the same grant again answers the existing
    access (200) and writes nothing; another grant while one is active is a 409. An
    access that expired is closed here, in the same transaction as its successor.
    """
    org = command.organization_id
    if command.granted_by == command.user_email:
        raise Rejected.invalid(f"userEmail: cannot grant access to yourself ({command.user_email})")
    terms = terms_of(command)
    device = locked_device(uow, org, command.device_identifier)
    granter, level = authority(uow, device, command.granted_by)
    authorize(
        actor=command.granted_by,
        actor_level=level,
        levels=[terms.level],
        device_identifier=device.identifier,
    )
    (user,) = uow.customers.ensure(org, [command.user_email])

    replaced = None
    current = uow.accesses.open_for(device.id, user.id)
    if current is not None:
        if current.active(uow.now):
            if current.terms == terms:
                return GrantAccessResult(
                    status_code=200,
                    result=SharedAccess(id=current.id, shared_user_display_name=current.user_name),
                )
            raise Rejected.conflict(
                "ACCESS_EXISTS",
                f"userEmail: access for this user already exists: {user.email} has active "
                f"access {current.id} to device {device.identifier!r}; change it with "
                "update_access or revoke it first",
            )
        uow.accesses.close(current.id, revoke=False)
        replaced = current.id

    access = uow.accesses.add(
        org,
        device.id,
        user.id,
        terms,
        granted_by_customer_id=granter.id if granter else None,
    )
    if access is None:  # only without the device lock; a retry sees the winner
        raise Transient(f"a concurrent grant for {user.email} on {device.identifier!r} won")
    uow.events.append(
        AccessGranted(
            device_identifier=device.identifier,
            access=access,
            device_id=device.id,
            granted_by=command.granted_by,
            replaced_access_id=replaced,
        )
    )
    return GrantAccessResult(
        result=SharedAccess(id=access.id, shared_user_display_name=access.user_name)
    )
