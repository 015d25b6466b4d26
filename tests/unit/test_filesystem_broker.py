"""The embedded broker never hands out a half-written message, however large."""

from __future__ import annotations

import threading

from kombu import Connection, Queue

from models.filesystem_broker import TRANSPORT
from models.settings import Settings


def test_large_messages_read_while_being_written_arrive_whole(tmp_path):
    # Given a producer writing large messages while a consumer drains the same queue
    settings = Settings(home=tmp_path, broker_url=None, polling_interval_s=0.001)
    settings.prepare_home()
    options = settings.broker_transport_options()
    queue = Queue("big", routing_key="big")
    body = {"payload": "x" * 400_000}
    count = 40

    def produce() -> None:
        with Connection(
            settings.resolved_broker_url, transport=TRANSPORT, transport_options=options
        ) as conn:
            producer = conn.Producer(serializer="json")
            for n in range(count):
                producer.publish({**body, "n": n}, routing_key="big", declare=[queue])

    received: list[dict] = []
    writer = threading.Thread(target=produce)
    with Connection(
        settings.resolved_broker_url, transport=TRANSPORT, transport_options=options
    ) as conn:
        consumer = conn.SimpleQueue(queue)
        writer.start()
        # When it consumes as fast as it can
        while len(received) < count:
            message = consumer.get(timeout=30)
            received.append(message.payload)
            message.ack()
        consumer.close()
    writer.join()
    # Then every message arrived whole, none lost
    assert sorted(m["n"] for m in received) == list(range(count))
    assert all(m["payload"] == body["payload"] for m in received)


def test_the_settings_name_the_atomic_transport_for_the_embedded_default_only(tmp_path):
    assert Settings(home=tmp_path, broker_url=None).broker_transport == TRANSPORT
    assert Settings(home=tmp_path, broker_url="redis://localhost/1").broker_transport is None
