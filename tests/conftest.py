"""Fixtures for real services. Each test run gets its own PostgreSQL database and its own
Redis database number, so parallel runs never collide; each test makes its own
organization, so tests never collide within a run.

A missing server skips its tests with the reason, unless CUSTODY_REQUIRE_SERVICES=1
(as in CI), which turns that skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from models.database import create_engine
from models.migrations import upgrade
from tests.backends import FakeBackend, SqlBackend

REQUIRE_SERVICES = os.environ.get("CUSTODY_REQUIRE_SERVICES") == "1"
POSTGRES_ADMIN_URL = os.environ.get(
    "CUSTODY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_BASE_URL = os.environ.get("CUSTODY_TEST_REDIS_URL", "redis://127.0.0.1:6379")
RUN_ID = uuid.uuid4().hex[:10]
RABBITMQ_USER = os.environ.get("CUSTODY_TEST_RABBITMQ_USER", "guest")
RABBITMQ_PASSWORD = os.environ.get("CUSTODY_TEST_RABBITMQ_PASSWORD", "guest")


def unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (CUSTODY_REQUIRE_SERVICES=1: a missing service is a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"custody_test_{RUN_ID}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        unavailable(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc.orig}")
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = create_engine(postgres_url, pool_size=10)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "custody.db"
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = create_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    import redis

    lock_key = "custody:test-run-lock"
    for number in range(1, 16):
        client = redis.Redis.from_url(f"{REDIS_BASE_URL}/{number}")
        try:
            taken = client.set(lock_key, RUN_ID, nx=True, ex=3600)
        except redis.ConnectionError as exc:
            unavailable(f"Redis not reachable at {REDIS_BASE_URL}: {exc}")
        if taken:
            break
        client.close()
    else:
        unavailable("every Redis database number 1-15 is taken by another test run")
    client.flushdb()
    client.set(lock_key, RUN_ID, ex=3600)
    yield f"{REDIS_BASE_URL}/{number}"
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """A virtual host of this run's own on the RabbitMQ server (made with rabbitmqctl)."""
    import shutil
    import subprocess

    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        unavailable("rabbitmqctl not found: cannot make a RabbitMQ virtual host for this run")
    vhost = f"custody_test_{RUN_ID}"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ctl, *args], capture_output=True, text=True, timeout=60)

    made = run("add_vhost", vhost)
    if made.returncode != 0:
        unavailable(f"RabbitMQ not reachable with rabbitmqctl: {made.stderr.strip()[:300]}")
    run("set_permissions", "-p", vhost, RABBITMQ_USER, ".*", ".*", ".*")
    yield f"amqp://{RABBITMQ_USER}:{RABBITMQ_PASSWORD}@127.0.0.1:5672/{vhost}"
    run("delete_vhost", vhost)


@pytest.fixture(params=["fake", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> FakeBackend | SqlBackend:
    """The same rules checked on every store."""
    if request.param == "fake":
        return FakeBackend()
    return SqlBackend(request.param, request.getfixturevalue(f"{request.param}_engine"))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"
