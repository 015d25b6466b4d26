"""The unit of work on SQLAlchemy Core: one connection, one transaction, set-based SQL.

Invariants are carried by unique constraints and ``INSERT … ON CONFLICT DO NOTHING``, so
any number of workers can apply commands at once. Database faults that may pass (lost
connection, deadlock, serialization failure, lock timeout, SQLite busy) leave as
``Transient``; everything else propagates unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from models import tables as t
from models.constants import OUTBOX_CHANNEL
from models.domain import Customer, Device, DomainEvent, name_from_email
from models.errors import Transient
from models.ports import DeadLetterRecord, OutboxRecord, RejectionRecord, StoredResult

# SQLSTATEs worth a retry: serialization failure, deadlock, lock timeout, admin shutdown,
# cannot connect now, and the whole connection-exception class.
_TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03"}


def utcnow() -> datetime:
    return datetime.now(UTC)


def is_transient(exc: BaseException) -> bool:
    """Whether a database error may go away if the same work is tried again."""
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError):
            sqlstate = getattr(exc.orig, "sqlstate", None)
            return sqlstate is None or sqlstate in _TRANSIENT_SQLSTATES or sqlstate[:2] == "08"
        sqlstate = getattr(exc.orig, "sqlstate", None)
        return sqlstate in _TRANSIENT_SQLSTATES
    return isinstance(exc, sa.exc.TimeoutError)  # pool exhausted


class _Repo:
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    @property
    def _conn(self) -> Connection:
        return self._uow.connection

    def _insert(self, table: sa.Table) -> Any:
        if self._conn.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)


class SqlOrganizations(_Repo):
    def exists(self, organization_id: str) -> bool:
        query = sa.select(t.organizations.c.id).where(t.organizations.c.id == organization_id)
        return self._conn.execute(query).first() is not None

    def add(self, organization_id: str, name: str) -> bool:
        stmt = (
            self._insert(t.organizations)
            .values(id=organization_id, name=name, created_at=self._uow.now)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(t.organizations.c.id)
        )
        return self._conn.execute(stmt).first() is not None

    def list(self) -> list[str]:
        query = sa.select(t.organizations.c.id).order_by(t.organizations.c.id)
        return list(self._conn.execute(query).scalars())


def _device(row: Any) -> Device:
    return Device(
        id=row.id,
        organization_id=row.organization_id,
        identifier=row.identifier,
        device_type=row.device_type,
    )


class SqlDevices(_Repo):
    def get(self, organization_id: str, identifier: str, *, lock: bool = False) -> Device | None:
        d = t.devices
        query = sa.select(d).where(
            d.c.organization_id == organization_id, d.c.identifier == identifier
        )
        if lock:
            query = query.with_for_update()
        row = self._conn.execute(query).first()
        return None if row is None else _device(row)

    def add(
        self, organization_id: str, identifier: str, device_type: str | None
    ) -> tuple[Device, bool]:
        stmt = (
            self._insert(t.devices)
            .values(
                organization_id=organization_id,
                identifier=identifier,
                device_type=device_type,
                created_at=self._uow.now,
            )
            .on_conflict_do_nothing(index_elements=["organization_id", "identifier"])
            .returning(*t.devices.c)
        )
        row = self._conn.execute(stmt).first()
        if row is not None:
            return _device(row), True
        existing = self.get(organization_id, identifier, lock=True)
        assert existing is not None, "a conflicting device row must exist"
        return existing, False


class SqlCustomers(_Repo):
    def ensure(self, organization_id: str, emails: list[str]) -> list[Customer]:
        c = t.customers
        rows = [
            {
                "organization_id": organization_id,
                "email": email,
                "name": name_from_email(email),
                "created_at": self._uow.now,
            }
            for email in sorted(emails)  # one lock order for every transaction
        ]
        stmt = (
            self._insert(c)
            .on_conflict_do_nothing(index_elements=["organization_id", "email"])
            .returning(c.c.email)
        )
        created = set(self._conn.execute(stmt, rows).scalars()) if rows else set()
        query = sa.select(c.c.id, c.c.email, c.c.name).where(
            c.c.organization_id == organization_id, c.c.email.in_(emails)
        )
        found = {row.email: row for row in self._conn.execute(query)}
        return [
            Customer(
                id=found[e].id,
                organization_id=organization_id,
                email=e,
                name=found[e].name,
                created=e in created,
            )
            for e in emails
        ]

    def find(self, organization_id: str, emails: list[str]) -> list[Customer]:
        c = t.customers
        if not emails:
            return []
        query = sa.select(c.c.id, c.c.email, c.c.name).where(
            c.c.organization_id == organization_id, c.c.email.in_(emails)
        )
        found = {row.email: row for row in self._conn.execute(query)}
        return [
            Customer(id=found[e].id, organization_id=organization_id, email=e, name=found[e].name)
            for e in emails
            if e in found
        ]


class SqlOwners(_Repo):
    def add(self, organization_id: str, device_id: int, customer_ids: list[int]) -> set[int]:
        o = t.ownerships
        rows = [
            {
                "organization_id": organization_id,
                "device_id": device_id,
                "customer_id": cid,
                "created_at": self._uow.now,
            }
            for cid in sorted(customer_ids)
        ]
        if not rows:
            return set()
        stmt = (
            self._insert(o)
            .on_conflict_do_nothing(index_elements=["device_id", "customer_id"])
            .returning(o.c.customer_id)
        )
        return set(self._conn.execute(stmt, rows).scalars())

    def of(self, device_id: int) -> list[Customer]:
        o, c = t.ownerships, t.customers
        query = (
            sa.select(c.c.id, c.c.organization_id, c.c.email, c.c.name)
            .join(o, o.c.customer_id == c.c.id)
            .where(o.c.device_id == device_id)
            .order_by(o.c.id)
        )
        return [
            Customer(id=r.id, organization_id=r.organization_id, email=r.email, name=r.name)
            for r in self._conn.execute(query)
        ]

    def remove(self, organization_id: str, device_id: int, customer_ids: list[int]) -> set[int]:
        o = t.ownerships
        if not customer_ids:
            return set()
        stmt = (
            sa.delete(o)
            .where(
                o.c.organization_id == organization_id,
                o.c.device_id == device_id,
                o.c.customer_id.in_(sorted(customer_ids)),
            )
            .returning(o.c.customer_id)
        )
        return set(self._conn.execute(stmt).scalars())


class SqlProcessedCommands(_Repo):
    def get(self, organization_id: str, request_id: str) -> StoredResult | None:
        p = t.processed_commands
        query = sa.select(p).where(
            p.c.organization_id == organization_id, p.c.request_id == request_id
        )
        row = self._conn.execute(query).first()
        if row is None:
            return None
        return StoredResult(
            organization_id=row.organization_id,
            request_id=row.request_id,
            task=row.task,
            command_hash=row.command_hash,
            status_code=row.status_code,
            result=row.result,
        )

    def add(self, record: StoredResult) -> bool:
        p = t.processed_commands
        stmt = (
            self._insert(p)
            .values(
                organization_id=record.organization_id,
                request_id=record.request_id,
                task=record.task,
                command_hash=record.command_hash,
                status_code=record.status_code,
                result=record.result,
                created_at=self._uow.now,
            )
            .on_conflict_do_nothing(index_elements=["organization_id", "request_id"])
            .returning(p.c.id)
        )
        return self._conn.execute(stmt).first() is not None


class SqlRejections(_Repo):
    def add(self, record: RejectionRecord) -> None:
        values = {**record.__dict__, "created_at": self._uow.now}
        self._conn.execute(sa.insert(t.rejections).values(**values))

    def latest(self, organization_id: str | None, request_id: str) -> RejectionRecord | None:
        r = t.rejections
        query = sa.select(r).where(r.c.request_id == request_id).order_by(r.c.id.desc()).limit(1)
        if organization_id is not None:
            query = query.where(r.c.organization_id == organization_id)
        row = self._conn.execute(query).first()
        if row is None:
            return None
        return RejectionRecord(
            message_id=row.message_id,
            organization_id=row.organization_id,
            request_id=row.request_id,
            task=row.task,
            status_code=row.status_code,
            result=row.result,
            body=row.body,
        )


class SqlOutbox(_Repo):
    def add(self, records: list[OutboxRecord]) -> None:
        if records:
            rows = [{**r.__dict__, "created_at": self._uow.now} for r in records]
            self._conn.execute(sa.insert(t.outbox), rows)
            if self._conn.dialect.name == "postgresql":
                # Delivered to listening relays on commit, dropped on rollback.
                self._conn.execute(sa.select(sa.func.pg_notify(OUTBOX_CHANNEL, "")))


class SqlDeadLetters(_Repo):
    def add(self, record: DeadLetterRecord) -> int:
        stmt = (
            sa.insert(t.dead_letters)
            .values(**record.__dict__, created_at=self._uow.now)
            .returning(t.dead_letters.c.id)
        )
        return int(self._conn.execute(stmt).scalar_one())


class SqlUnitOfWork:
    """One transaction on one connection. Leaving without ``commit()`` rolls back."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._clock = clock
        self.events: list[DomainEvent] = []
        self.organizations = SqlOrganizations(self)
        self.devices = SqlDevices(self)
        self.customers = SqlCustomers(self)
        self.owners = SqlOwners(self)
        self.commands = SqlProcessedCommands(self)
        self.rejections = SqlRejections(self)
        self.outbox = SqlOutbox(self)
        self.dead_letters = SqlDeadLetters(self)

    def __enter__(self) -> Self:
        try:
            self.connection = self._engine.connect()
            self._tx = self.connection.begin()
        except sa.exc.SQLAlchemyError as exc:
            if is_transient(exc):
                raise Transient(f"database unavailable: {_describe(exc)}") from exc
            raise
        self.now = self._clock()
        self.events = []
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._tx.is_active:
                self._tx.rollback()
        except sa.exc.SQLAlchemyError:
            pass  # the connection is gone; closing it below is all that is left
        finally:
            self.connection.close()
        if exc is not None and is_transient(exc):
            raise Transient(f"database fault: {_describe(exc)}") from exc

    def commit(self) -> None:
        try:
            self._tx.commit()
        except sa.exc.SQLAlchemyError as exc:
            if is_transient(exc):
                raise Transient(f"commit failed: {_describe(exc)}") from exc
            raise

    def rollback(self) -> None:
        self._tx.rollback()
        self._tx = self.connection.begin()
        self.events = []


def _describe(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return f"{type(orig).__name__}: {str(orig).strip().splitlines()[0] if str(orig) else ''}"


def make_uow_factory(
    engine: Engine, *, clock: Callable[[], datetime] = utcnow
) -> Callable[[], SqlUnitOfWork]:
    def factory() -> SqlUnitOfWork:
        return SqlUnitOfWork(engine, clock=clock)

    return factory


def outbox_rows(engine: Engine, organization_id: str) -> Sequence[Any]:
    """Every outbox row of an organization, in id order (for checks and tools)."""
    with engine.connect() as conn:
        o = t.outbox
        query = sa.select(o).where(o.c.organization_id == organization_id).order_by(o.c.id)
        return conn.execute(query).all()
