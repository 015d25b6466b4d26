"""Which database faults are transient (retried) and which are permanent, checked on real
faults provoked on PostgreSQL and SQLite, not on hand-made exceptions."""

from __future__ import annotations

import socket
import threading
import uuid

import pytest
import sqlalchemy as sa

from models.database import create_engine
from models.errors import Transient
from models.store import SqlUnitOfWork, is_transient

pytestmark = pytest.mark.postgres


def caught(fn) -> BaseException:
    try:
        fn()
    except Exception as exc:
        return exc
    raise AssertionError("no error raised")


@pytest.fixture
def scratch(postgres_engine):
    """A table of this test's own, dropped afterwards."""
    name = f"scratch_{uuid.uuid4().hex[:12]}"
    with postgres_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} (id int PRIMARY KEY, v int)"))
        conn.execute(sa.text(f"INSERT INTO {name} VALUES (1, 0), (2, 0)"))
    yield name
    with postgres_engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {name}"))


def test_a_deadlock_is_transient(postgres_engine, scratch):
    # Given two transactions that each lock one row and then want the other's
    a, b = postgres_engine.connect(), postgres_engine.connect()
    ta, tb = a.begin(), b.begin()
    a.execute(sa.text(f"UPDATE {scratch} SET v = 1 WHERE id = 1"))
    b.execute(sa.text(f"UPDATE {scratch} SET v = 1 WHERE id = 2"))
    errors: list[BaseException] = []

    def a_wants_2():
        try:
            a.execute(sa.text(f"UPDATE {scratch} SET v = 2 WHERE id = 2"))
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=a_wants_2)
    thread.start()
    try:
        b.execute(sa.text(f"UPDATE {scratch} SET v = 2 WHERE id = 1"))
    except Exception as exc:
        errors.append(exc)
    thread.join(30)
    # Then PostgreSQL breaks the deadlock by failing one of them, and that is transient
    for tx in (ta, tb):
        tx.rollback()
    a.close()
    b.close()
    assert len(errors) == 1
    assert getattr(errors[0].orig, "sqlstate", None) == "40P01"
    assert is_transient(errors[0])


def test_a_lock_timeout_is_transient(postgres_engine, scratch):
    holder = postgres_engine.connect()
    holder.begin()
    holder.execute(sa.text(f"SELECT * FROM {scratch} WHERE id = 1 FOR UPDATE"))
    waiter = postgres_engine.connect()
    waiter.begin()
    waiter.execute(sa.text("SET LOCAL lock_timeout = '100ms'"))
    error = caught(lambda: waiter.execute(sa.text(f"UPDATE {scratch} SET v = 3 WHERE id = 1")))
    waiter.close()
    holder.close()
    assert error.orig.sqlstate == "55P03"
    assert is_transient(error)


def test_a_serialization_failure_is_transient(postgres_engine, scratch):
    a, b = postgres_engine.connect(), postgres_engine.connect()
    a.execution_options(isolation_level="REPEATABLE READ").begin()
    b.execution_options(isolation_level="REPEATABLE READ").begin()
    a.execute(sa.text(f"SELECT * FROM {scratch}")).all()  # a's snapshot starts here
    b.execute(sa.text(f"UPDATE {scratch} SET v = 9 WHERE id = 2"))
    b.commit()
    error = caught(lambda: a.execute(sa.text(f"UPDATE {scratch} SET v = 8 WHERE id = 2")))
    a.close()
    b.close()
    assert error.orig.sqlstate == "40001"
    assert is_transient(error)


def test_a_connection_killed_by_the_server_is_transient(postgres_engine):
    victim = postgres_engine.connect()
    pid = victim.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    with postgres_engine.connect() as admin:
        admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    error = caught(lambda: victim.execute(sa.text("SELECT 1")))
    victim.invalidate()
    assert is_transient(error)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_database_is_transient_and_the_unit_of_work_says_so():
    # Given a database URL where nothing listens
    engine = create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
    # Then opening a unit of work fails as Transient, not as a driver error
    with pytest.raises(Transient) as raised, SqlUnitOfWork(engine):
        pass
    assert "database unavailable" in str(raised.value)
    assert is_transient(raised.value.__cause__)
    engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO {t} VALUES (1, 0)",  # unique violation
        "SELECT * FROM no_such_table",
        "SELECT 1/0",
        "SELECT 'x'::int",
    ],
)
def test_permanent_database_errors_are_not_retried(postgres_engine, scratch, statement):
    with postgres_engine.connect() as conn:
        error = caught(lambda: conn.execute(sa.text(statement.format(t=scratch))))
    assert not is_transient(error)


def test_a_busy_sqlite_file_is_transient_and_a_missing_table_is_not(tmp_path):
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    engine = sa.create_engine(url, connect_args={"timeout": 0})
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id int)"))
    holder = engine.raw_connection()
    holder.execute("BEGIN IMMEDIATE")
    with engine.connect() as conn:
        busy = caught(lambda: conn.execute(sa.text("INSERT INTO t VALUES (1)")))
        missing = caught(lambda: conn.execute(sa.text("SELECT * FROM nope")))
    holder.rollback()
    holder.close()
    engine.dispose()
    assert "locked" in str(busy) and is_transient(busy)
    assert not is_transient(missing)
