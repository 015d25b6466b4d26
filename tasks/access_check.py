"""Read side: may this user use this device at instant T? Answered from the stored state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from models.access import Access
from models.domain import normalize_email
from models.errors import Rejected
from models.ports import UnitOfWork


@dataclass(frozen=True)
class AccessCheck:
    device_identifier: str
    user_email: str
    at: datetime
    allowed: bool
    reason: str
    role: str | None = None  # "owner", "admin", "guest"
    access_id: int | None = None
    remote_access_disabled: bool | None = None


def check_access(
    uow: UnitOfWork, organization_id: str, device_identifier: str, user_email: str, at: datetime
) -> AccessCheck:
    """Owners may always use their device; anyone else through their access's schedule.

    The access that counts is the user's open one (or, for the reason, the latest ended
    one); a revoked access denies at every instant.
    """
    email = normalize_email(user_email)
    if email is None:
        raise Rejected.invalid(f"userEmail: {user_email!r} is not a valid e-mail address")
    identifier = device_identifier.strip()

    def answer(allowed: bool, reason: str, access: Access | None = None) -> AccessCheck:
        if access is None:
            return AccessCheck(identifier, email, at, allowed, reason)
        return AccessCheck(
            identifier,
            email,
            at,
            allowed,
            reason,
            role=access.terms.level.name.lower(),
            access_id=access.id,
            remote_access_disabled=access.terms.remote_access_disabled,
        )

    device = uow.devices.get(organization_id, identifier)
    if device is None:
        return answer(False, f"device {identifier!r} is not known in {organization_id!r}")
    user = uow.customers.find(organization_id, email)
    if user is None:
        return answer(False, f"{email} is not a known user")
    if any(owner.id == user.id for owner in uow.owners.of(device.id)):
        return AccessCheck(identifier, email, at, True, "owner of the device", role="owner")
    access = uow.accesses.latest_for(device.id, user.id)
    if access is None:
        return answer(False, f"{email} has no access to device {identifier!r}")
    if access.revoked_at is not None:
        return answer(False, f"access {access.id} was revoked at {_iso(access.revoked_at)}", access)
    if access.closed_at is not None:
        return answer(False, f"access {access.id} ended at {_iso(access.closed_at)}", access)
    verdict = access.terms.schedule.explain(at)
    level = access.terms.level.name.lower()
    return answer(verdict.allowed, f"{level} access {access.id}: {verdict.reason}", access)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
