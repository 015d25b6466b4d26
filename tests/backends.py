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
        )


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
        return OrgState(
            devices={row.identifier: row.device_type for row in devices},
            customers={row.email: row.name for row in customers},
            owners={(row.identifier, row.email) for row in owners},
            owner_rows=len(owners),
            processed={row.request_id: row.result for row in processed},
            rejections=[row.result for row in rejections],
            events=[row.payload for row in events],
        )
