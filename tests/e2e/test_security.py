"""Security on a real worker: signatures required in production, revocation at once, secrets
in no log and no row, and a worker that keeps serving under oversized and packed messages."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
import zlib

import pytest
import sqlalchemy as sa
from kombu import Connection

from models import constants as c
from models import tables as t
from models.settings import Settings
from models.signing import sign
from models.topology import commands_queue
from producers.client import Client
from tasks.keys import revoke_key
from tests.e2e.conftest import REPO, stack_env, start_worker, stop_worker
from tests.helpers import assign_body, new_device

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-m", "cli"]


def auto_assign(org: str, **extra) -> dict:
    return assign_body(
        org, new_device(), ["a@example.com"], autoCreateDevice=True, deviceType="T", **extra
    )


def publish_bytes(stack, body: bytes, *, headers: dict, **options) -> None:
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
            headers=headers,
            **options,
        )


def dead_letter(stack, message_id: str, timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with stack.backend.engine.connect() as conn:
            d = t.dead_letters
            row = conn.execute(sa.select(d).where(d.c.message_id == message_id)).first()
        if row is not None:
            return row
        time.sleep(0.1)
    pytest.fail(f"no dead letter for {message_id}:\n{stack.worker_log()[-3000:]}")


def test_unsigned_commands_are_refused_where_signatures_are_required(stack):
    org = stack.backend.new_org()
    with stack.client(org) as client:
        receipt = client.publish_raw(c.ASSIGN_DEVICE, auto_assign(org), reply=True, signed=False)
        (reply,) = client.wait([receipt], timeout_s=30)
    if stack.settings.signatures_required:  # production-shaped: Redis + PostgreSQL
        assert reply.result["statusCode"] == 401, reply.result
        assert stack.backend.state(org).devices == {}
    else:  # the embedded default accepts unsigned commands (and its CLI still signs)
        assert reply.success, reply.result


def test_a_running_worker_refuses_a_revoked_key_from_the_next_command_on(stack):
    org = stack.backend.new_org()
    with stack.client(org) as client:
        assert client.assign_device(
            "SN-1", ["a@example.com"], auto_create_device=True, device_type="T", wait=True
        ).success
        with stack.backend.uow() as uow:
            revoke_key(uow, stack.backend.key_for(org).key_id)
            uow.commit()
        refused = client.assign_device(
            "SN-2", ["a@example.com"], auto_create_device=True, device_type="T", wait=True
        )
    assert refused.result["statusCode"] == 401
    assert "was revoked" in refused.result["errorMessages"][0]


def test_secrets_and_signature_values_appear_in_no_log_and_no_stored_row(stack):
    # Given an organization with a fresh key whose secret we know
    org = stack.backend.new_org()
    key = stack.backend.new_key(org)
    device = new_device()
    created = sign(
        assign_body(org, device, ["a@example.com"], autoCreateDevice=True, deviceType="T"), key
    )
    bodies = [
        created,  # applied: a result and an event
        sign(assign_body(org, new_device(), ["a@example.com"]), key),  # 404
        sign(assign_body(org, device, "not-a-list"), key),  # 400
        {**sign(auto_assign(org), key), "deviceType": "changed"},  # 401: value does not match
        sign({**created, "customerEmails": ["z@example.com"]}, key),  # 409 conflict
    ]
    with stack.client(org) as client:
        receipts = [client.publish_raw(c.ASSIGN_DEVICE, b, reply=True) for b in bodies]
        replies = client.wait(receipts, timeout_s=30)
    assert [r.result["statusCode"] for r in replies] == [200, 404, 400, 401, 409]
    # And messages that end as dead letters, carrying signed commands
    wrong_shape, oversized = str(uuid.uuid4()), str(uuid.uuid4())
    buried = sign(auto_assign(org), key)
    headers = {"task": c.ASSIGN_DEVICE}
    publish_bytes(
        stack, json.dumps([[buried, {}], {}, {}]).encode(), headers={**headers, "id": wrong_shape}
    )
    padded = json.dumps([[buried], {}, {}]).encode() + b" " * c.MAX_MESSAGE_BYTES
    publish_bytes(stack, padded, headers={**headers, "id": oversized})
    dead = [dead_letter(stack, wrong_shape), dead_letter(stack, oversized)]
    assert json.loads(dead[0].body)[0][0]["signature"]["value"] == "redacted"
    # When every place a secret could leak is read
    values = {b["signature"]["value"] for b in [*bodies, buried]}
    with stack.backend.engine.connect() as conn:
        rows = [
            json.dumps(row._asdict(), default=str)
            for table in (t.processed_commands, t.rejections, t.outbox, t.dead_letters)
            for row in conn.execute(sa.select(table))
        ]
    places = {"worker log": stack.worker_log(), "replies": json.dumps([r.result for r in replies])}
    places |= {f"row {n}": row for n, row in enumerate(rows)}
    # Then neither the secret nor any signature value is anywhere (and the rows were written)
    assert any(org in row for row in rows) and any(wrong_shape in row for row in rows)
    for where, text in places.items():
        assert key.secret not in text, where
        assert not [v for v in values if v in text], where


def test_the_worker_keeps_serving_promptly_under_a_flood_of_oversized_messages(stack):
    # Given a flood of messages over the size limit ahead of a good command
    flood = [str(uuid.uuid4()) for _ in range(40)]
    big = b"[[{}], {}, {}]" + b" " * (c.MAX_MESSAGE_BYTES + 1)
    for message_id in flood:
        publish_bytes(stack, big, headers={"task": c.ASSIGN_DEVICE, "id": message_id})
    org = stack.backend.new_org()
    # When a good command follows the flood
    started = time.monotonic()
    with stack.client(org) as client:
        reply = client.assign_device(
            "SN-after-flood",
            ["a@example.com"],
            auto_create_device=True,
            device_type="T",
            wait=True,
            timeout_s=60,
        )
    elapsed_s = time.monotonic() - started
    # Then it is served promptly, and every oversized message is a dead letter kept short
    assert reply.success, f"{reply.result}\n{stack.worker_log()[-5000:]}"
    assert elapsed_s < 30, f"served after {elapsed_s:.1f}s"
    for message_id in flood:
        row = dead_letter(stack, message_id)
        assert "message too large" in row.reason and "limit on size" in row.reason
        assert row.headers["truncated"] is True and len(row.body) <= 65_536
    with stack.client(org) as client:
        again = client.assign_device("SN-after-flood", ["b@example.com"], wait=True, timeout_s=30)
    assert again.success


def test_a_compressed_message_is_dead_lettered_without_being_unpacked(stack):
    # Given 64 MiB of JSON packed into a 64 KiB zlib message (a decompression bomb)
    message_id = str(uuid.uuid4())
    bomb = zlib.compress(b'[[{"x": "' + b"0" * (64 * 1024 * 1024) + b'"}], {}, {}]', 9)
    publish_bytes(
        stack,
        bomb,
        headers={"task": c.ASSIGN_DEVICE, "id": message_id, "compression": "application/x-gzip"},
    )
    # Then it becomes a dead letter, and the worker goes on
    row = dead_letter(stack, message_id)
    assert "compressed messages are not accepted" in row.reason
    org = stack.backend.new_org()
    with stack.client(org) as client:
        assert client.assign_device(
            "SN-z", ["a@example.com"], auto_create_device=True, device_type="T", wait=True
        ).success


def test_the_cli_signs_with_the_local_key_with_no_set_up(tmp_path):
    # Given a fresh embedded default whose worker requires signatures
    home = tmp_path / "home"
    settings = Settings(home=home, database_url=None, broker_url=None, require_signatures=True)
    env = stack_env(settings)
    log = tmp_path / "worker.log"
    process = start_worker(env, log, "-c", "1", "--pool", "solo")
    try:
        deadline = time.monotonic() + 60
        while not (home / c.LOCAL_KEY_FILE).exists() and time.monotonic() < deadline:
            time.sleep(0.1)  # the worker prepares the embedded default as it starts
        # When the CLI assigns a device, with nothing configured but CUSTODY_HOME
        assigned = subprocess.run(
            [*CLI, "assign", "SN-cli", "a@example.com", "--auto-create", "--type", "T", "--json"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=90,
        )
        # Then its command was signed and applied
        assert assigned.returncode == 0, assigned.stderr + log.read_text()
        assert json.loads(assigned.stdout)["success"] is True
        # And the same worker refuses an unsigned command
        with Client.from_settings(settings) as client:
            body = assign_body(c.LOCAL_ORGANIZATION, "SN-x", ["a@example.com"])
            receipt = client.publish_raw(c.ASSIGN_DEVICE, body, reply=True, signed=False)
            (unsigned,) = client.wait([receipt], timeout_s=60)
        assert unsigned.result["statusCode"] == 401
    finally:
        stop_worker(process)
