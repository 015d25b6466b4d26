"""The producer client validates locally: a bad command never reaches the queue."""

from __future__ import annotations

import uuid

import pytest
from kombu import Connection

from models.errors import Rejected
from producers.client import Client


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
