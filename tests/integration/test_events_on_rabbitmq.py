"""The relay's publisher and subscribers on RabbitMQ: publisher confirms, topic routing by
pattern, deduplication. Own exchange and queues per test, deleted afterwards."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from kombu import Connection

from models.domain import DeviceAssigned, DeviceUnassigned, OwnerRef
from models.events import to_cloud_event
from models.ports import PendingEvent
from models.topology import events_exchange
from subscribers import SqliteSeenEvents, Subscriber
from worker.relay import KombuPublisher

ALICE = OwnerRef(1, "alice@example.com")

pytestmark = pytest.mark.amqp


@pytest.fixture
def amqp_url(rabbitmq_url: str) -> str:
    """This run's own virtual host (tests/conftest.py)."""
    return rabbitmq_url


def event(fact) -> PendingEvent:
    wire = to_cloud_event(
        fact,
        organization_id="acme",
        request_id=uuid.uuid4().hex,
        sequence=0,
        time=datetime.now(UTC),
    )
    return PendingEvent(0, wire.id, wire.type, wire.subject, wire.to_wire())


def test_events_are_confirmed_routed_by_pattern_and_deduplicated(amqp_url, tmp_path):
    # Given two subscribers with different patterns on an exchange of their own
    exchange = f"custody.events.t{uuid.uuid4().hex[:8]}"
    assigned, unassigned = [], []
    subs = [
        Subscriber(
            f"t-{uuid.uuid4().hex[:8]}",
            patterns,
            handler,
            broker_url=amqp_url,
            exchange=exchange,
            seen=SqliteSeenEvents(tmp_path / f"{n}.db", ttl_s=60),
        )
        for n, (patterns, handler) in enumerate(
            [(["device.assigned"], assigned.append), (["*.unassigned"], unassigned.append)]
        )
    ]
    for sub in subs:
        sub.declare()
    publisher = KombuPublisher(amqp_url, exchange=exchange)
    try:
        # When the relay's publisher sends three events, one of them twice
        first = event(DeviceAssigned("SN-1", 1, True, [ALICE], [ALICE]))
        second = event(DeviceUnassigned("SN-1", 1, [ALICE], []))
        publisher.publish([first, second, first])
        # Then (publisher confirms: all are in their queues once publish returns)
        assert [sub.pending() for sub in subs] == [2, 1]
        for sub in subs:
            sub.consume(until=lambda sub=sub: sub.pending() == 0)
            sub.consume(idle_timeout_s=0.3)
        assert [e.id for e in assigned] == [first.event_id]
        assert [e.id for e in unassigned] == [second.event_id]
        assert subs[0].stats.duplicates == 1
    finally:
        publisher.close()
        for sub in subs:
            sub.delete()
            sub.close()
        with Connection(amqp_url) as conn:
            events_exchange(exchange).bind(conn.default_channel).delete()
