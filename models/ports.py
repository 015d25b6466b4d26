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


class Customers(Protocol):
    def ensure(self, organization_id: str, emails: list[str]) -> list[Customer]:
        """One customer per address, created when missing (``created`` tells), in given order."""
        ...

    def find(self, organization_id: str, emails: list[str]) -> list[Customer]:
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


class ProcessedCommands(Protocol):
    def get(self, organization_id: str, request_id: str) -> StoredResult | None: ...
    def add(self, record: StoredResult) -> bool:
        """Record a processed command; False if its key was taken meanwhile."""
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
