"""In-memory implementation of the storage port, for unit tests without I/O.

It keeps the same invariants as the tables (one customer per e-mail per organization,
one owner row per pair) and the same transaction semantics: nothing is visible to
another unit of work until ``commit()``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from models.domain import Customer, Device, DomainEvent, name_from_email
from models.ports import DeadLetterRecord, OutboxRecord, RejectionRecord, StoredResult


@dataclass
class State:
    organizations: dict[str, str] = field(default_factory=dict)
    devices: dict[tuple[str, str], Device] = field(default_factory=dict)
    customers: dict[tuple[str, str], Customer] = field(default_factory=dict)
    owners: list[tuple[int, int]] = field(default_factory=list)  # (device_id, customer_id)
    processed: dict[tuple[str, str], StoredResult] = field(default_factory=dict)
    rejections: list[RejectionRecord] = field(default_factory=list)
    outbox: list[OutboxRecord] = field(default_factory=list)
    dead_letters: list[DeadLetterRecord] = field(default_factory=list)
    next_id: int = 1

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


class FakeDatabase:
    def __init__(self) -> None:
        self.state = State()
        self.commits = 0

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)


class _Repo:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    @property
    def s(self) -> State:
        return self.uow.state


class FakeOrganizations(_Repo):
    def exists(self, organization_id: str) -> bool:
        return organization_id in self.s.organizations

    def add(self, organization_id: str, name: str) -> bool:
        if organization_id in self.s.organizations:
            return False
        self.s.organizations[organization_id] = name
        return True


class FakeDevices(_Repo):
    def get(self, organization_id: str, identifier: str, *, lock: bool = False) -> Device | None:
        return self.s.devices.get((organization_id, identifier))

    def add(
        self, organization_id: str, identifier: str, device_type: str | None
    ) -> tuple[Device, bool]:
        key = (organization_id, identifier)
        created = key not in self.s.devices
        if created:
            self.s.devices[key] = Device(self.s.new_id(), organization_id, identifier, device_type)
        return self.s.devices[key], created

    def lock_many(self, organization_id: str, identifiers: list[str]) -> dict[str, Device]:
        found = (self.s.devices.get((organization_id, i)) for i in sorted(set(identifiers)))
        return {d.identifier: d for d in found if d is not None}

    def add_many(
        self, organization_id: str, devices: dict[str, str | None]
    ) -> tuple[dict[str, Device], set[str]]:
        made = {i: self.add(organization_id, i, devices[i]) for i in sorted(devices)}
        return {i: d for i, (d, _) in made.items()}, {i for i, (_, new) in made.items() if new}


class FakeCustomers(_Repo):
    def ensure(self, organization_id: str, emails: list[str]) -> list[Customer]:
        created = set()
        for email in emails:
            key = (organization_id, email)
            if key not in self.s.customers:
                self.s.customers[key] = Customer(
                    self.s.new_id(), organization_id, email, name_from_email(email)
                )
                created.add(email)
        return [
            Customer(**{**self.s.customers[(organization_id, e)].__dict__, "created": e in created})
            for e in emails
        ]


class FakeOwners(_Repo):
    def add(self, organization_id: str, device_id: int, customer_ids: list[int]) -> set[int]:
        added = set()
        for cid in customer_ids:
            if (device_id, cid) not in self.s.owners:
                self.s.owners.append((device_id, cid))
                added.add(cid)
        return added

    def of(self, device_id: int) -> list[Customer]:
        by_id = {c.id: c for c in self.s.customers.values()}
        return [by_id[cid] for did, cid in self.s.owners if did == device_id]

    def add_many(self, organization_id: str, pairs: list[tuple[int, int]]) -> set[tuple[int, int]]:
        added = set()
        for pair in sorted(set(pairs)):
            if pair not in self.s.owners:
                self.s.owners.append(pair)
                added.add(pair)
        return added

    def of_many(self, device_ids: list[int]) -> dict[int, list[Customer]]:
        owners = {d: self.of(d) for d in set(device_ids)}
        return {d: found for d, found in owners.items() if found}


class FakeProcessed(_Repo):
    def get(self, organization_id: str, request_id: str) -> StoredResult | None:
        return self.s.processed.get((organization_id, request_id))

    def add(self, record: StoredResult, outbox: list[OutboxRecord] | None = None) -> bool:
        key = (record.organization_id, record.request_id)
        if key in self.uow.db.state.processed or key in self.s.processed:
            return False
        self.s.processed[key] = record
        self.s.outbox.extend(outbox or [])
        return True


class FakeRejections(_Repo):
    def add(self, record: RejectionRecord) -> None:
        self.s.rejections.append(record)

    def latest(self, organization_id: str | None, request_id: str) -> RejectionRecord | None:
        for record in reversed(self.s.rejections):
            if record.request_id == request_id and organization_id in (
                None,
                record.organization_id,
            ):
                return record
        return None


class FakeOutbox(_Repo):
    def add(self, records: list[OutboxRecord]) -> None:
        self.s.outbox.extend(records)


class FakeDeadLetters(_Repo):
    def add(self, record: DeadLetterRecord) -> int:
        self.s.dead_letters.append(record)
        return len(self.s.dead_letters)


class FakeUnitOfWork:
    def __init__(self, db: FakeDatabase) -> None:
        self.db = db
        self.events: list[DomainEvent] = []
        self.organizations = FakeOrganizations(self)
        self.devices = FakeDevices(self)
        self.customers = FakeCustomers(self)
        self.owners = FakeOwners(self)
        self.commands = FakeProcessed(self)
        self.rejections = FakeRejections(self)
        self.outbox = FakeOutbox(self)
        self.dead_letters = FakeDeadLetters(self)

    def __enter__(self) -> Self:
        self.state = copy.deepcopy(self.db.state)
        self.now = datetime.now(UTC)
        self.events = []
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.state = copy.deepcopy(self.db.state)  # anything uncommitted is dropped

    def commit(self) -> None:
        self.db.state = copy.deepcopy(self.state)
        self.db.commits += 1

    def rollback(self) -> None:
        self.state = copy.deepcopy(self.db.state)
        self.events = []


def snapshot(db: FakeDatabase) -> Any:
    return copy.deepcopy(db.state)
