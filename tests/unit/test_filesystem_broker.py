"""The embedded default's broker: a message is read whole or kept aside, never half-read."""

from __future__ import annotations

import fcntl
import json
import threading
import time
import uuid

import pytest
from kombu import Connection, Queue
from kombu.utils.json import dumps

from models.filesystem_broker import Transport, message_name
from models.settings import Settings


@pytest.fixture
def settings(tmp_path) -> Settings:
    settings = Settings(home=tmp_path, broker_url=None, database_url=None)
    settings.prepare_home()
    return settings


@pytest.fixture
def connection(settings):
    with Connection(
        settings.resolved_broker_url,
        transport=settings.broker_transport,
        transport_options=settings.broker_transport_options(),
    ) as conn:
        yield conn


def queue_folder(settings: Settings):
    return settings.broker_folder / "queue"


def kombu_payload(body: dict) -> bytes:
    """A message file as kombu's filesystem transport writes it."""
    return dumps(
        {
            "body": json.dumps(body),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {},
            "properties": {"delivery_tag": str(uuid.uuid4()), "delivery_info": {}},
        }
    ).encode()


def test_the_embedded_default_uses_this_transport(settings, connection):
    assert connection.transport_cls == settings.broker_transport
    assert isinstance(connection.transport, Transport)
    assert Settings(broker_url="redis://r").broker_transport is None


def test_a_published_message_appears_whole_and_is_read_back(settings, connection):
    queue = Queue(f"q-{uuid.uuid4().hex}")
    connection.Producer().publish(
        {"n": 1}, routing_key=queue.name, declare=[queue], serializer="json"
    )
    files = list(queue_folder(settings).iterdir())
    assert [f.name.endswith(f".{queue.name}.msg") for f in files] == [True]  # no temporary left
    message = queue(connection.default_channel).get(no_ack=True)
    assert message.decode() == {"n": 1}


def test_a_message_still_being_written_by_another_process_is_read_once_it_is_whole(
    settings, connection
):
    # Given a writer that created the file, holds its lock and has written only half
    queue = Queue(f"q-{uuid.uuid4().hex}")
    queue(connection.default_channel).declare()
    payload = kombu_payload({"n": 2})
    path = queue_folder(settings) / f"1_{uuid.uuid4()}.{queue.name}.msg"
    writer = path.open("wb", buffering=0)
    fcntl.flock(writer, fcntl.LOCK_EX)
    writer.write(payload[:10])

    def finish() -> None:
        time.sleep(0.3)
        writer.write(payload[10:])
        fcntl.flock(writer, fcntl.LOCK_UN)
        writer.close()

    finishing = threading.Thread(target=finish)
    finishing.start()
    # When a reader takes it meanwhile
    message = queue(connection.default_channel).get(no_ack=True)
    finishing.join()
    # Then it reads the whole message
    assert message.decode() == {"n": 2}


def test_a_file_that_is_not_a_message_is_kept_aside_and_the_next_message_is_read(
    settings, connection
):
    queue = Queue(f"q-{uuid.uuid4().hex}")
    queue(connection.default_channel).declare()
    # A clock reading of 0 sorts before any a writer puts first in its names
    broken = queue_folder(settings) / message_name(0, queue.name)
    broken.write_bytes(b"{half a mess")
    connection.Producer().publish({"n": 3}, routing_key=queue.name, serializer="json")
    message = queue(connection.default_channel).get(no_ack=True)
    assert message.decode() == {"n": 3}
    kept = settings.broker_folder / "broken" / broken.name
    assert kept.read_bytes() == b"{half a mess"


def test_message_names_sort_in_clock_order_across_a_digit_count_boundary():
    # Given messages put just before and just after the clock gains a digit
    names = [message_name(ms, "q") for ms in (9_999_998, 9_999_999, 10_000_000, 10_000_001)]
    # Then readers, who take names in sorted order, take them in the order they were put
    assert sorted(names) == names


def test_a_reader_takes_messages_in_order_also_those_put_or_taken_by_others_meanwhile(
    settings, connection
):
    queue = Queue(f"q-{uuid.uuid4().hex}")
    producer = connection.Producer()
    for n in (1, 2, 3):
        producer.publish({"n": n}, routing_key=queue.name, declare=[queue], serializer="json")
    reader = queue(connection.default_channel)
    # Given a reader that has taken the first message (and seen the next two)
    assert reader.get(no_ack=True).decode() == {"n": 1}
    # When another reader takes the second, and a fourth message is put
    with Connection(
        settings.resolved_broker_url,
        transport=settings.broker_transport,
        transport_options=settings.broker_transport_options(),
    ) as other:
        assert queue(other.default_channel).get(no_ack=True).decode() == {"n": 2}
    producer.publish({"n": 4}, routing_key=queue.name, serializer="json")
    # Then the first reader goes on with the third and the fourth, then finds none
    assert reader.get(no_ack=True).decode() == {"n": 3}
    assert reader.get(no_ack=True).decode() == {"n": 4}
    assert reader.get(no_ack=True) is None
