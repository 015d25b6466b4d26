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


def test_hot_tables_lose_only_their_organization_foreign_key_and_keep_their_rows(empty_engine):
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
    # Then the row is still there, and an owner row still needs its device and customer
    with empty_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.ownerships)).scalar() == 1
        keys = {fk["referred_table"] for fk in sa.inspect(conn).get_foreign_keys("ownerships")}
    assert keys == {"devices", "customers"}
    with pytest.raises(sa.exc.IntegrityError), empty_engine.begin() as conn:
        conn.execute(
            sa.insert(t.ownerships).values(
                organization_id="o", device_id=device + 99, customer_id=customer, created_at=now
            )
        )
    # And the way back restores the foreign keys
    command.downgrade(alembic_config(empty_engine), "0001")
    with empty_engine.connect() as conn:
        keys = {fk["referred_table"] for fk in sa.inspect(conn).get_foreign_keys("ownerships")}
    assert keys == {"devices", "customers", "organizations"}
