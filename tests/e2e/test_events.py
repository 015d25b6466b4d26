"""Events end to end: real worker and relay processes, a real broker, real subscribers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter

import pytest

from models import constants as c
from models.commands import UnassignDevice
from models.events import to_cloud_event
from models.ports import OutboxRecord
from models.store import SqlUnitOfWork
from tasks.unassign_device import unassign_device
from tests.e2e.conftest import REPO, Recorder, consume_until, start_relay, stop_worker
from tests.helpers import assign_body, new_device

pytestmark = pytest.mark.e2e


def test_commands_yield_exactly_the_expected_events_each_handled_once_per_subscriber(stack):
    # Given two subscribers with different patterns
    org = stack.backend.new_org()
    assigned, unassigned = Recorder(org), Recorder(org)
    on_assigned = stack.subscriber(["device.assigned"], assigned)
    on_unassigned = stack.subscriber(["*.unassigned"], unassigned)
    # When seven commands are applied, three of which change something
    with stack.client(org) as client:
        first = client.assign_device(
            "SN-1",
            ["a@example.com", "b@example.com"],
            auto_create_device=True,
            device_type="Lock",
            wait=True,
            request_id=f"r1-{org}",
        )
        client.assign_device("SN-1", ["a@example.com"], wait=True)  # already assigned
        removed = client.unassign_device("SN-1", ["b@example.com"], wait=True)
        client.unassign_device("SN-1", ["zed@example.com"], wait=True)  # not an owner
        created = client.assign_device(
            "SN-2", ["c@example.com"], auto_create_device=True, device_type="Hub", wait=True
        )
        client.assign_device("SN-404", ["a@example.com"], wait=True)  # 404
        replay = client.assign_device(
            "SN-1",
            ["a@example.com", "b@example.com"],
            auto_create_device=True,
            device_type="Lock",
            wait=True,
            request_id=f"r1-{org}",
        )
    assert replay.replayed
    stack.wait_relayed(org)
    consume_until(on_assigned, assigned, 2)
    consume_until(on_unassigned, unassigned, 1)
    # Then each subscriber got exactly its events, once each, in order
    assert [(e.subject, e.correlationid) for e in assigned.events] == [
        ("SN-1", first.request_id),
        ("SN-2", created.request_id),
    ]
    assert [(e.subject, e.correlationid) for e in unassigned.events] == [
        ("SN-1", removed.request_id)
    ]
    assert assigned.events[0].data["owners"] == [
        {"customerId": c_["customerId"], "email": c_["email"]} for c_ in first.result["customers"]
    ]
    assert unassigned.events[0].data["ownersRemoved"][0]["email"] == "b@example.com"
    assert [o["email"] for o in unassigned.events[0].data["owners"]] == ["a@example.com"]
    # And what arrived is exactly what the outbox holds
    committed = stack.backend.state(org).events
    arrived = assigned.events + unassigned.events
    assert sorted(e.to_wire()["id"] for e in arrived) == sorted(e["id"] for e in committed)
    assert {e.id: e.to_wire() for e in arrived} == {e["id"]: e for e in committed}
    for sub in (on_assigned, on_unassigned):
        assert sub.stats.duplicates == 0 and sub.stats.parked == 0
        sub.delete()
        sub.close()


def test_a_subscriber_that_was_not_running_gets_every_event_when_it_starts(stack):
    # Given a subscriber whose queue exists but which is not consuming
    org = stack.backend.new_org()
    recorder = Recorder(org)
    subscriber = stack.subscriber(["device.#"], recorder)
    # When ten commands are applied and relayed meanwhile
    devices = [new_device() for _ in range(10)]
    with stack.client(org) as client:
        receipts = [
            client.publish_raw(
                c.ASSIGN_DEVICE,
                assign_body(org, d, ["a@example.com"], autoCreateDevice=True, deviceType="T"),
                reply=True,
            )
            for d in devices
        ]
        assert all(r.success for r in client.wait(receipts, timeout_s=60))
    stack.wait_relayed(org)
    assert subscriber.pending() >= 10
    # Then, once it starts, it gets them all
    consume_until(subscriber, recorder, 10)
    assert sorted(e.subject for e in recorder.events) == sorted(devices)
    assert subscriber.stats.duplicates == 0
    subscriber.delete()
    subscriber.close()


def test_a_transaction_that_rolls_back_publishes_nothing(stack):
    # Given a device with two owners and a subscriber to every event
    org = stack.backend.new_org()
    device = new_device()
    recorder = Recorder(org)
    subscriber = stack.subscriber(["#"], recorder)
    with stack.client(org) as client:
        client.assign_device(
            device,
            ["a@example.com", "b@example.com"],
            auto_create_device=True,
            device_type="T",
            wait=True,
        )
    # When an unassignment writes its change and its outbox row, and then rolls back
    rolled_back = f"rolled-back-{uuid.uuid4().hex}"
    with SqlUnitOfWork(stack.backend.engine) as uow:
        command = UnassignDevice(
            request_id=rolled_back,
            organization_id=org,
            device_identifier=device,
            customer_emails=["a@example.com"],
        )
        unassign_device(command, uow)
        event = to_cloud_event(
            uow.events[0], organization_id=org, request_id=rolled_back, sequence=0, time=uow.now
        )
        uow.outbox.add([OutboxRecord(event.id, org, event.type, event.subject, event.to_wire())])
        # (the block ends without commit, as after a crash before COMMIT)
    # And a rejected command follows (404: no change, no event), then a committed one
    with stack.client(org) as client:
        assert (
            client.unassign_device("SN-none", ["a@example.com"], wait=True).result["statusCode"]
            == 404
        )
        client.unassign_device(device, ["b@example.com"], wait=True)
    stack.wait_relayed(org)
    consume_until(subscriber, recorder, 2)
    # Then only the committed changes were published
    assert recorder.types() == ["device.assigned", "device.unassigned"]
    assert recorder.events[1].data["ownersRemoved"][0]["email"] == "b@example.com"
    assert all(e.correlationid != rolled_back for e in recorder.events)
    assert stack.backend.state(org).owners == {(device, "a@example.com")}
    subscriber.delete()
    subscriber.close()


def test_events_of_one_device_arrive_in_commit_order(stack, tmp_path):
    # Given a subscriber, and on the production stack a second relay beside the first
    org = stack.backend.new_org()
    device = new_device()
    recorder = Recorder(org)
    subscriber = stack.subscriber(["device.*"], recorder)
    second = (
        None
        if stack.settings.embedded
        else start_relay(stack.env, tmp_path / "relay-2.log", "--batch-size", "3")
    )
    # When forty owner changes of one device race through the worker's two processes
    try:
        with stack.client(org) as client:
            client.assign_device(
                device, ["seed@example.com"], auto_create_device=True, device_type="T", wait=True
            )
            receipts = []
            for n in range(40):
                email = f"u{n // 2}@example.com"
                if n % 2 == 0:
                    receipts.append(client.publish(_assign(org, device, email), reply=True))
                else:
                    receipts.append(client.publish(_unassign(org, device, email), reply=True))
            client.wait(receipts, timeout_s=90)
        stack.wait_relayed(org)
    finally:
        if second is not None:
            stop_worker(second)
    committed = stack.backend.state(org).events
    consume_until(subscriber, recorder, len(committed))
    # Then they arrive in commit order (outbox id order), and replaying the changes in
    # that order gives each event's owner list
    position = {e["id"]: n for n, e in enumerate(committed)}
    assert [position.get(e.id) for e in recorder.events] == list(range(len(committed)))
    owners: set[str] = set()
    for event in recorder.events:
        changed = {o["email"] for o in event.data.get("ownersAdded", [])}
        gone = {o["email"] for o in event.data.get("ownersRemoved", [])}
        owners = (owners | changed) - gone
        assert owners == {o["email"] for o in event.data["owners"]}
    subscriber.delete()
    subscriber.close()


def _assign(org: str, device: str, email: str):
    from models.commands import AssignDevice

    return AssignDevice(
        request_id=f"a-{uuid.uuid4().hex}",
        organization_id=org,
        device_identifier=device,
        customer_emails=[email],
    )


def _unassign(org: str, device: str, email: str):
    return UnassignDevice(
        request_id=f"u-{uuid.uuid4().hex}",
        organization_id=org,
        device_identifier=device,
        customer_emails=[email],
    )


# -- the command line -----------------------------------------------------------------------


def custody(stack, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``custody``; acting as an organization (``-o ORG``), it signs with ORG's key."""
    env = stack.cli_env(args[args.index("-o") + 1]) if "-o" in args else stack.env
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def test_events_tail_prints_each_event_as_it_comes(stack):
    org = stack.backend.new_org()
    device = new_device()
    tails = {
        mode: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli",
                "events",
                "tail",
                "device.*",
                "-o",
                org,
                "--count",
                "2",
                "--idle-timeout",
                "60",
                *extra,
            ],
            env=stack.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode, extra in {"lines": [], "json": ["--json"]}.items()
    }
    for tail in tails.values():  # bound once it says so
        assert "watching device.*" in tail.stderr.readline()
    with stack.client(org) as client:
        client.assign_device(
            device, ["a@example.com"], auto_create_device=True, device_type="T", wait=True
        )
        client.unassign_device(device, ["a@example.com"], wait=True)
    outputs = {mode: tail.communicate(timeout=60)[0] for mode, tail in tails.items()}
    lines = outputs["lines"].splitlines()
    assert len(lines) == 2
    assert "device.assigned" in lines[0] and device in lines[0] and "+a@example.com" in lines[0]
    assert "device.unassigned" in lines[1] and "-a@example.com" in lines[1]
    events = [json.loads(line) for line in outputs["json"].splitlines()]
    assert [e["type"] for e in events] == ["device.assigned", "device.unassigned"]
    assert all(e["specversion"] == "1.0" and e["subject"] == device for e in events)


def test_custody_unassign_prints_the_result_and_refuses_bad_input(stack):
    org = stack.backend.new_org()
    device = new_device()
    assert (
        custody(
            stack,
            "assign",
            device,
            "a@example.com",
            "b@example.com",
            "--auto-create",
            "--type",
            "T",
            "-o",
            org,
        ).returncode
        == 0
    )
    done = custody(stack, "unassign", device, "b@example.com", "x@example.com", "-o", org, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["removedEmails"] == ["b@example.com"]
    assert result["notOwnerEmails"] == ["x@example.com"]
    missing = custody(stack, "unassign", "SN-nope", "a@example.com", "-o", org)
    assert missing.returncode == 1 and "DEVICE_NOT_FOUND" in missing.stdout
    empty = custody(stack, "unassign", "", "a@example.com", "-o", org)
    assert empty.returncode == 2 and "deviceIdentifier" in empty.stderr
    no_email = custody(stack, "unassign", device, "-o", org)
    assert no_email.returncode == 2 and "EMAILS" in no_email.stderr


def test_a_failing_subscriber_parks_the_event_and_replays_it_later(stack):
    org = stack.backend.new_org()
    calls: Counter[str] = Counter()

    def broken(event):
        if event.organizationid == org:
            calls[event.id] += 1
            raise RuntimeError("downstream down")

    subscriber = stack.subscriber(["device.assigned"], broken)
    with stack.client(org) as client:
        client.assign_device(
            new_device(), ["a@example.com"], auto_create_device=True, device_type="T", wait=True
        )
    stack.wait_relayed(org)
    deadline = time.monotonic() + 30
    subscriber.consume(until=lambda: subscriber.parked() >= 1 or time.monotonic() > deadline)
    assert list(calls.values()) == [stack.settings.subscriber_max_attempts]
    parked = custody(stack, "events", "parked", subscriber.name)
    assert f"1 event(s) parked in {subscriber.parked_queue_name}" in parked.stdout
    replayed = custody(stack, "events", "parked", subscriber.name, "--replay")
    assert "1 event(s) moved back" in replayed.stdout
    recorder = Recorder(org)
    subscriber.handler = recorder
    consume_until(subscriber, recorder, 1)
    assert recorder.types() == ["device.assigned"]
    subscriber.delete()
    subscriber.close()
