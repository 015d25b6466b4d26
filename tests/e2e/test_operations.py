"""What an operations team relies on, on a real worker: Prometheus metrics from the pool
processes and the relay, JSON log lines that carry requestId and event id, and a SIGTERM
that finishes or returns in-flight work without losing or doubling any of it."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.settings import Settings
from tests.backends import TEST_MASTER_KEY, SqlBackend
from tests.e2e.conftest import Stack, stack_env, start_worker, stop_worker, wait_until_serving
from tests.helpers import assign_body, new_device
from worker.runtime import Runtime

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.postgres]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_stack(postgres_url: str, redis_url: str, home: Path, **env: str) -> tuple[Stack, Runtime]:
    settings = Settings(
        home=home,
        database_url=postgres_url,
        broker_url=redis_url,
        master_key=TEST_MASTER_KEY,
        require_signatures=True,
        commands_queue=f"custody.ops.{uuid.uuid4().hex}",
    )
    runtime = Runtime(settings)
    stack = Stack(
        "redis+postgres",
        settings,
        SqlBackend("postgres", runtime.engine, runtime.master_key),
        {**stack_env(settings), "CUSTODY_COMMANDS_QUEUE": settings.commands_queue, **env},
        home / "worker.log",
    )
    home.mkdir(parents=True, exist_ok=True)
    return stack, runtime


@pytest.fixture(scope="module")
def observed(postgres_url, redis_url, tmp_path_factory) -> Iterator[tuple[Stack, int]]:
    port = free_port()
    stack, runtime = make_stack(
        postgres_url,
        redis_url,
        tmp_path_factory.mktemp("home-ops"),
        CUSTODY_METRICS_PORT=str(port),
        CUSTODY_LOG_FORMAT="json",
    )
    process = start_worker(stack.env, stack.log, "-c", "2", "--relay", "-l", "DEBUG")
    try:
        wait_until_serving(stack, process)
        yield stack, port
    finally:
        stop_worker(process)
        runtime.close()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series, 0 if it is not there yet."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_worker_serves_command_and_relay_metrics(observed):
    stack, port = observed
    before = scrape(port)
    org = stack.backend.new_org()
    task = "custody.assign_device"
    with stack.client(org) as client:
        device = new_device()
        body = assign_body(org, device, ["a@example.com"], autoCreateDevice=True, deviceType="T")
        first = client.publish_raw(task, body, reply=True)
        again = client.publish_raw(task, dict(body), reply=True)
        missing = client.assign_device("SN-missing", ["b@example.com"], wait=True)
        client.wait([first, again], timeout_s=30)
    assert missing.result["statusCode"] == 404
    stack.wait_relayed(org)

    def grew(text: str, name: str, **labels: str) -> float:
        return sample(text, name, **labels) - sample(before, name, **labels)

    deadline = time.monotonic() + 15
    while True:  # the relay thread counts after marking its batch sent
        after = scrape(port)
        if grew(after, "custody_events_published_total", type="device.assigned") >= 1:
            break
        assert time.monotonic() < deadline, after
        time.sleep(0.2)
    assert grew(after, "custody_commands_total", task=task, outcome="applied") == 1
    assert grew(after, "custody_commands_total", task=task, outcome="replayed") == 1
    # at least our 404: readiness probes published before the worker was up (401s) may
    # still be draining, and they are rejections too
    rejected = grew(after, "custody_commands_total", task=task, outcome="rejected")
    assert rejected >= 1
    assert grew(after, "custody_command_duration_seconds_count", task=task) == 2 + rejected
    assert "custody_outbox_lag_seconds" in after


def test_log_lines_are_json_with_the_request_id_and_the_event_id(observed):
    stack, _ = observed
    org = stack.backend.new_org()
    body = assign_body(
        org, new_device(), ["log@example.com"], autoCreateDevice=True, deviceType="T"
    )
    with stack.client(org) as client:
        receipt = client.publish_raw("custody.assign_device", body, reply=True)
        client.wait([receipt], timeout_s=30)
    stack.wait_relayed(org)
    (event,) = stack.backend.state(org).events
    entries = []
    for line in stack.worker_log().splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    mine = [e for e in entries if e.get("request_id") == body["requestId"]]
    assert any(
        e.get("outcome") == "applied"
        and e.get("organization_id") == org
        and e.get("task") == "custody.assign_device"
        for e in mine
    ), mine
    assert all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
    # and the relay's line for the event carries its id and the command's requestId
    relayed = [e for e in entries if e.get("event_id") == event["id"]]
    assert relayed and relayed[0]["request_id"] == body["requestId"]


def test_a_sigterm_returns_or_finishes_in_flight_work_and_nothing_is_lost(
    postgres_url, redis_url, tmp_path
):
    # Given a worker busy with a backlog of commands
    stack, runtime = make_stack(postgres_url, redis_url, tmp_path / "home")
    process = start_worker(stack.env, stack.log, "-c", "1")
    try:
        wait_until_serving(stack, process)
        org = stack.backend.new_org()
        bodies = [
            assign_body(
                org, new_device(), [f"u{i}@example.com"], autoCreateDevice=True, deviceType="T"
            )
            for i in range(60)
        ]
        with stack.client(org) as client:
            receipts = [client.publish_raw("custody.assign_device", b) for b in bodies]
            del receipts
            deadline = time.monotonic() + 30
            while not stack.backend.state(org).processed and time.monotonic() < deadline:
                time.sleep(0.05)
            # When it is told to stop while work is in flight
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0
    finally:
        stop_worker(process)
    done_first = len(stack.backend.state(org).processed)
    # Then a new worker takes over what was returned, and every command applied once
    successor = start_worker(stack.env, stack.log, "-c", "1")
    try:
        deadline = time.monotonic() + 120
        while len(stack.backend.state(org).processed) < len(bodies):
            assert time.monotonic() < deadline, stack.worker_log()[-3000:]
            time.sleep(0.2)
        state = stack.backend.state(org)
    finally:
        stop_worker(successor)
        runtime.close()
    assert 0 < done_first <= len(bodies)
    assert len(state.processed) == len(bodies)
    assert all(r["success"] for r in state.processed.values())
    assert state.owner_rows == len(bodies) and len(state.events) == len(bodies)
