"""Access grants travel producer → queue → real worker processes → database, and back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest
import sqlalchemy as sa
from kombu import Connection

from models import tables as t
from models.access_commands import GrantAccess
from models.topology import commands_queue
from producers.client import Reply, build
from tests.e2e.conftest import REPO, start_worker, stop_worker

pytestmark = pytest.mark.e2e

OWNER = "alice@example.com"
SEED_GRANTS = [
    {"user_email": "john@example.com", "access_level": 1},
    {
        "user_email": "jane@example.com",
        "access_level": 0,
        "start_date": "2020-12-14T08:09:57.781Z",
        "end_date": "2020-12-31T08:10:57.781Z",
    },
    {
        "user_email": "joe@example.com",
        "access_level": 0,
        "week_days": 7,
        "day_start_time": "2020-12-01T08:00:00.000Z",
        "day_end_time": "2020-12-31T20:00:00.000Z",
        "start_date": "2020-12-01T08:09:57.781Z",
        "end_date": "2020-12-31T23:10:57.781Z",
    },
]


def owned_device(stack, client, device: str = "SN-1001") -> None:
    reply = client.assign_device(
        device, [OWNER], auto_create_device=True, device_type="Lock", wait=True, timeout_s=30
    )
    assert reply.success, reply.result


def test_the_seed_grant_examples_are_applied_with_their_results(stack):
    org = stack.backend.new_org()
    with stack.client(org) as client:
        owned_device(stack, client)
        replies = [
            client.grant_access("SN-1001", **g, granted_by=OWNER, wait=True, timeout_s=30)
            for g in SEED_GRANTS
        ]
        again = client.grant_access("SN-1001", **SEED_GRANTS[0], granted_by=OWNER, wait=True)
        access_id = replies[0].result["result"]["id"]
        update = client.update_access(
            "SN-1001", access_id, updated_by=OWNER, access_level=0, wait=True, timeout_s=30
        )
        revoked = client.revoke_access(
            "SN-1001", access_id, revoked_by=OWNER, wait=True, timeout_s=30
        )
    assert all(isinstance(r, Reply) for r in replies)
    assert [r.result["statusCode"] for r in replies] == [201, 201, 201]
    assert [r.result["result"]["sharedUserDisplayName"] for r in replies] == ["john", "jane", "joe"]
    assert all(r.result["errorMessages"] == [] for r in replies)
    assert again.result["statusCode"] == 200 and again.result["result"]["id"] == access_id
    assert update.result["result"]["changedFields"] == ["accessLevel"]
    assert revoked.result["result"]["alreadyEnded"] is False
    state = stack.backend.state(org)
    assert [e["type"] for e in state.events] == [
        "device.assigned",
        "access.granted",
        "access.granted",
        "access.granted",
        "access.updated",
        "access.revoked",
    ]
    joe = next(a for a in state.accesses.values() if a["user"] == "joe@example.com")
    assert joe["weekDays"] == 7 and str(joe["dayStartTime"]) == "08:00:00"


def test_concurrent_grants_on_several_worker_processes_leave_one_access(stack):
    # Given a second worker beside the stack's (each with two pool processes)
    extra_log = stack.log.with_name(f"extra-{uuid.uuid4().hex[:6]}.log")
    extra = start_worker(stack.env, extra_log, "-c", "2")
    try:
        org = stack.backend.new_org()
        with stack.client(org) as client:
            owned_device(stack, client)
            wait_until_ready(extra_log)
            # When twelve grants of one user race: half guest, half admin
            receipts = [client.publish(_grant(org, level=i % 2), reply=True) for i in range(12)]
            replies = client.wait(receipts, timeout_s=60)
    finally:
        stop_worker(extra)
    # Then exactly one access exists and every answer agrees with it
    results = [r.result for r in replies]
    state = stack.backend.state(org)
    (access_id,) = state.open_accesses("SN-1001", "bob@example.com")
    assert len(state.accesses) == 1
    assert [r["statusCode"] for r in results if r["success"]].count(201) == 1
    assert all(r["result"]["id"] == access_id for r in results if r["success"])
    assert all(r["errorCode"] == "ACCESS_EXISTS" for r in results if not r["success"]), results
    assert sum(r["success"] for r in results) == 6
    assert [e["type"] for e in state.events].count("access.granted") == 1


def wait_until_ready(log) -> None:
    """Celery logs "ready." once the worker consumes."""
    deadline = time.monotonic() + 60
    while "ready." not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.1)


def _grant(org: str, *, level: int):

    return build(
        GrantAccess,
        request_id=f"race-{uuid.uuid4().hex}",
        organization_id=org,
        device_identifier="SN-1001",
        granted_by=OWNER,
        user_email="bob@example.com",
        access_level=level,
    )


SEED_BODY_WITHOUT_A_COMMA = """{
    "accessLevel": 0,
    "userEmail": "jane@example.com"
    "weekDays": null,
    "dayStartTime": null,
    "dayEndTime": null,
    "startDate": "2020-12-14T08:09:57.781Z",
    "endDate": "2020-12-31T08:10:57.781Z",
    "remoteAccessDisabled" : false
}"""


def test_the_seed_body_that_is_not_json_is_dead_lettered_and_the_worker_goes_on(stack):
    # Given the API page's own example body, which misses a comma after userEmail
    message_id = str(uuid.uuid4())
    body = f"[[{SEED_BODY_WITHOUT_A_COMMA}], {{}}, {{}}]".encode()
    queue = commands_queue(stack.settings.commands_queue)
    with Connection(
        stack.settings.resolved_broker_url,
        transport_options=stack.settings.broker_transport_options(),
    ) as conn:
        conn.Producer().publish(
            body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            declare=[queue],
            content_type="application/json",
            content_encoding="utf-8",
            headers={"task": "custody.grant_access", "id": message_id},
        )
    # Then it lands in the dead letters with its body and the reason
    deadline, rows = time.monotonic() + 30, []
    while not rows and time.monotonic() < deadline:
        with stack.backend.engine.connect() as db:
            d = t.dead_letters
            rows = db.execute(sa.select(d).where(d.c.message_id == message_id)).all()
        time.sleep(0.2)
    assert rows, stack.worker_log()[-3000:]
    assert "not JSON" in rows[0].reason and rows[0].body == body.decode()
    # and the worker still serves grants
    org = stack.backend.new_org()
    with stack.client(org) as client:
        owned_device(stack, client)
        assert client.grant_access("SN-1001", "x@example.com", granted_by=OWNER, wait=True).success


def custody(stack, org: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=stack.cli_env(org),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_line_grants_checks_and_revokes(stack):
    org = stack.backend.new_org()
    with stack.client(org) as client:
        owned_device(stack, client)
    granted = custody(
        stack, org, "grant", "SN-1001", "kim@example.com", "--by", OWNER, "--weekdays", "sun",
        "--from", "22:00", "--to", "06:00", "--tz", "Europe/Berlin", "-o", org, "--json",
    )  # fmt: skip
    assert granted.returncode == 0, granted.stderr
    access_id = json.loads(granted.stdout)["result"]["id"]
    monday_3am = custody(
        stack, org, "access", "check", "SN-1001", "kim@example.com", "--at", "2024-01-08T02:00:00Z",
        "-o", org,
    )  # fmt: skip
    assert monday_3am.returncode == 0
    assert monday_3am.stdout.startswith("allowed: ") and "opened on Sunday" in monday_3am.stdout
    revoked = custody(stack, org, "revoke", "SN-1001", str(access_id), "--by", OWNER, "-o", org)
    assert revoked.returncode == 0 and revoked.stdout.startswith(f"revoked access {access_id}")
    after = custody(stack, org, "access", "check", "SN-1001", "kim@example.com", "-o", org)
    assert after.returncode == 1 and "was revoked" in after.stdout
    refused = custody(
        stack, org, "grant", "SN-1001", "kim@example.com", "--by", OWNER, "--weekdays", "0"
    )
    assert refused.returncode == 2
    assert "weekDays: must be a weekday mask" in refused.stderr
