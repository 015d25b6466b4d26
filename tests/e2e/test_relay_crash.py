"""A relay killed between publishing a batch and marking it sent: the batch is published
again by the next relay and subscribers deduplicate. Real relay processes, real broker."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from models import constants as c
from models.database import create_engine
from models.migrations import upgrade
from models.settings import Settings
from tasks.pipeline import Delivery, process
from tests.conftest import POSTGRES_ADMIN_URL
from tests.e2e.conftest import (
    REPO,
    Recorder,
    consume_until,
    stack_env,
    start_relay,
    stop_worker,
    unsent_events,
)
from tests.e2e.crashing_relay import CRASH_EXIT
from tests.helpers import assign_body, new_device

pytestmark = pytest.mark.e2e


@pytest.fixture(
    params=[
        pytest.param("redis+postgres", marks=[pytest.mark.postgres, pytest.mark.redis]),
        "embedded",
    ]
)
def lone(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings of each kind on a database of its own, which no relay watches."""
    home = tmp_path / "lone"
    home.mkdir()
    if request.param == "embedded":
        yield Settings(home=home, database_url=None, broker_url=None)
        return
    name = f"custody_lone_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        broker_url = request.getfixturevalue("redis_url")
        yield Settings(home=home, database_url=url, broker_url=broker_url)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_a_relay_killed_after_publishing_publishes_again_and_subscribers_deduplicate(lone):
    from subscribers import Subscriber
    from worker.runtime import Runtime

    # Given five committed commands in a database no relay watches yet, and a subscriber
    runtime = Runtime(lone)
    runtime.prepare_embedded()
    org = f"lone-{uuid.uuid4().hex[:8]}"
    with runtime.uow() as uow:
        uow.organizations.add(org, org)
        uow.commit()
    devices = [new_device() for _ in range(5)]
    for device in devices:
        body = assign_body(org, device, ["a@example.com"], autoCreateDevice=True, deviceType="T")
        assert process(Delivery(c.ASSIGN_DEVICE, str(uuid.uuid4()), body), runtime.uow).success
    recorder = Recorder(org)
    subscriber = Subscriber.from_settings(lone, f"crash-{uuid.uuid4().hex[:8]}", ["#"], recorder)
    subscriber.declare()
    env = stack_env(lone)
    # When a relay dies right after publishing them, before marking them sent
    crashed = subprocess.run(
        [sys.executable, "-m", "tests.e2e.crashing_relay"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == CRASH_EXIT, crashed.stderr
    assert unsent_events(runtime.engine, org) == 5
    assert subscriber.pending() == 5
    # And a healthy relay runs next
    log = lone.home / "relay.log"
    relay = start_relay(env, log)
    try:
        deadline = time.monotonic() + 30
        while unsent_events(runtime.engine, org) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop_worker(relay)
    assert unsent_events(runtime.engine, org) == 0, log.read_text()
    # Then every event was published twice, and the handler saw each once, in order
    consume_until(subscriber, recorder, 5)
    assert [e.subject for e in recorder.events] == devices
    assert subscriber.stats.handled == 5 and subscriber.stats.duplicates == 5
    subscriber.delete()
    subscriber.close()
    runtime.close()
