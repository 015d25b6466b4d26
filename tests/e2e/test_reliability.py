"""Poison messages on a real worker: a transient fault that outlives its retries, a command
that outruns the time limit, a command whose worker dies every time. Each ends in the
dead-letter store, never loops, never stops the worker; a replay applies it once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from models import tables as t
from models.keystore import MasterKey
from models.settings import Settings
from tests.backends import TEST_MASTER_KEY, SqlBackend
from tests.e2e.conftest import REPO, Stack, stack_env, start_worker, stop_worker, wait_until_serving
from tests.helpers import assign_body, new_device

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def start(postgres_url, redis_url, postgres_engine, tmp_path) -> Iterator[Callable[..., Stack]]:
    """Start a worker (one pool process) with reliability settings of the test's choosing,
    on a commands queue of its own."""
    started: list[subprocess.Popen[bytes]] = []

    def _start(**overrides: Any) -> Stack:
        home = tmp_path / f"home-{len(started)}"
        settings = Settings(
            home=home,
            database_url=postgres_url,
            broker_url=redis_url,
            commands_queue=f"custody.test.{uuid.uuid4().hex}",
            master_key=TEST_MASTER_KEY,
            require_signatures=True,  # as in production
            **overrides,
        )
        env = stack_env(settings)
        env["CUSTODY_COMMANDS_QUEUE"] = settings.commands_queue
        for name, value in overrides.items():
            env[f"CUSTODY_{name.upper()}"] = str(value)
        home.mkdir(parents=True)
        stack = Stack(
            "redis+postgres",
            settings,
            SqlBackend("postgres", postgres_engine, MasterKey.from_text(TEST_MASTER_KEY)),
            env,
            home / "worker.log",
        )
        process = start_worker(env, stack.log, "-c", "1")
        started.append(process)
        stack.process = process  # type: ignore[attr-defined]
        wait_until_serving(stack, process)
        return stack

    yield _start
    for process in started:
        stop_worker(process)


@contextmanager
def device_locked(engine: sa.Engine, org: str, device: str) -> Iterator[None]:
    """Hold the device's row lock, as a stuck transaction elsewhere would."""
    with engine.connect() as conn, conn.begin():
        d = t.devices
        conn.execute(
            sa.select(d.c.id)
            .where(d.c.organization_id == org, d.c.identifier == device)
            .with_for_update()
        ).one()
        yield


def assigned_device(stack: Stack, org: str) -> str:
    device = new_device()
    with stack.client(org) as client:
        reply = client.assign_device(
            device, ["first@example.com"], auto_create_device=True, device_type="T", wait=True
        )
    assert reply.success
    return device


def wait_for(what: str, probe: Callable[[], Any], stack: Stack, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"{what} within {timeout_s}s; worker log:\n{stack.worker_log()[-4000:]}")


def dead_letters_of(engine: sa.Engine, message_id: str) -> list[Any]:
    with engine.connect() as conn:
        d = t.dead_letters
        return conn.execute(sa.select(d).where(d.c.message_id == message_id)).all()


def custody(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=stack.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_transient_fault_that_outlives_its_retries_is_dead_lettered_and_replays_once(start):
    # Given a worker that waits at most 0.2 s for a row lock and retries four times
    stack = start(
        lock_timeout_s=0.2, max_retries=4, retry_backoff_base_s=0.05, retry_backoff_max_s=0.2
    )
    org = stack.backend.new_org()
    device = assigned_device(stack, org)
    body = assign_body(org, device, ["second@example.com"])
    # When a command needs the device while another transaction holds its lock throughout
    with device_locked(stack.backend.engine, org, device), stack.client(org) as client:
        receipt = client.publish_raw("custody.assign_device", body, reply=True)
        (reply,) = client.wait([receipt], timeout_s=60)
    # Then it is answered 500 and kept in the dead-letter store with its command
    assert reply.result["statusCode"] == 500 and reply.result["errorCode"] == "INTERNAL"
    (dead,) = dead_letters_of(stack.backend.engine, receipt.message_id)
    assert "outlived 4 retries" in dead.reason and "LockNotAvailable" in dead.reason
    stored = json.loads(dead.body)
    assert stored.pop("signature")["value"] == "redacted"  # a stored copy signs nothing
    assert dead.attempts == 5 and stored == body
    assert stack.backend.state(org).processed.get(body["requestId"]) is None

    # When an operator lists it and replays it, twice, once the lock is gone
    listed = json.loads(custody(stack, "dead-letters", "list", "--json").stdout)
    assert dead.id in [item["id"] for item in listed]
    first = custody(stack, "dead-letters", "replay", str(dead.id))
    second = custody(stack, "dead-letters", "replay", str(dead.id), "--json")
    assert first.returncode == 0, first.stderr
    assert f"replayed #{dead.id}" in first.stdout
    assert json.loads(second.stdout)["replayed"][0]["requestId"] == body["requestId"]
    # Then the command is applied exactly once
    wait_for(
        "the replayed command applied",
        lambda: stack.backend.state(org).processed.get(body["requestId"]),
        stack,
    )
    with stack.client(org) as client:  # one worker process, one queue: this comes after both
        assert client.assign_device(device, ["third@example.com"], wait=True).success
    state = stack.backend.state(org)
    assert state.processed[body["requestId"]]["success"] is True
    assert state.owner_rows == 3
    assert [e["correlationid"] for e in state.events].count(body["requestId"]) == 1
    shown = json.loads(custody(stack, "dead-letters", "show", str(dead.id), "--json").stdout)
    assert shown["replayedAt"] is not None
    assert {k: v for k, v in json.loads(shown["body"]).items() if k != "signature"} == body


def test_a_command_that_outruns_the_time_limit_is_dead_lettered_and_the_worker_goes_on(start):
    # Given a worker with a 3 s time limit and no lock timeout
    stack = start(task_time_limit_s=3, lock_timeout_s=0)
    org = stack.backend.new_org()
    device = assigned_device(stack, org)
    body = assign_body(org, device, ["late@example.com"])
    # When a command waits on a lock longer than that
    with device_locked(stack.backend.engine, org, device), stack.client(org) as client:
        receipt = client.publish_raw("custody.assign_device", body, reply=True)
        (reply,) = client.wait([receipt], timeout_s=60)
    # Then it is answered 500 and dead-lettered, once
    assert reply.result["statusCode"] == 500
    (dead,) = dead_letters_of(stack.backend.engine, receipt.message_id)
    assert "time limit: not done within 2.7s" in dead.reason
    # And the same worker serves the next command
    with stack.client(org) as client:
        assert client.assign_device(device, ["next@example.com"], wait=True).success
    assert stack.process.poll() is None


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def lock_waiters(engine: sa.Engine) -> set[int]:
    with engine.connect() as conn:
        return set(
            conn.execute(
                sa.text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            ).scalars()
        )


def test_a_command_whose_worker_dies_every_time_is_dead_lettered_after_max_deliveries(start):
    # Given a worker that allows three deliveries without an outcome, and waits on locks
    stack = start(max_deliveries=3, lock_timeout_s=0)
    org = stack.backend.new_org()
    device = assigned_device(stack, org)
    body = assign_body(org, device, ["doomed@example.com"])
    engine = stack.backend.engine
    kills = 0
    with device_locked(engine, org, device), stack.client(org) as client:
        seen = lock_waiters(engine)
        receipt = client.publish_raw("custody.assign_device", body)
        # When the pool process running it is killed each time it gets to work on it
        deadline = time.monotonic() + 90
        while not dead_letters_of(engine, receipt.message_id) and time.monotonic() < deadline:
            waiting = lock_waiters(engine) - seen
            if waiting:
                seen |= waiting
                for child in children_of(stack.process.pid):
                    os.kill(child, signal.SIGKILL)
                kills += 1
            time.sleep(0.1)
    # Then after three deliveries it is dead-lettered instead of delivered a fourth time
    (dead,) = dead_letters_of(engine, receipt.message_id)
    assert kills == 3, stack.worker_log()[-4000:]
    assert "delivered 3 times without an outcome" in dead.reason and dead.attempts == 3
    assert "redelivered (delivery 3 of at most 3)" in stack.worker_log()
    # And the worker is alive and serving
    assert stack.process.poll() is None
    with stack.client(org) as client:
        assert client.assign_device(device, ["alive@example.com"], wait=True).success
    # And a replay applies the command once
    assert custody(stack, "dead-letters", "replay", str(dead.id)).returncode == 0
    wait_for(
        "the replayed command applied",
        lambda: stack.backend.state(org).processed.get(body["requestId"]),
        stack,
    )
    assert ("doomed@example.com" in {e for _, e in stack.backend.state(org).owners}) is True


def test_a_command_that_hangs_past_the_hard_time_limit_every_time_is_dead_lettered(start):
    # Given a worker with a 2 s time limit that allows two deliveries without an outcome
    stack = start(task_time_limit_s=2, lock_timeout_s=0, max_deliveries=2)
    org = stack.backend.new_org()
    device = assigned_device(stack, org)
    body = assign_body(org, device, ["hung@example.com"])
    engine = stack.backend.engine
    hung = 0
    with device_locked(engine, org, device), stack.client(org) as client:
        seen = lock_waiters(engine)
        receipt = client.publish_raw("custody.assign_device", body)
        # When the pool process running it hangs where no signal reaches it (stopped), so
        # the soft limit cannot interrupt it and the hard limit kills it, every time
        deadline = time.monotonic() + 90
        while not dead_letters_of(engine, receipt.message_id) and time.monotonic() < deadline:
            waiting = lock_waiters(engine) - seen
            if waiting:
                seen |= waiting
                for child in children_of(stack.process.pid):
                    os.kill(child, signal.SIGSTOP)
                hung += 1
            time.sleep(0.1)
    # Then the hard limit sends it back to the broker (not dropped), and after two
    # deliveries it is dead-lettered
    (dead,) = dead_letters_of(engine, receipt.message_id)
    log = stack.worker_log()
    assert hung == 2 and log.count("Hard time limit (2.0s) exceeded") == 2, log[-4000:]
    assert "delivered 2 times without an outcome" in dead.reason
    # And the worker is alive and serving
    with stack.client(org) as client:
        assert client.assign_device(device, ["alive@example.com"], wait=True).success
    assert stack.process.poll() is None


def test_an_undecodable_dead_letter_is_refused_by_replay_with_a_clear_reason(start):
    stack = start()
    message_id = str(uuid.uuid4())
    with stack.client("any") as client:
        producer = client._get_producer()
        producer.publish(
            b"\xff\xfe not json",
            exchange=client._queue.exchange,
            routing_key=client._queue.routing_key,
            declare=[client._queue],
            content_type="application/json",
            content_encoding="binary",
            headers={"task": "custody.assign_device", "id": message_id},
        )
    (dead,) = wait_for(
        "the message dead-lettered",
        lambda: dead_letters_of(stack.backend.engine, message_id),
        stack,
    )
    refused = custody(stack, "dead-letters", "replay", str(dead.id))
    assert refused.returncode == 1
    assert "cannot be replayed: its body is not JSON" in refused.stderr
    missing = custody(stack, "dead-letters", "show", "999999999")
    assert missing.returncode == 1 and "no dead letter with id 999999999" in missing.stderr
    assert "Traceback" not in refused.stderr + missing.stderr
