"""The unit of work on SQLAlchemy Core: one connection, one transaction, set-based SQL.

Invariants are carried by unique constraints and ``INSERT … ON CONFLICT DO NOTHING``, so
any number of workers can apply commands at once. Database faults that may pass (lost
connection, deadlock, serialization failure, lock timeout, SQLite busy) leave as
``Transient``; everything else propagates unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from models import store_sql as sql
from models import tables as t
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

    @property
    def _postgres(self) -> bool:
        return self._conn.dialect.name == "postgresql"

    @property
    def _dialect(self) -> str:
        return str(self._conn.dialect.name)

    def _insert(self, table: sa.Table) -> Any:
        if self._conn.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _each(self, pg_query: Any, organization_id: str, values: list[Any]) -> Sequence[Any]:
        """PostgreSQL: the rows of a ``sql.pg_each`` query for ``values``, in their order."""
        params = {"organization_id": organization_id, "values": sql.json_text(values)}
        return self._conn.execute(pg_query, params).all()

    def _insert_rows(
        self,
        pg_statement: Any,
        table: sa.Table,
        conflict: list[str],
        returning: list[Any],
        organization_id: str,
        rows: list[dict[str, Any]],
    ) -> Sequence[Any]:
        """Insert ``rows`` with the organization and the clock reading on each, ON CONFLICT
        DO NOTHING; returns the rows created."""
        if self._postgres:
            params = {
                "organization_id": organization_id,
                "now": self._uow.now,
                "rows": sql.json_text(rows),
            }
            return self._conn.execute(pg_statement, params).all()
        stmt = self._insert(table).on_conflict_do_nothing(index_elements=conflict)
        complete = [
            {**row, "organization_id": organization_id, "created_at": self._uow.now} for row in rows
        ]
        return self._conn.execute(stmt.returning(*returning), complete).all()


class KnownOrganizations:
    """Organizations seen to exist, remembered for a while by one process: every command
    checks its organization, and organizations are created, never deleted. Absence is
    never remembered, so a new organization is served at once."""

    def __init__(self, *, ttl_s: float = 60.0) -> None:
        self._ttl_s = ttl_s
        self._seen: dict[str, float] = {}

    def __contains__(self, organization_id: str) -> bool:
        seen = self._seen.get(organization_id)
        return seen is not None and time.monotonic() - seen < self._ttl_s

    def add(self, organization_id: str) -> None:
        self._seen[organization_id] = time.monotonic()


class SqlOrganizations(_Repo):
    def exists(self, organization_id: str) -> bool:
        known = self._uow.known_organizations
        if known is not None and organization_id in known:
            return True
        params = {"organization_id": organization_id}
        found = self._conn.execute(sql.ORGANIZATION_EXISTS, params).first() is not None
        if found and known is not None:
            known.add(organization_id)
        return found

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
        query = sql.GET_DEVICE_LOCKED if lock else sql.GET_DEVICE
        params = {"organization_id": organization_id, "identifier": identifier}
        row = self._conn.execute(query, params).first()
        return None if row is None else _device(row)

    def add(
        self, organization_id: str, identifier: str, device_type: str | None
    ) -> tuple[Device, bool]:
        params = {
            "organization_id": organization_id,
            "identifier": identifier,
            "device_type": device_type,
            "created_at": self._uow.now,
        }
        row = self._conn.execute(sql.ADD_DEVICE[self._dialect], params).first()
        if row is not None:
            return _device(row), True
        existing = self.get(organization_id, identifier, lock=True)
        assert existing is not None, "a conflicting device row must exist"
        return existing, False

    def lock_many(self, organization_id: str, identifiers: list[str]) -> dict[str, Device]:
        d = t.devices
        found: dict[str, Device] = {}
        wanted = sorted(set(identifiers))  # code-point order = ORDER BY … COLLATE "C"
        if not wanted:
            return found
        if self._postgres:
            # One index lookup per identifier, locked in sorted order.
            rows: Sequence[Any] = self._each(sql.PG_LOCK_DEVICES, organization_id, wanted)
        else:
            rows = [
                row
                for chunk in sql.chunks(wanted, sql.SQLITE_IN_CHUNK)
                for row in self._conn.execute(
                    sa.select(d).where(
                        d.c.organization_id == organization_id, d.c.identifier.in_(chunk)
                    )
                )
            ]
        found.update((row.identifier, _device(row)) for row in rows)
        return found

    def add_many(
        self, organization_id: str, devices: dict[str, str | None]
    ) -> tuple[dict[str, Device], set[str]]:
        wanted = sorted(devices)
        if not wanted:
            return {}, set()
        rows = self._insert_rows(
            sql.PG_INSERT_DEVICES,
            t.devices,
            ["organization_id", "identifier"],
            list(t.devices.c),
            organization_id,
            [{"identifier": i, "device_type": devices[i]} for i in wanted],
        )
        made = {row.identifier: _device(row) for row in rows}
        missing = [i for i in wanted if i not in made]
        # Made meanwhile by a concurrent command: theirs, loaded and locked.
        return {**made, **self.lock_many(organization_id, missing)}, set(made)


class SqlCustomers(_Repo):
    def ensure(self, organization_id: str, emails: list[str]) -> list[Customer]:
        c = t.customers
        ordered = sorted(set(emails))  # one lock order for every transaction
        if not ordered:
            return []
        rows = self._insert_rows(
            sql.PG_INSERT_CUSTOMERS,
            c,
            ["organization_id", "email"],
            [c.c.id, c.c.email, c.c.name],
            organization_id,
            [{"email": email, "name": name_from_email(email)} for email in ordered],
        )
        created = {row.email for row in rows}
        found = {row.email: row for row in rows}
        existing = [email for email in ordered if email not in created]
        if existing and self._postgres:
            found.update(
                (row.email, row)
                for row in self._each(sql.PG_FIND_CUSTOMERS, organization_id, existing)
            )
        elif existing:
            for chunk in sql.chunks(existing, sql.SQLITE_IN_CHUNK):
                query = sa.select(c.c.id, c.c.email, c.c.name).where(
                    c.c.organization_id == organization_id, c.c.email.in_(chunk)
                )
                found.update((row.email, row) for row in self._conn.execute(query))
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


class SqlOwners(_Repo):
    def add(self, organization_id: str, device_id: int, customer_ids: list[int]) -> set[int]:
        pairs = [(device_id, cid) for cid in customer_ids]
        return {cid for _, cid in self.add_many(organization_id, pairs)}

    def add_many(self, organization_id: str, pairs: list[tuple[int, int]]) -> set[tuple[int, int]]:
        o = t.ownerships
        ordered = sorted(set(pairs))  # one lock order for every transaction
        if not ordered:
            return set()
        rows = self._insert_rows(
            sql.PG_INSERT_OWNERS,
            o,
            ["device_id", "customer_id"],
            [o.c.device_id, o.c.customer_id],
            organization_id,
            [{"device_id": d, "customer_id": c} for d, c in ordered],
        )
        return {(row.device_id, row.customer_id) for row in rows}

    def of(self, device_id: int) -> list[Customer]:
        return self.of_many([device_id]).get(device_id, [])

    def of_many(self, device_ids: list[int]) -> dict[int, list[Customer]]:
        o, c = t.ownerships, t.customers
        owners: dict[int, list[Customer]] = {}
        wanted = sorted(set(device_ids))
        if not wanted:
            return owners
        if self._postgres:
            rows: list[Any] = sorted(
                self._each(sql.PG_OWNERS_OF, "", wanted), key=lambda r: r.ownership_id
            )
        else:
            rows = []
            for chunk in sql.chunks(wanted, sql.SQLITE_IN_CHUNK):
                query = (
                    sa.select(
                        o.c.id.label("ownership_id"),
                        o.c.device_id,
                        c.c.id,
                        c.c.organization_id,
                        c.c.email,
                        c.c.name,
                    )
                    .join(o, o.c.customer_id == c.c.id)
                    .where(o.c.device_id.in_(chunk))
                )
                rows.extend(self._conn.execute(query))
            rows.sort(key=lambda r: r.ownership_id)
        for r in rows:
            owners.setdefault(r.device_id, []).append(
                Customer(id=r.id, organization_id=r.organization_id, email=r.email, name=r.name)
            )
        return owners


class SqlProcessedCommands(_Repo):
    def get(self, organization_id: str, request_id: str) -> StoredResult | None:
        params = {"organization_id": organization_id, "request_id": request_id}
        row = self._conn.execute(sql.GET_PROCESSED, params).first()
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

    def add(self, record: StoredResult, outbox: list[OutboxRecord] | None = None) -> bool:
        params = {**record.__dict__, "created_at": self._uow.now}
        if outbox and self._postgres:
            params["rows"] = sql.json_text([r.__dict__ for r in outbox])
            return bool(self._conn.execute(sql.PG_ADD_PROCESSED_WITH_OUTBOX, params).scalar_one())
        if self._conn.execute(sql.ADD_PROCESSED[self._dialect], params).first() is None:
            return False
        SqlOutbox(self._uow).add(outbox or [])
        return True


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
        if not records:
            return
        if self._postgres:
            rows = sql.json_text([r.__dict__ for r in records])
            self._conn.execute(sql.PG_INSERT_OUTBOX, {"now": self._uow.now, "rows": rows})
        else:
            complete = [{**r.__dict__, "created_at": self._uow.now} for r in records]
            self._conn.execute(sa.insert(t.outbox), complete)


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

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utcnow,
        known_organizations: KnownOrganizations | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self.known_organizations = known_organizations
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
