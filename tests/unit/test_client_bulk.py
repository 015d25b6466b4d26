"""Client.assign_devices validates the envelope and every item locally: a bad batch never
reaches the queue."""

from __future__ import annotations

import uuid

import pytest

from models.errors import Rejected
from producers.client import Client


@pytest.fixture
def client():
    with Client("memory://", organization="acme", queue=f"custody.t-{uuid.uuid4().hex}") as c:
        yield c


def queued(client: Client) -> int:
    channel = client._connection.default_channel
    return channel.queue_declare(client._queue.name, passive=False).message_count


def item(n: int) -> dict:
    return {"deviceIdentifier": f"SN-{n}", "customerEmails": [f"u{n}@example.com"]}


def test_a_valid_batch_is_one_message_carrying_every_item(client):
    receipt = client.assign_devices([item(1), item(2)], request_id="batch-1")
    assert receipt.task == "custody.assign_devices" and receipt.request_id == "batch-1"
    message = client._connection.default_channel.basic_get(client._queue.name)
    (command,), kwargs, _ = message.decode()
    assert kwargs == {}
    assert command == {
        "requestId": "batch-1",
        "organizationId": "acme",
        "items": [item(1), item(2)],
    }


def test_an_invalid_item_raises_naming_it_and_publishes_nothing(client):
    with pytest.raises(Rejected) as caught:
        client.assign_devices([item(1), {"deviceIdentifier": "SN-2", "customerEmails": "x"}, 7])
    assert caught.value.status_code == 400
    assert caught.value.messages == [
        "items.1: customerEmails: Input should be a valid list",
        "items.2: expected a JSON object, got int",
    ]
    assert queued(client) == 0


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, "items: List should have at least 1 item after validation, not 0"),
        (1001, "items: List should have at most 1000 items after validation, not 1001"),
    ],
)
def test_a_batch_outside_the_item_limits_raises(client, count, expected):
    with pytest.raises(Rejected) as caught:
        client.assign_devices([item(n) for n in range(count)])
    assert expected in caught.value.messages
    assert queued(client) == 0


def test_a_batch_over_the_message_size_limit_raises(client):
    emails = [f"{'x' * 60}{n}@example.com" for n in range(100)]
    items = [{"deviceIdentifier": f"SN-{n}", "customerEmails": emails} for n in range(200)]
    with pytest.raises(Rejected) as caught:
        client.assign_devices(items)
    assert "command too large" in caught.value.messages[0]
    assert queued(client) == 0
