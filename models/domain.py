"""The domain of ownership: devices, customers, owners and the facts they produce.

Pure Python: no framework, no I/O. Handlers in ``tasks`` decide with these types; the
unit of work stores them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from email_validator import EmailNotValidError, validate_email

from models.constants import DEVICE_ASSIGNED, DEVICE_UNASSIGNED, MAX_EMAIL_CHARS


@dataclass(frozen=True)
class Device:
    id: int
    organization_id: str
    identifier: str
    device_type: str | None


@dataclass(frozen=True)
class Customer:
    id: int
    organization_id: str
    email: str
    name: str
    created: bool = False  # created by the command that loaded it


@dataclass(frozen=True)
class EmailSelection:
    """The outcome of cleaning a list of e-mail addresses."""

    valid: list[str]
    skipped: list[str]


def normalize_email(raw: str) -> str | None:
    """Trim, lowercase and check the syntax of one address (no DNS); ``None`` if invalid."""
    email = raw.strip().lower()
    if not email or len(email) > MAX_EMAIL_CHARS:
        return None
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return None
    return email


def select_emails(raw: Iterable[str]) -> EmailSelection:
    """Normalize addresses, drop duplicates (first wins), and list the invalid ones as given."""
    valid: list[str] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for item in raw:
        email = normalize_email(item)
        if email is None:
            skipped.append(item)
        elif email not in seen:
            seen.add(email)
            valid.append(email)
    return EmailSelection(valid=valid, skipped=skipped)


def name_from_email(email: str) -> str:
    """A new customer is named after the local part of its address."""
    return email.split("@", 1)[0]


# Facts: what changed. The pipeline turns them into CloudEvents in the outbox.


@dataclass(frozen=True)
class DomainEvent:
    """A fact about one device, in the order it happened."""

    type: ClassVar[str]
    device_identifier: str


@dataclass(frozen=True)
class OwnerRef:
    customer_id: int
    email: str


@dataclass(frozen=True)
class DeviceAssigned(DomainEvent):
    device_id: int
    device_created: bool
    owners_added: list[OwnerRef] = field(default_factory=list)
    owners: list[OwnerRef] = field(default_factory=list)

    type: ClassVar[str] = DEVICE_ASSIGNED


@dataclass(frozen=True)
class DeviceUnassigned(DomainEvent):
    device_id: int
    owners_removed: list[OwnerRef] = field(default_factory=list)
    owners: list[OwnerRef] = field(default_factory=list)  # the owners that remain

    type: ClassVar[str] = DEVICE_UNASSIGNED
