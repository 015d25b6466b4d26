"""In-memory implementation of the storage port, for unit tests without I/O.

It keeps the same invariants as the tables (one customer per e-mail per organization,
one owner row per pair) and the same transaction semantics: nothing is visible to
another unit of work until ``commit()``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from models.access import Access, AccessTerms
from models.domain import Customer, Device, DomainEvent, name_from_email
from models.ports import (
    DeadLetterRecord,
    OutboxRecord,
    PendingEvent,
    RejectionRecord,
    SigningKeyRecord,
    StoredDeadLetter,
    StoredResult,
)


@dataclass
class State:
    organizations: dict[str, str] = field(default_factory=dict)
    signing_keys: dict[str, SigningKeyRecord] = field(default_factory=dict)
    devices: dict[tuple[str, str], Device] = field(default_factory=dict)
    customers: dict[tuple[str, str], Customer] = field(default_factory=dict)
    owners: list[tuple[int, int]] = field(default_factory=list)  # (device_id, customer_id)
    accesses: dict[int, Access] = field(default_factory=dict)
    processed: dict[tuple[str, str], StoredResult] = field(default_factory=dict)
    rejections: list[RejectionRecord] = field(default_factory=list)
    outbox: list[OutboxRecord] = field(default_factory=list)
    dead_letters: list[StoredDeadLetter] = field(default_factory=list)
    sent: set[str] = field(default_factory=set)  # event ids the relay marked sent
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


class FakeSigningKeys(_Repo):
    def get(self, key_id: str) -> SigningKeyRecord | None:
        return self.s.signing_keys.get(key_id)

    def of(self, organization_id: str) -> list[SigningKeyRecord]:
        keys = [k for k in self.s.signing_keys.values() if k.organization_id == organization_id]
        return sorted(keys, key=lambda k: k.created_at)

    def every(self) -> list[SigningKeyRecord]:
        return sorted(self.s.signing_keys.values(), key=lambda k: (k.created_at, k.key_id))

    def add(self, record: SigningKeyRecord) -> None:
        if record.organization_id not in self.s.organizations:
            raise LookupError(f"no organization {record.organization_id!r}")  # the foreign key
        if record.key_id in self.s.signing_keys:
            raise LookupError(f"key {record.key_id!r} exists")  # the primary key
        self.s.signing_keys[record.key_id] = record

    def revoke(self, key_id: str, at: datetime) -> bool:
        record = self.s.signing_keys.get(key_id)
        if record is None or record.revoked_at is not None:
            return False
        self.s.signing_keys[key_id] = replace(record, revoked_at=at)
        return True

    def reseal(self, key_id: str, secret_sealed: str) -> None:
        record = self.s.signing_keys[key_id]
        self.s.signing_keys[key_id] = replace(record, secret_sealed=secret_sealed)


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

    def find(self, organization_id: str, email: str) -> Customer | None:
        return self.s.customers.get((organization_id, email))

    def find_all(self, organization_id: str, emails: list[str]) -> list[Customer]:
        return [
            self.s.customers[(organization_id, e)]
            for e in emails
            if (organization_id, e) in self.s.customers
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

    def remove(self, organization_id: str, device_id: int, customer_ids: list[int]) -> set[int]:
        removed = {cid for did, cid in self.s.owners if did == device_id and cid in customer_ids}
        self.s.owners = [
            (did, cid) for did, cid in self.s.owners if not (did == device_id and cid in removed)
        ]
        return removed

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


class FakeAccesses(_Repo):
    """Keeps the tables' invariant: at most one open access per user and device."""

    def get(self, organization_id: str, access_id: int) -> Access | None:
        access = self.s.accesses.get(access_id)
        return access if access and access.organization_id == organization_id else None

    def open_for(self, device_id: int, customer_id: int) -> Access | None:
        for access in self.s.accesses.values():
            mine = (access.device_id, access.customer_id) == (device_id, customer_id)
            if mine and access.closed_at is None:
                return access
        return None

    def latest_for(self, device_id: int, customer_id: int) -> Access | None:
        mine = [
            a
            for a in self.s.accesses.values()
            if (a.device_id, a.customer_id) == (device_id, customer_id)
        ]
        return min(mine, key=lambda a: (a.closed_at is not None, -a.id), default=None)

    def add(
        self,
        organization_id: str,
        device_id: int,
        customer_id: int,
        terms: AccessTerms,
        *,
        granted_by_customer_id: int | None,
    ) -> Access | None:
        if self.open_for(device_id, customer_id) is not None:
            return None
        user = next(c for c in self.s.customers.values() if c.id == customer_id)
        access = Access(
            id=self.s.new_id(),
            organization_id=organization_id,
            device_id=device_id,
            customer_id=customer_id,
            user_email=user.email,
            user_name=user.name,
            terms=terms,
            granted_by_customer_id=granted_by_customer_id,
            created_at=self.uow.now,
            updated_at=self.uow.now,
        )
        self.s.accesses[access.id] = access
        return access

    def update(self, access_id: int, terms: AccessTerms) -> Access:
        access = replace(self.s.accesses[access_id], terms=terms, updated_at=self.uow.now)
        self.s.accesses[access_id] = access
        return access

    def close(self, access_id: int, *, revoke: bool) -> Access:
        access = replace(self.s.accesses[access_id], closed_at=self.uow.now)
        if revoke:
            access = replace(access, revoked_at=self.uow.now)
        self.s.accesses[access_id] = access
        return access


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

    def get_many(self, organization_id: str, request_ids: list[str]) -> dict[str, StoredResult]:
        found = (self.get(organization_id, request_id) for request_id in request_ids)
        return {record.request_id: record for record in found if record is not None}

    def add_many(self, entries: list[tuple[StoredResult, list[OutboxRecord]]]) -> bool:
        return all(self.add(record, outbox) for record, outbox in entries)


class FakeRejections(_Repo):
    def add(self, record: RejectionRecord) -> None:
        self.s.rejections.append(record)

    def latest(self, organization_id: str | None, request_id: str) -> RejectionRecord | None:
        for record in reversed(self.s.rejections):
            if record.request_id == request_id and record.organization_id == organization_id:
                return record
        return None


class FakeOutbox(_Repo):
    def add(self, records: list[OutboxRecord]) -> None:
        self.s.outbox.extend(records)


class FakeDeadLetters(_Repo):
    def add(self, record: DeadLetterRecord) -> int:
        dead_letter_id = len(self.s.dead_letters) + 1
        stored = StoredDeadLetter(
            **record.__dict__, id=dead_letter_id, created_at=self.uow.now, replayed_at=None
        )
        self.s.dead_letters.append(stored)
        return dead_letter_id

    def get(self, dead_letter_id: int) -> StoredDeadLetter | None:
        return next((d for d in self.s.dead_letters if d.id == dead_letter_id), None)

    def list(self, *, include_replayed: bool = False, limit: int = 100) -> list[StoredDeadLetter]:
        chosen = [d for d in self.s.dead_letters if include_replayed or d.replayed_at is None]
        return sorted(chosen, key=lambda d: d.id, reverse=True)[:limit]

    def mark_replayed(self, dead_letter_id: int) -> bool:
        for i, dead in enumerate(self.s.dead_letters):
            if dead.id == dead_letter_id:
                self.s.dead_letters[i] = dataclasses.replace(dead, replayed_at=self.uow.now)
                return True
        return False


class FakeUnitOfWork:
    def __init__(self, db: FakeDatabase) -> None:
        self.db = db
        self.events: list[DomainEvent] = []
        self.organizations = FakeOrganizations(self)
        self.signing_keys = FakeSigningKeys(self)
        self.devices = FakeDevices(self)
        self.customers = FakeCustomers(self)
        self.owners = FakeOwners(self)
        self.accesses = FakeAccesses(self)
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


class FakeOutboxBatch:
    def __init__(self, events: list[PendingEvent]) -> None:
        self.events = events
        self.marked = False

    def mark_sent(self) -> None:
        self.marked = True


class FakeOutboxFeed:
    """The relay's view of the fake outbox: row position = id; marks count only when the
    claim ends without error, as a transaction would."""

    def __init__(self, db: FakeDatabase) -> None:
        self.db = db
        self.waits = 0

    @contextmanager
    def claim(self, limit: int) -> Iterator[FakeOutboxBatch]:
        s = self.db.state
        unsent = [
            PendingEvent(n, r.event_id, r.type, r.subject, copy.deepcopy(r.payload))
            for n, r in enumerate(s.outbox, 1)
            if r.event_id not in s.sent
        ]
        batch = FakeOutboxBatch(unsent[:limit])
        yield batch
        if batch.marked:
            s.sent |= {e.event_id for e in batch.events}

    def wait(self, timeout_s: float) -> bool:
        self.waits += 1
        return False

    def prune_sent(self, before: datetime) -> int:
        return 0

    def close(self) -> None:
        pass
