"""Pooled connections are checked only after they idled, and a dead one is then replaced."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from models.database import create_engine

pytestmark = pytest.mark.postgres


def backend_pid(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def terminate(admin_engine, pid: int) -> None:
    with admin_engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        conn.commit()


@pytest.fixture
def admin(postgres_url):
    engine = create_engine(postgres_url, pool_size=1)
    yield engine
    engine.dispose()


def test_a_connection_that_died_while_idle_is_replaced_before_use(postgres_url, admin):
    # Given a pool whose connections count as idle at once, and its connection killed
    engine = create_engine(postgres_url, pool_size=1, ping_after_idle_s=0.0)
    try:
        first = backend_pid(engine)
        terminate(admin, first)
        # When it is used again, it is checked, found dead and replaced
        assert backend_pid(engine) != first
    finally:
        engine.dispose()


def test_a_connection_in_steady_use_is_not_checked_so_a_death_surfaces_as_an_error(
    postgres_url, admin
):
    engine = create_engine(postgres_url, pool_size=1)  # checks after 10 s idle only
    try:
        terminate(admin, backend_pid(engine))
        with pytest.raises(sa.exc.OperationalError), engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        assert backend_pid(engine)  # the pool dropped it; the next use reconnects
    finally:
        engine.dispose()
