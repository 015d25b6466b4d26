"""The migrations build exactly the tables the code declares, and move a database with data
from one revision to the next, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine, make_url

from models import tables as t
from models.database import create_engine
from models.migrations import alembic_config, current_revision, head_revision, upgrade


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:
    """A database of its own, without any table."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'migrations.db'}")
        yield engine
        engine.dispose()
        return
    url = make_url(request.getfixturevalue("postgres_url"))
    admin = create_engine(url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    name = f"{url.database}_mig_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(url.set(database=name).render_as_string(hide_password=False))
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_the_migrations_build_the_declared_tables(empty_engine):
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    with empty_engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), t.metadata) == []


def test_the_hot_tables_lose_their_foreign_keys_and_keep_their_rows(empty_engine):
    # Given a database at the first revision with an owner row
    upgrade(empty_engine, "0001")
    with empty_engine.begin() as conn:
        now = sa.func.now()
        conn.execute(sa.insert(t.organizations).values(id="o", name="o", created_at=now))
        device = conn.execute(
            sa.insert(t.devices)
            .values(organization_id="o", identifier="SN-1", created_at=now)
            .returning(t.devices.c.id)
        ).scalar_one()
        customer = conn.execute(
            sa.insert(t.customers)
            .values(organization_id="o", email="a@example.com", name="a", created_at=now)
            .returning(t.customers.c.id)
        ).scalar_one()
        conn.execute(
            sa.insert(t.ownerships).values(
                organization_id="o", device_id=device, customer_id=customer, created_at=now
            )
        )
    # When it is upgraded
    upgrade(empty_engine)
    # Then the row is still there, and only accesses and signing keys keep foreign keys
    with empty_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.ownerships)).scalar() == 1
        assert foreign_keys(conn) == KEPT
    # And the way back restores them
    command.downgrade(alembic_config(empty_engine), "0001")
    with empty_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.ownerships)).scalar() == 1
        restored = foreign_keys(conn)
    assert restored - KEPT == {
        ("devices", "organizations"),
        ("customers", "organizations"),
        ("ownerships", "organizations"),
        ("ownerships", "devices"),
        ("ownerships", "customers"),
        ("outbox", "organizations"),
        ("processed_commands", "organizations"),
    }


KEPT = {
    ("accesses", "organizations"),
    ("accesses", "devices"),
    ("accesses", "customers"),
    ("signing_keys", "organizations"),
}


def foreign_keys(conn: sa.Connection) -> set[tuple[str, str]]:
    inspector = sa.inspect(conn)
    return {
        (table, fk["referred_table"])
        for table in inspector.get_table_names()
        for fk in inspector.get_foreign_keys(table)
    }


def test_outbox_payloads_keep_their_content_through_the_change_of_type(empty_engine):
    # Given a database at revision 0002 with an unsent event
    upgrade(empty_engine, "0002")
    payload = {"id": "e-1", "data": {"owners": [{"email": "ä@example.com", "customerId": 1}]}}
    with empty_engine.begin() as conn:
        conn.execute(
            sa.insert(t.outbox).values(
                event_id="e-1",
                organization_id="o",
                type="device.assigned",
                subject="SN-1",
                payload=payload,
                created_at=sa.func.now(),
            )
        )
    # When it is upgraded, and downgraded again
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        upgraded = conn.execute(sa.select(t.outbox.c.payload)).scalar_one()
    command.downgrade(alembic_config(empty_engine), "0002")
    with empty_engine.connect() as conn:
        downgraded = conn.execute(sa.select(t.outbox.c.payload)).scalar_one()
    # Then the relay reads the same event each time
    assert upgraded == downgraded == payload
