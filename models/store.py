"""The unit of work on SQLAlchemy Core: one connection, one transaction, set-based SQL.

Invariants are carried by unique constraints and ``INSERT … ON CONFLICT DO NOTHING``, so
any number of workers can apply commands at once. Database faults that may pass (lost
connection, deadlock, serialization failure, lock timeout, SQLite busy) leave as
``Transient``; everything else propagates unchanged.
"""

from __future__ import annotations

import sqlite3
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
from models.access import Access, AccessLevel, AccessTerms, Schedule
from models.constants import OUTBOX_CHANNEL
from models.domain import Customer, Device, DomainEvent, name_from_email
from models.errors import Transient
from models.ports import (
    DeadLetterRecord,
    OutboxRecord,
    RejectionRecord,
    SigningKeyRecord,
    StoredDeadLetter,
    StoredResult,
)

# SQLSTATEs worth a retry: serialization failure, deadlock, lock timeout (lock_timeout),
# query cancelled, too many connections, admin or crash shutdown, cannot connect now, and
# the whole connection-exception class (08…).
_TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03", "57014", "53300", "57P01", "57P02", "57P03"}
# SQLite result codes that pass: another process holds the lock, a file briefly unavailable.
_TRANSIENT_SQLITE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR")


def utcnow() -> datetime:
    return datetime.now(UTC)


def is_transient(exc: BaseException) -> bool:
    """Whether a database error may go away if the same work is tried again.

    Transient: the database unreachable or restarting, a dropped connection, a deadlock, a
    serialization failure, a lock timeout, a busy SQLite file, an exhausted pool. Permanent:
    everything else (constraint violations, bad SQL, a missing table): retrying cannot help.
    """
    if isinstance(exc, sa.exc.TimeoutError):  # pool exhausted
        return True
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, sa.exc.InterfaceError):
        return True  # the connection broke under us
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate:
        return sqlstate in _TRANSIENT_SQLSTATES or sqlstate[:2] == "08"
    if isinstance(exc.orig, sqlite3.Error):
        return getattr(exc.orig, "sqlite_errorname", "").startswith(_TRANSIENT_SQLITE)
    # A driver error without a SQLSTATE: the server never answered (refused, reset, gone).
    return isinstance(exc, sa.exc.OperationalError)


def _notify_relays(conn: Connection) -> None:
    """Wake listening relays: delivered on commit, dropped on rollback (PostgreSQL)."""
    conn.execute(sa.select(sa.func.pg_notify(OUTBOX_CHANNEL, "")))


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


def _signing_key(row: Any) -> SigningKeyRecord:
    return SigningKeyRecord(
        key_id=row.id,
        organization_id=row.organization_id,
        secret_sealed=row.secret_encrypted,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class SqlSigningKeys(_Repo):
    """Read on every command (no cache of validity): a revocation counts at once."""

    def get(self, key_id: str) -> SigningKeyRecord | None:
        k = t.signing_keys
        row = self._conn.execute(sa.select(k).where(k.c.id == key_id)).first()
        return None if row is None else _signing_key(row)

    def of(self, organization_id: str) -> list[SigningKeyRecord]:
        k = t.signing_keys
        query = sa.select(k).where(k.c.organization_id == organization_id).order_by(k.c.created_at)
        return [_signing_key(row) for row in self._conn.execute(query)]

    def every(self) -> list[SigningKeyRecord]:
        k = t.signing_keys
        query = sa.select(k).order_by(k.c.created_at, k.c.id)
        return [_signing_key(row) for row in self._conn.execute(query)]

    def add(self, record: SigningKeyRecord) -> None:
        self._conn.execute(
            sa.insert(t.signing_keys).values(
                id=record.key_id,
                organization_id=record.organization_id,
                secret_encrypted=record.secret_sealed,
                created_at=record.created_at,
                revoked_at=record.revoked_at,
            )
        )

    def revoke(self, key_id: str, at: datetime) -> bool:
        k = t.signing_keys
        stmt = sa.update(k).where(k.c.id == key_id, k.c.revoked_at.is_(None)).values(revoked_at=at)
        return bool(self._conn.execute(stmt).rowcount)

    def reseal(self, key_id: str, secret_sealed: str) -> None:
        k = t.signing_keys
        self._conn.execute(
            sa.update(k).where(k.c.id == key_id).values(secret_encrypted=secret_sealed)
        )


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

    def find(self, organization_id: str, email: str) -> Customer | None:
        c = t.customers
        query = sa.select(c).where(c.c.organization_id == organization_id, c.c.email == email)
        row = self._conn.execute(query).first()
        if row is None:
            return None
        return Customer(
            id=row.id, organization_id=row.organization_id, email=row.email, name=row.name
        )

    def find_all(self, organization_id: str, emails: list[str]) -> list[Customer]:
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


def _access(row: Any) -> Access:
    return Access(
        id=row.id,
        organization_id=row.organization_id,
        device_id=row.device_id,
        customer_id=row.customer_id,
        user_email=row.email,
        user_name=row.name,
        terms=AccessTerms(
            level=AccessLevel(row.access_level),
            remote_access_disabled=row.remote_access_disabled,
            schedule=Schedule(
                week_days=row.week_days,
                start=row.start_date,
                end=row.end_date,
                day_start=row.day_start_time,
                day_end=row.day_end_time,
                time_zone=row.time_zone,
            ),
        ),
        granted_by_customer_id=row.granted_by_customer_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        revoked_at=row.revoked_at,
        closed_at=row.closed_at,
    )


def _terms_values(terms: AccessTerms) -> dict[str, Any]:
    s = terms.schedule
    return {
        "access_level": int(terms.level),
        "remote_access_disabled": terms.remote_access_disabled,
        "week_days": s.week_days,
        "start_date": s.start,
        "end_date": s.end,
        "day_start_time": s.day_start,
        "day_end_time": s.day_end,
        "time_zone": s.time_zone,
    }


class SqlAccesses(_Repo):
    def _select(self) -> Any:
        a, c = t.accesses, t.customers
        return sa.select(a, c.c.email, c.c.name).join(c, a.c.customer_id == c.c.id)

    def _one(self, query: Any) -> Access | None:
        row = self._conn.execute(query).first()
        return None if row is None else _access(row)

    def _by_id(self, access_id: int) -> Access:
        access = self._one(self._select().where(t.accesses.c.id == access_id))
        assert access is not None, f"access {access_id} must exist"
        return access

    def get(self, organization_id: str, access_id: int) -> Access | None:
        a = t.accesses
        return self._one(
            self._select().where(a.c.organization_id == organization_id, a.c.id == access_id)
        )

    def open_for(self, device_id: int, customer_id: int) -> Access | None:
        a = t.accesses
        return self._one(
            self._select().where(
                a.c.device_id == device_id, a.c.customer_id == customer_id, a.c.closed_at.is_(None)
            )
        )

    def latest_for(self, device_id: int, customer_id: int) -> Access | None:
        a = t.accesses
        query = (
            self._select()
            .where(a.c.device_id == device_id, a.c.customer_id == customer_id)
            .order_by(a.c.closed_at.is_not(None), a.c.id.desc())
            .limit(1)
        )
        return self._one(query)

    def add(
        self,
        organization_id: str,
        device_id: int,
        customer_id: int,
        terms: AccessTerms,
        *,
        granted_by_customer_id: int | None,
    ) -> Access | None:
        a = t.accesses
        stmt = (
            self._insert(a)
            .values(
                organization_id=organization_id,
                device_id=device_id,
                customer_id=customer_id,
                granted_by_customer_id=granted_by_customer_id,
                created_at=self._uow.now,
                updated_at=self._uow.now,
                **_terms_values(terms),
            )
            .on_conflict_do_nothing(
                index_elements=["device_id", "customer_id"], index_where=a.c.closed_at.is_(None)
            )
            .returning(a.c.id)
        )
        access_id = self._conn.execute(stmt).scalar()
        return None if access_id is None else self._by_id(access_id)

    def update(self, access_id: int, terms: AccessTerms) -> Access:
        a = t.accesses
        values = {**_terms_values(terms), "updated_at": self._uow.now}
        self._conn.execute(sa.update(a).where(a.c.id == access_id).values(**values))
        return self._by_id(access_id)

    def close(self, access_id: int, *, revoke: bool) -> Access:
        a = t.accesses
        values = {"closed_at": self._uow.now}
        if revoke:
            values["revoked_at"] = self._uow.now
        self._conn.execute(sa.update(a).where(a.c.id == access_id).values(**values))
        return self._by_id(access_id)


class SqlProcessedCommands(_Repo):
    def get(self, organization_id: str, request_id: str) -> StoredResult | None:
        params = {"organization_id": organization_id, "request_id": request_id}
        row = self._conn.execute(sql.GET_PROCESSED, params).first()
        return None if row is None else _stored_result(row)

    def add(self, record: StoredResult, outbox: list[OutboxRecord] | None = None) -> bool:
        params = {**record.__dict__, "created_at": self._uow.now}
        if outbox and self._postgres:
            params["rows"] = sql.json_text([r.__dict__ for r in outbox])
            if not self._conn.execute(sql.PG_ADD_PROCESSED_WITH_OUTBOX, params).scalar_one():
                return False
            _notify_relays(self._conn)
            return True
        if self._conn.execute(sql.ADD_PROCESSED[self._dialect], params).first() is None:
            return False
        SqlOutbox(self._uow).add(outbox or [])
        return True

    def get_many(self, organization_id: str, request_ids: list[str]) -> dict[str, StoredResult]:
        if not request_ids:
            return {}
        if self._postgres:
            query = sql.PG_GET_PROCESSED_MANY
            rows: Sequence[Any] = self._each(query, organization_id, request_ids)
        else:
            p = t.processed_commands
            rows = [
                row
                for chunk in sql.chunks(request_ids, sql.SQLITE_IN_CHUNK)
                for row in self._conn.execute(
                    sa.select(p).where(
                        p.c.organization_id == organization_id, p.c.request_id.in_(chunk)
                    )
                )
            ]
        return {row.request_id: _stored_result(row) for row in rows}

    def add_many(self, entries: list[tuple[StoredResult, list[OutboxRecord]]]) -> bool:
        if not self._postgres:
            return all(self.add(record, outbox) for record, outbox in entries)
        params = {
            "now": self._uow.now,
            "rows": sql.json_text([record.__dict__ for record, _ in entries]),
        }
        if len(self._conn.execute(sql.PG_ADD_PROCESSED_MANY, params).all()) < len(entries):
            return False
        SqlOutbox(self._uow).add([r for _, outbox in entries for r in outbox])
        return True


def _stored_result(row: Any) -> StoredResult:
    return StoredResult(
        organization_id=row.organization_id,
        request_id=row.request_id,
        task=row.task,
        command_hash=row.command_hash,
        status_code=row.status_code,
        result=row.result,
    )


class SqlRejections(_Repo):
    def add(self, record: RejectionRecord) -> None:
        values = {**record.__dict__, "created_at": self._uow.now}
        self._conn.execute(sa.insert(t.rejections).values(**values))

    def latest(self, organization_id: str | None, request_id: str) -> RejectionRecord | None:
        r = t.rejections
        query = sa.select(r).where(r.c.request_id == request_id).order_by(r.c.id.desc()).limit(1)
        if organization_id is None:
            query = query.where(r.c.organization_id.is_(None))
        else:
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
            _notify_relays(self._conn)
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

    def get(self, dead_letter_id: int) -> StoredDeadLetter | None:
        d = t.dead_letters
        row = self._conn.execute(sa.select(d).where(d.c.id == dead_letter_id)).first()
        return None if row is None else StoredDeadLetter(**row._asdict())

    def list(self, *, include_replayed: bool = False, limit: int = 100) -> list[StoredDeadLetter]:
        d = t.dead_letters
        query = sa.select(d).order_by(d.c.id.desc()).limit(limit)
        if not include_replayed:
            query = query.where(d.c.replayed_at.is_(None))
        return [StoredDeadLetter(**row._asdict()) for row in self._conn.execute(query)]

    def mark_replayed(self, dead_letter_id: int) -> bool:
        d = t.dead_letters
        stmt = sa.update(d).where(d.c.id == dead_letter_id).values(replayed_at=self._uow.now)
        return self._conn.execute(stmt).rowcount == 1


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
        self.signing_keys = SqlSigningKeys(self)
        self.devices = SqlDevices(self)
        self.customers = SqlCustomers(self)
        self.owners = SqlOwners(self)
        self.accesses = SqlAccesses(self)
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


def health_figures(engine: Engine, *, now: datetime | None = None) -> dict[str, Any]:
    """What an operator's probe asks the database: outbox lag and dead letters."""
    now = now or utcnow()
    o, d = t.outbox, t.dead_letters
    with engine.connect() as conn:
        unsent, oldest = conn.execute(
            sa.select(sa.func.count(), sa.func.min(o.c.created_at)).where(o.c.sent_at.is_(None))
        ).one()
        dead = conn.execute(
            sa.select(sa.func.count()).select_from(d).where(d.c.replayed_at.is_(None))
        ).scalar_one()
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return {
        "outbox_unsent": int(unsent),
        "outbox_lag_s": round((now - oldest).total_seconds(), 3) if oldest else 0.0,
        "dead_letters": int(dead),
    }
