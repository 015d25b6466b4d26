"""One test, three stores: the in-memory fake, SQLite and PostgreSQL, seen the same way."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models import tables as t
from models.keystore import MasterKey
from models.signing import SigningKey
from models.store import SqlUnitOfWork
from tasks.authenticate import Authenticator
from tasks.keys import create_key
from tests.fakes import FakeDatabase

# Seals the signing keys tests create; a real worker of the test stack gets it too.
TEST_MASTER_KEY = MasterKey.generate_text()


@dataclass
class OrgState:
    """Everything one organization holds, in plain values."""

    devices: dict[str, str | None] = field(default_factory=dict)  # identifier -> type
    customers: dict[str, str] = field(default_factory=dict)  # email -> name
    owners: set[tuple[str, str]] = field(default_factory=set)  # (identifier, email)
    owner_rows: int = 0
    processed: dict[str, dict[str, Any]] = field(default_factory=dict)  # requestId -> result
    rejections: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # outbox payloads, in order
    accesses: dict[int, dict[str, Any]] = field(default_factory=dict)  # access id -> values

    def open_accesses(self, device: str, email: str) -> list[int]:
        """Ids of the accesses of this user and device that are not closed."""
        return [
            i
            for i, a in self.accesses.items()
            if (a["device"], a["user"]) == (device, email) and a["closedAt"] is None
        ]


def access_values(
    device: str, user: str, granted_by: str | None, a: Any, **schedule: Any
) -> dict[str, Any]:
    """An access as plain values, the same from every store."""
    return {
        "device": device,
        "user": user,
        "grantedBy": granted_by,
        "level": a.access_level,
        "remoteAccessDisabled": a.remote_access_disabled,
        **schedule,
        "createdAt": a.created_at,
        "updatedAt": a.updated_at,
        "revokedAt": a.revoked_at,
        "closedAt": a.closed_at,
    }


def new_org_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class _Keys:
    """Every new organization gets a signing key; ``key_for`` hands it to producers."""

    def __init__(self, master_key: MasterKey) -> None:
        self.master_key = master_key
        self.authenticator = Authenticator(master_key, required=False)
        self.keys: dict[str, SigningKey] = {}

    def key_for(self, org: str) -> SigningKey | None:
        return self.keys.get(org)

    def new_key(self, org: str) -> SigningKey:
        """Another active key of ``org`` (as a rotation makes), not the one ``key_for`` gives."""
        with self.uow() as uow:
            key = create_key(uow, self.master_key, org)
            uow.commit()
        return key

    def _first_key(self, org: str) -> None:
        self.keys[org] = self.new_key(org)


class FakeBackend(_Keys):
    name = "fake"

    def __init__(self, master_key: MasterKey | None = None) -> None:
        super().__init__(master_key or MasterKey.from_text(TEST_MASTER_KEY))
        self.db = FakeDatabase()

    def uow(self) -> Any:
        return self.db.uow()

    def new_org(self) -> str:
        org = new_org_id()
        self.db.state.organizations[org] = org
        self._first_key(org)
        return org

    def state(self, org: str) -> OrgState:
        s = self.db.state
        devices = {d.id: d for (o, _), d in s.devices.items() if o == org}
        customers = {c.id: c for (o, _), c in s.customers.items() if o == org}
        owners = [(d, c) for d, c in s.owners if d in devices]
        return OrgState(
            devices={d.identifier: d.device_type for d in devices.values()},
            customers={c.email: c.name for c in customers.values()},
            owners={(devices[d].identifier, customers[c].email) for d, c in owners},
            owner_rows=len(owners),
            processed={r: v.result for (o, r), v in s.processed.items() if o == org},
            rejections=[r.result for r in s.rejections if r.organization_id == org],
            events=[r.payload for r in s.outbox if r.organization_id == org],
            accesses={
                a.id: access_values(
                    devices[a.device_id].identifier,
                    customers[a.customer_id].email,
                    customers[a.granted_by_customer_id].email if a.granted_by_customer_id else None,
                    _FakeRow(a),
                    **_schedule(a.terms.schedule),
                )
                for a in s.accesses.values()
                if a.organization_id == org
            },
        )


class _FakeRow:
    """An access of the fake, read like a row of the table."""

    def __init__(self, access: Any) -> None:
        self.access_level = int(access.terms.level)
        self.remote_access_disabled = access.terms.remote_access_disabled
        self.created_at, self.updated_at = access.created_at, access.updated_at
        self.revoked_at, self.closed_at = access.revoked_at, access.closed_at


def _schedule(schedule: Any) -> dict[str, Any]:
    return {
        "weekDays": schedule.week_days,
        "startDate": schedule.start,
        "endDate": schedule.end,
        "dayStartTime": schedule.day_start,
        "dayEndTime": schedule.day_end,
        "timeZone": schedule.time_zone,
    }


class SqlBackend(_Keys):
    def __init__(self, name: str, engine: Engine, master_key: MasterKey | None = None) -> None:
        super().__init__(master_key or MasterKey.from_text(TEST_MASTER_KEY))
        self.name = name
        self.engine = engine

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine)

    def new_org(self) -> str:
        org = new_org_id()
        with self.uow() as uow:
            uow.organizations.add(org, org)
            uow.commit()
        self._first_key(org)
        return org

    def state(self, org: str) -> OrgState:
        with self.engine.connect() as conn:
            d, c, o = t.devices, t.customers, t.ownerships
            devices = conn.execute(sa.select(d).where(d.c.organization_id == org)).all()
            customers = conn.execute(sa.select(c).where(c.c.organization_id == org)).all()
            owners = conn.execute(
                sa.select(d.c.identifier, c.c.email)
                .select_from(o.join(d, o.c.device_id == d.c.id).join(c, o.c.customer_id == c.c.id))
                .where(o.c.organization_id == org)
            ).all()
            p, r, ob = t.processed_commands, t.rejections, t.outbox
            processed = conn.execute(sa.select(p).where(p.c.organization_id == org)).all()
            rejections = conn.execute(
                sa.select(r.c.result).where(r.c.organization_id == org).order_by(r.c.id)
            ).all()
            events = conn.execute(
                sa.select(ob.c.payload).where(ob.c.organization_id == org).order_by(ob.c.id)
            ).all()
            a, g = t.accesses, c.alias("granter")
            accesses = conn.execute(
                sa.select(a, d.c.identifier, c.c.email, g.c.email.label("granter"))
                .select_from(
                    a.join(d, a.c.device_id == d.c.id)
                    .join(c, a.c.customer_id == c.c.id)
                    .outerjoin(g, a.c.granted_by_customer_id == g.c.id)
                )
                .where(a.c.organization_id == org)
            ).all()
        return OrgState(
            devices={row.identifier: row.device_type for row in devices},
            customers={row.email: row.name for row in customers},
            owners={(row.identifier, row.email) for row in owners},
            owner_rows=len(owners),
            processed={row.request_id: row.result for row in processed},
            rejections=[row.result for row in rejections],
            events=[row.payload for row in events],
            accesses={
                row.id: access_values(
                    row.identifier,
                    row.email,
                    row.granter,
                    row,
                    weekDays=row.week_days,
                    startDate=row.start_date,
                    endDate=row.end_date,
                    dayStartTime=row.day_start_time,
                    dayEndTime=row.day_end_time,
                    timeZone=row.time_zone,
                )
                for row in accesses
            },
        )
