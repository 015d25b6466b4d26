"""The storage port: what handlers need from a unit of work, free of any framework.

``models.store`` implements it on SQLAlchemy; the tests' fakes implement it in memory.
One unit of work is one transaction: leaving the block without ``commit()`` rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

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


class Owners(Protocol):
    def add(self, organization_id: str, device_id: int, customer_ids: list[int]) -> set[int]:
        """Add owner rows; returns the customer ids that were not owners before."""
        ...

    def of(self, device_id: int) -> list[Customer]:
        """Every owner of the device, oldest first."""
        ...

    def add_many(self, organization_id: str, pairs: list[tuple[int, int]]) -> set[tuple[int, int]]:
        """Add (device id, customer id) owner rows; returns the pairs that were not owners."""
        ...

    def of_many(self, device_ids: list[int]) -> dict[int, list[Customer]]:
        """Every owner of each device, oldest first."""
        ...


class ProcessedCommands(Protocol):
    def get(self, organization_id: str, request_id: str) -> StoredResult | None: ...
    def add(self, record: StoredResult, outbox: list[OutboxRecord] | None = None) -> bool:
        """Record a processed command, with the outbox rows of its events; False if its
        key was taken meanwhile (then neither is written)."""
        ...


class Rejections(Protocol):
    def add(self, record: RejectionRecord) -> None: ...
    def latest(self, organization_id: str | None, request_id: str) -> RejectionRecord | None: ...


class Outbox(Protocol):
    def add(self, records: list[OutboxRecord]) -> None: ...


class DeadLetters(Protocol):
    def add(self, record: DeadLetterRecord) -> int: ...


class UnitOfWork(Protocol):
    organizations: Organizations
    devices: Devices
    customers: Customers
    owners: Owners
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
