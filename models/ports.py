"""The storage port: what handlers need from a unit of work, free of any framework.

``models.store`` implements it on SQLAlchemy; the tests' fakes implement it in memory.
One unit of work is one transaction: leaving the block without ``commit()`` rolls back.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from models.access import Access, AccessTerms
from models.domain import Customer, Device, DomainEvent


@dataclass(frozen=True)
class StoredResult:
    """A processed command as the idempotency table keeps it."""

    organization_id: str
    request_id: str
    task: str
    command_hash: str
    status_code: int
    result: dict[str, Any]


@dataclass(frozen=True)
class RejectionRecord:
    """A final answer that could not be bound to an idempotency key."""

    message_id: str
    organization_id: str | None
    request_id: str | None
    task: str
    status_code: int
    result: dict[str, Any]
    body: str | None


@dataclass(frozen=True)
class OutboxRecord:
    event_id: str
    organization_id: str
    type: str
    subject: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class DeadLetterRecord:
    message_id: str | None
    task: str | None
    reason: str
    body: str
    headers: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class SigningKeyRecord:
    """An organization's signing key as stored: its secret sealed under the master key."""

    key_id: str
    organization_id: str
    secret_sealed: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class StoredDeadLetter(DeadLetterRecord):
    """A dead letter as the store keeps it, for listing and replay."""

    id: int
    created_at: datetime
    replayed_at: datetime | None


class Organizations(Protocol):
    def exists(self, organization_id: str) -> bool: ...
    def add(self, organization_id: str, name: str) -> bool:
        """Create it; False if it existed already."""
        ...


class Devices(Protocol):
    def get(self, organization_id: str, identifier: str, *, lock: bool = False) -> Device | None:
        """Load a device; with ``lock`` the row stays locked until the transaction ends,
        which serializes every change to one device (commit order = event order)."""
        ...

    def add(
        self, organization_id: str, identifier: str, device_type: str | None
    ) -> tuple[Device, bool]:
        """Create the device, or load (and lock) the one a concurrent command just made;
        the flag tells whether this call created it."""
        ...

    # Set-based forms for bulk commands: a few statements whatever the number of devices.
    def lock_many(self, organization_id: str, identifiers: list[str]) -> dict[str, Device]:
        """The existing devices among ``identifiers``, each row locked, locks taken in
        identifier order (one order for every transaction, so no deadlock)."""
        ...

    def add_many(
        self, organization_id: str, devices: dict[str, str | None]
    ) -> tuple[dict[str, Device], set[str]]:
        """Create the devices (identifier -> type) that are missing, in identifier order;
        return every one of them (those a concurrent command just made are loaded and
        locked) and the identifiers this call created."""
        ...


class Customers(Protocol):
    def ensure(self, organization_id: str, emails: list[str]) -> list[Customer]:
        """One customer per address, created when missing (``created`` tells), in given order."""
        ...

    def find(self, organization_id: str, email: str) -> Customer | None:
        """The customer with this (normalized) address, if there is one; creates nothing."""

    def find_all(self, organization_id: str, emails: list[str]) -> list[Customer]:
        """The customers that exist for these addresses, in given order; creates none."""
        ...


class Owners(Protocol):
    def add(self, organization_id: str, device_id: int, customer_ids: list[int]) -> set[int]:
        """Add owner rows; returns the customer ids that were not owners before."""
        ...

    def of(self, device_id: int) -> list[Customer]:
        """Every owner of the device, oldest first."""
        ...

    def remove(self, organization_id: str, device_id: int, customer_ids: list[int]) -> set[int]:
        """Delete owner rows; returns the customer ids that were owners until now."""
        ...

    def add_many(self, organization_id: str, pairs: list[tuple[int, int]]) -> set[tuple[int, int]]:
        """Add (device id, customer id) owner rows; returns the pairs that were not owners."""
        ...

    def of_many(self, device_ids: list[int]) -> dict[int, list[Customer]]:
        """Every owner of each device, oldest first."""
        ...


class Accesses(Protocol):
    """Access grants. At most one open (not closed) access per user and device: the
    database carries that invariant, ``add`` reports a lost race instead of breaking it."""

    def get(self, organization_id: str, access_id: int) -> Access | None: ...

    def open_for(self, device_id: int, customer_id: int) -> Access | None:
        """The user's access to the device that is not closed, if any."""
        ...

    def latest_for(self, device_id: int, customer_id: int) -> Access | None:
        """The user's most recent access to the device, open or closed."""
        ...

    def add(
        self,
        organization_id: str,
        device_id: int,
        customer_id: int,
        terms: AccessTerms,
        *,
        granted_by_customer_id: int | None,
    ) -> Access | None:
        """Insert the user's open access; ``None`` if one is open already."""
        ...

    def update(self, access_id: int, terms: AccessTerms) -> Access:
        """Store new terms (``updated_at`` = now) and return the access as stored."""
        ...

    def close(self, access_id: int, *, revoke: bool) -> Access:
        """Close the access now (and mark it revoked with ``revoke``); return it as stored."""
        ...


class ProcessedCommands(Protocol):
    def get(self, organization_id: str, request_id: str) -> StoredResult | None: ...
    def add(self, record: StoredResult, outbox: list[OutboxRecord] | None = None) -> bool:
        """Record a processed command, with the outbox rows of its events; False if its
        key was taken meanwhile (then neither is written)."""
        ...

    def get_many(self, organization_id: str, request_ids: list[str]) -> dict[str, StoredResult]:
        """The records of those of ``request_ids`` that were processed, by requestId."""
        ...

    def add_many(self, entries: list[tuple[StoredResult, list[OutboxRecord]]]) -> bool:
        """Record many processed commands with the outbox rows of their events; False if
        any key was taken meanwhile (then the caller must roll back: some rows may be
        written)."""
        ...


class Rejections(Protocol):
    def add(self, record: RejectionRecord) -> None: ...
    def latest(self, organization_id: str | None, request_id: str) -> RejectionRecord | None:
        """The newest rejection of ``request_id`` in that organization; with None, the newest
        one recorded without an organization (never another organization's)."""
        ...


class Outbox(Protocol):
    def add(self, records: list[OutboxRecord]) -> None: ...


class DeadLetters(Protocol):
    def add(self, record: DeadLetterRecord) -> int: ...
    def get(self, dead_letter_id: int) -> StoredDeadLetter | None: ...
    def list(self, *, include_replayed: bool = False, limit: int = 100) -> list[StoredDeadLetter]:
        """Newest first; without ``include_replayed`` only those not replayed yet."""
        ...

    def mark_replayed(self, dead_letter_id: int) -> bool:
        """Set ``replayed_at`` to the transaction's clock; False if there is no such id."""
        ...


class SigningKeys(Protocol):
    def get(self, key_id: str) -> SigningKeyRecord | None: ...
    def of(self, organization_id: str) -> list[SigningKeyRecord]:
        """Every key of the organization, revoked ones too, oldest first."""
        ...

    def every(self) -> list[SigningKeyRecord]:
        """Every key of every organization (for resealing under a new master key)."""
        ...

    def add(self, record: SigningKeyRecord) -> None: ...
    def revoke(self, key_id: str, at: datetime) -> bool:
        """Mark the key revoked; False if it is unknown or was revoked already."""
        ...

    def reseal(self, key_id: str, secret_sealed: str) -> None: ...


class UnitOfWork(Protocol):
    organizations: Organizations
    signing_keys: SigningKeys
    devices: Devices
    customers: Customers
    owners: Owners
    accesses: Accesses
    commands: ProcessedCommands
    rejections: Rejections
    outbox: Outbox
    dead_letters: DeadLetters
    events: list[DomainEvent]  # facts recorded by handlers, written to the outbox on commit
    now: datetime  # the transaction's clock reading, UTC

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None:
        """Undo everything so far and go on in a fresh transaction."""
        ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


# The relay's side of the outbox: committed rows not yet published.


@dataclass(frozen=True)
class PendingEvent:
    """One committed outbox row waiting to be published; ``payload`` is the CloudEvent."""

    id: int
    event_id: str
    type: str
    subject: str
    payload: dict[str, Any]


class OutboxBatch(Protocol):
    events: list[PendingEvent]  # in commit order per subject (device)

    def mark_sent(self) -> None:
        """Record the batch as published; takes effect when the claim ends without error."""
        ...


class OutboxFeed(Protocol):
    def claim(self, limit: int) -> AbstractContextManager[OutboxBatch]:
        """Hold up to ``limit`` unsent events so no other relay publishes them meanwhile.

        Leaving the block with an exception (or dying inside it) releases them unsent."""
        ...

    def wait(self, timeout_s: float) -> bool:
        """Block until outbox rows may have been committed, or ``timeout_s`` passed."""
        ...

    def prune_sent(self, before: datetime) -> int:
        """Delete rows published before ``before``; returns how many."""
        ...

    def close(self) -> None: ...
