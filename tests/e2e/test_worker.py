"""A command travels producer → queue → real worker process → database, and back."""

from __future__ import annotations

import json
import random
import time
import uuid

import pytest
import sqlalchemy as sa
from kombu import Connection

from models import tables as t
from models.topology import commands_queue
from producers.client import Reply
from tests.e2e.conftest import start_worker, stop_worker, wait_until_serving

ASSIGN = "custody.assign_device"

pytestmark = pytest.mark.e2e


def test_the_seed_examples_are_applied_with_their_results(stack):
    org = stack.backend.new_org()
    with stack.client(org) as client:
        single = client.assign_device(
            "SN-1001",
            ["alice@example.com"],
            auto_create_device=True,
            device_type="Thermostat",
            wait=True,
        )
        several = client.assign_device(
            "SN-1001", ["alice@example.com", " Bob@Example.com ", "not-an-email"], wait=True
        )
        created = client.assign_device(
            "GW-1", ["carol@example.com"], auto_create_device=True, device_type="Gateway", wait=True
        )
        missing = client.assign_device("SN-0000", ["dave@example.com"], wait=True)
    assert isinstance(single, Reply) and single.result["deviceCreated"] is True
    assert [c["alreadyAssigned"] for c in several.result["customers"]] == [True, False]
    assert several.result["skippedEmails"] == ["not-an-email"]
    assert created.result["customers"][0]["name"] == "carol"
    assert missing.result["statusCode"] == 404
    state = stack.backend.state(org)
    assert state.owners == {
        ("SN-1001", "alice@example.com"),
        ("SN-1001", "bob@example.com"),
        ("GW-1", "carol@example.com"),
    }
    assert [e["type"] for e in state.events] == ["device.assigned"] * 3


def test_the_same_message_delivered_twice_has_one_effect(stack):
    # Given one command published twice with the same message id (a redelivery)
    org = stack.backend.new_org()
    body = {
        "requestId": f"dup-{uuid.uuid4().hex}",
        "organizationId": org,
        "deviceIdentifier": "SN-D",
        "customerEmails": ["a@example.com", "b@example.com"],
        "autoCreateDevice": True,
        "deviceType": "Lock",
    }
    message_id = str(uuid.uuid4())
    with stack.client(org) as client:
        first = client.publish_raw("custody.assign_device", body, reply=True, message_id=message_id)
        second = client.publish_raw(
            "custody.assign_device", body, reply=True, message_id=message_id
        )
        third = client.publish_raw("custody.assign_device", dict(body), reply=True)
        replies = client.wait([first, second, third], timeout_s=30)
    # Then all three answers are the one result, and it took effect once
    assert all(r.result == replies[0].result for r in replies)
    assert sorted(r.replayed for r in replies) == [False, True, True]
    state = stack.backend.state(org)
    assert state.owner_rows == 2 and len(state.events) == 1 and len(state.processed) == 1


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("wrong-types", "customerEmails: Input should be a valid list"),
        ("missing-field", "deviceIdentifier: Field required"),
        ("array", "command: expected a JSON object, got list"),
    ],
)
def test_malformed_commands_end_as_recorded_400s_and_the_worker_keeps_serving(
    stack, command, expected
):
    org = stack.backend.new_org()
    request_id = f"bad-{uuid.uuid4().hex}"
    bodies = {
        "wrong-types": {
            "requestId": request_id,
            "organizationId": org,
            "deviceIdentifier": "SN",
            "customerEmails": "a@example.com",
        },
        "missing-field": {
            "requestId": request_id,
            "organizationId": org,
            "customerEmails": ["a@example.com"],
        },
        "array": [request_id, org],
    }
    with stack.client(org) as client:
        bad = client.publish_raw("custody.assign_device", bodies[command], reply=True)
        (reply,) = client.wait([bad], timeout_s=30)
        assert reply.result["statusCode"] == 400
        assert expected in reply.result["errorMessages"]
        # and a good command right after is served
        good = client.assign_device(
            "SN-OK",
            ["ok@example.com"],
            auto_create_device=True,
            device_type="T",
            wait=True,
            timeout_s=30,
        )
        assert good.success
    if command != "array":
        assert stack.backend.state(org).processed[request_id]["statusCode"] == 400


def dead_letters(stack, message_id: str):
    with stack.backend.engine.connect() as conn:
        d = t.dead_letters
        return conn.execute(sa.select(d).where(d.c.message_id == message_id)).all()


@pytest.mark.parametrize(
    ("body", "headers_task", "reason"),
    [
        (b"{this is not json", "custody.assign_device", "not JSON"),
        (json.dumps([[{}], {}, {}]).encode(), "custody.no_such_command", "unknown task"),
        (json.dumps([[{}, {}], {}, {}]).encode(), "custody.assign_device", "wrong shape"),
    ],
)
def test_unparsable_messages_are_dead_lettered_with_their_body_and_the_worker_goes_on(
    stack, body, headers_task, reason
):
    message_id = str(uuid.uuid4())
    queue = commands_queue(stack.settings.commands_queue)
    with Connection(
        stack.settings.resolved_broker_url,
        transport=stack.settings.broker_transport,
        transport_options=stack.settings.broker_transport_options(),
    ) as conn:
        conn.Producer().publish(
            body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            declare=[queue],
            content_type="application/json",
            content_encoding="utf-8",
            headers={"task": headers_task, "id": message_id},
        )
    deadline = time.monotonic() + 30
    while not (rows := dead_letters(stack, message_id)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert rows, f"no dead letter for {message_id}:\n{stack.worker_log()[-3000:]}"
    (row,) = rows
    assert reason in row.reason
    assert row.body == body.decode()
    assert row.task == headers_task
    org = stack.backend.new_org()
    with stack.client(org) as client:
        assert client.assign_device(
            "SN-after",
            ["x@example.com"],
            auto_create_device=True,
            device_type="T",
            wait=True,
            timeout_s=30,
        ).success


def test_two_workers_coalescing_duplicates_and_overlaps_end_as_each_command_applied_once(
    stack, tmp_path
):
    # Given a second worker on the same queue and database
    second = start_worker(stack.env, tmp_path / "second-worker.log", "-c", "2")
    try:
        wait_until_serving(stack, second)
        # And 150 commands on 20 devices and 30 customers, each published twice, shuffled
        org = stack.backend.new_org()
        rng = random.Random(7)
        bodies = [
            {
                "requestId": f"overlap-{n}",
                "organizationId": org,
                "deviceIdentifier": f"SN-{rng.randrange(20)}",
                "customerEmails": [f"c{rng.randrange(30)}@example.com" for _ in range(2)],
                "autoCreateDevice": True,
                "deviceType": "Lock",
            }
            for n in range(150)
        ]
        messages = [*bodies, *(dict(b) for b in bodies)]
        rng.shuffle(messages)
        # When both workers take them at once
        with stack.client(org) as client:
            receipts = [
                client.publish_raw("custody.assign_device", b, reply=True) for b in messages
            ]
            replies = client.wait(receipts, timeout_s=120)
    finally:
        stop_worker(second)
    # Then every command was applied once: one answer of each was fresh, the other a replay
    fresh = [r for r in replies if not r.replayed]
    assert all(r.success for r in replies)
    assert sorted(r.request_id for r in fresh) == sorted(b["requestId"] for b in bodies)
    # And the state is that of each command applied once, one by one
    state = stack.backend.state(org)
    wanted = {(b["deviceIdentifier"], e) for b in bodies for e in b["customerEmails"]}
    assert state.owners == wanted and state.owner_rows == len(wanted)
    assert set(state.devices) == {b["deviceIdentifier"] for b in bodies}
    assert set(state.processed) == {b["requestId"] for b in bodies}
    # And each owner row was announced by exactly one event
    announced = [
        (e["data"]["deviceIdentifier"], o["email"])
        for e in state.events
        for o in e["data"]["ownersAdded"]
    ]
    assert sorted(announced) == sorted(wanted)
    # And the commands were applied in groups (a group shares its transaction's clock)
    p = t.processed_commands
    with stack.backend.engine.connect() as conn:
        clocks = conn.execute(
            sa.select(sa.func.count(sa.distinct(p.c.created_at))).where(p.c.organization_id == org)
        ).scalar_one()
    assert clocks < len(bodies)
