"""Organizations' signing keys: create (the secret is shown once), list, revoke, reseal
under a new master key, and the embedded default's local key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from models import constants as c
from models.errors import CustodyError
from models.keystore import MasterKey, SealedSecretError
from models.ports import SigningKeyRecord, UnitOfWork
from models.signing import SigningKey, new_key_id, new_secret, read_key_file, write_key_file


class UnknownOrganization(CustodyError):
    """Raised when a key is asked for an organization that does not exist."""


class UnknownKey(CustodyError):
    """Raised when a key id names no key."""


@dataclass(frozen=True)
class KeyInfo:
    """A key as operators see it: never its secret."""

    key_id: str
    organization_id: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def of(cls, record: SigningKeyRecord) -> KeyInfo:
        return cls(record.key_id, record.organization_id, record.created_at, record.revoked_at)


def create_key(uow: UnitOfWork, master_key: MasterKey, organization_id: str) -> SigningKey:
    """A new active key of the organization; the caller commits and shows the secret once.

    Older keys stay active until revoked, so producers can move to the new one first."""
    if not uow.organizations.exists(organization_id):
        raise UnknownOrganization(
            f"organization {organization_id!r} does not exist (custody org create "
            f"{organization_id})"
        )
    key = SigningKey(new_key_id(), new_secret(), organization_id)
    uow.signing_keys.add(
        SigningKeyRecord(
            key_id=key.key_id,
            organization_id=organization_id,
            secret_sealed=master_key.seal(
                key.secret, key_id=key.key_id, organization_id=organization_id
            ),
            created_at=uow.now,
        )
    )
    return key


def list_keys(uow: UnitOfWork, organization_id: str) -> list[KeyInfo]:
    if not uow.organizations.exists(organization_id):
        raise UnknownOrganization(f"organization {organization_id!r} does not exist")
    return [KeyInfo.of(r) for r in uow.signing_keys.of(organization_id)]


def revoke_key(uow: UnitOfWork, key_id: str) -> tuple[KeyInfo, bool]:
    """Revoke a key from now on; the flag is False when it was revoked already."""
    revoked = uow.signing_keys.revoke(key_id, uow.now)
    record = uow.signing_keys.get(key_id)
    if record is None:
        raise UnknownKey(f"no signing key {key_id!r}")
    return KeyInfo.of(record), revoked


def reseal_keys(uow: UnitOfWork, master_key: MasterKey) -> int:
    """Seal every key not yet under the current master key again; returns how many.

    Step two of a master key rotation (SECURITY.md); raises ``SealedSecretError`` naming a
    key that no configured master key opens."""
    resealed = 0
    for record in uow.signing_keys.every():
        if master_key.is_current(record.secret_sealed):
            continue
        bound = {"key_id": record.key_id, "organization_id": record.organization_id}
        secret = master_key.open(record.secret_sealed, **bound)
        uow.signing_keys.reseal(record.key_id, master_key.seal(secret, **bound))
        resealed += 1
    return resealed


def ensure_local_key(uow: UnitOfWork, master_key: MasterKey, home: Path) -> SigningKey:
    """The embedded default's key of the local organization, kept in ``home`` (mode 0600)
    for the CLI on this machine; made again, and committed, if missing, revoked, or not
    openable with this master key."""
    path = home / c.LOCAL_KEY_FILE
    kept = read_key_file(path)
    if kept is not None and kept.organization_id == c.LOCAL_ORGANIZATION:
        record = uow.signing_keys.get(kept.key_id)
        if record is not None and record.revoked_at is None and _opens_to(master_key, record, kept):
            return kept
    key = create_key(uow, master_key, c.LOCAL_ORGANIZATION)
    uow.commit()
    write_key_file(path, key)
    return key


def _opens_to(master_key: MasterKey, record: SigningKeyRecord, kept: SigningKey) -> bool:
    try:
        secret = master_key.open(
            record.secret_sealed, key_id=record.key_id, organization_id=record.organization_id
        )
    except SealedSecretError:
        return False
    return secret == kept.secret


def replay_key(uow: UnitOfWork, master_key: MasterKey, organization_id: str) -> SigningKey | None:
    """The newest active key of the organization, opened, or None if it has none.

    What an operator's replay of a dead letter signs with: stored copies of commands keep
    no signature value, and whoever holds the database and the master key may sign anyway.
    """
    active = [r for r in uow.signing_keys.of(organization_id) if r.revoked_at is None]
    if not active:
        return None
    record = max(active, key=lambda r: r.created_at)
    secret = master_key.open(
        record.secret_sealed, key_id=record.key_id, organization_id=record.organization_id
    )
    return SigningKey(record.key_id, secret, organization_id)
