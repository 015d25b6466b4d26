"""The producer client validates locally: a bad command never reaches the queue."""

from __future__ import annotations

import uuid

import pytest
from kombu import Connection

from models.canonical import canonical_json
from models.errors import Misconfigured, Rejected
from models.settings import Settings
from models.signing import SigningKey, matches, sign, write_key_file
from producers.client import Client, signing_key_from


@pytest.fixture
def client():
    # kombu's in-memory transport is shared by the process: one queue per test.
    with Client("memory://", organization="acme", queue=f"custody.t-{uuid.uuid4().hex}") as c:
        yield c


def queued(client: Client) -> int:
    conn: Connection = client._connection
    return conn.default_channel.queue_declare(client._queue.name, passive=False).message_count


def test_a_valid_command_is_published_with_a_generated_request_id(client):
    receipt = client.assign_device("SN-1", ["a@example.com"])
    assert receipt.request_id and receipt.task == "custody.assign_device"
    assert queued(client) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"device_identifier": "", "customer_emails": ["a@example.com"]},
        {"device_identifier": "SN-1", "customer_emails": []},
        {
            "device_identifier": "SN-1",
            "customer_emails": ["a@example.com"],
            "auto_create_device": True,
        },
        {
            "device_identifier": "SN-1",
            "customer_emails": ["a@example.com"],
            "request_id": "r" * 300,
        },
    ],
)
def test_an_invalid_command_raises_and_publishes_nothing(client, kwargs):
    with pytest.raises(Rejected) as caught:
        client.assign_device(**kwargs)
    assert caught.value.status_code == 400
    assert queued(client) == 0


def test_the_message_is_a_protocol_2_task_call_with_one_argument(client):
    receipt = client.assign_device("SN-1", ["a@example.com"], request_id="r-42")
    message = client._connection.default_channel.basic_get(client._queue.name)
    assert message.headers["task"] == "custody.assign_device"
    assert message.headers["id"] == receipt.message_id
    args, kwargs, _embed = message.decode()
    assert kwargs == {}
    assert args == [
        {
            "requestId": "r-42",
            "organizationId": "acme",
            "deviceIdentifier": "SN-1",
            "customerEmails": ["a@example.com"],
        }
    ]


KEY = SigningKey("ck_test", "cks_test-secret", "acme")


def published(client: Client) -> dict:
    message = client._connection.default_channel.basic_get(client._queue.name)
    (command,), _kwargs, _embed = message.decode()
    return command


@pytest.fixture
def signing_client():
    with Client(
        "memory://", organization="acme", signing_key=KEY, queue=f"custody.t-{uuid.uuid4().hex}"
    ) as c:
        yield c


def test_a_client_with_a_key_signs_every_command(signing_client):
    signing_client.assign_device("SN-1", ["a@example.com"], request_id="r-1")
    command = published(signing_client)
    assert command["signature"]["keyId"] == "ck_test"
    assert matches(canonical_json(command), KEY.secret, command["signature"]["value"])


def test_raw_commands_are_signed_too_unless_asked_not_to(signing_client):
    body = {"requestId": "r-2", "organizationId": "acme"}
    signing_client.publish_raw("custody.assign_device", body)
    assert published(signing_client) == sign(body, KEY)
    signing_client.publish_raw("custody.assign_device", body, signed=False)
    assert "signature" not in published(signing_client)
    signing_client.publish_raw("custody.assign_device", ["not", "an", "object"])
    assert published(signing_client) == ["not", "an", "object"]


def test_a_client_without_a_key_sends_unsigned_commands(client):
    client.assign_device("SN-1", ["a@example.com"])
    assert "signature" not in published(client)


def test_the_key_comes_from_the_settings_or_for_the_local_organization_from_home(tmp_path):
    write_key_file(tmp_path / "local-signing-key.json", SigningKey("ck_local", "s", "local"))
    embedded = Settings(home=tmp_path, broker_url=None, key_id=None, key_secret=None)
    assert signing_key_from(embedded, "local") == SigningKey("ck_local", "s", "local")
    assert signing_key_from(embedded, "acme") is None  # the local key signs for local only
    configured = Settings(home=tmp_path, key_id="ck_env", key_secret="cks_env")
    assert signing_key_from(configured, "acme") == SigningKey("ck_env", "cks_env")
    with pytest.raises(Misconfigured, match="together"):
        signing_key_from(Settings(home=tmp_path, key_id="ck_env", key_secret=None), "acme")
