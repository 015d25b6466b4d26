"""Subscribers on kombu's in-memory transport: durable named queues bound by pattern,
deduplication on event id, bounded retries then parking, and the throw-away tail."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import pytest
from kombu import Connection

from models.domain import DeviceAssigned, DeviceUnassigned, OwnerRef
from models.events import to_cloud_event
from models.ports import PendingEvent
from subscribers import EventTail, SqliteSeenEvents, Subscriber
from subscribers.subscriber import check_name, check_patterns
from worker.relay import KombuPublisher

ALICE = OwnerRef(1, "alice@example.com")


@pytest.fixture
def exchange() -> str:
    # The in-memory transport is shared by the process: one exchange per test.
    return f"custody.events.t{uuid.uuid4().hex[:8]}"


def an_event(
    kind: type = DeviceAssigned, *, device: str = "SN-1", org: str = "acme"
) -> PendingEvent:
    fact = (
        DeviceAssigned(device, 1, False, [ALICE], [ALICE])
        if kind is DeviceAssigned
        else DeviceUnassigned(device, 1, [ALICE], [])
    )
    event = to_cloud_event(
        fact,
        organization_id=org,
        request_id=f"req-{uuid.uuid4().hex}",
        sequence=0,
        time=datetime.now(UTC),
    )
    return PendingEvent(0, event.id, event.type, event.subject, event.to_wire())


def publish(exchange: str, *events: PendingEvent) -> None:
    publisher = KombuPublisher("memory://", exchange=exchange)
    publisher.publish(list(events))
    publisher.close()


def subscriber(exchange: str, patterns: list[str], handler, tmp_path, **options) -> Subscriber:
    name = f"s{uuid.uuid4().hex[:8]}"
    return Subscriber(
        name,
        patterns,
        handler,
        broker_url="memory://",
        exchange=exchange,
        seen=SqliteSeenEvents(tmp_path / f"{name}.sqlite3", ttl_s=3600),
        retry_backoff_s=0.001,
        **options,
    )


def test_a_redelivered_event_calls_the_handler_once(exchange, tmp_path):
    # Given a subscriber and an event published twice (a relay that republished it)
    handled = []
    sub = subscriber(exchange, ["device.*"], handled.append, tmp_path)
    sub.declare()
    event = an_event()
    publish(exchange, event, event)
    # When it consumes
    sub.consume(until=lambda: sub.pending() == 0)
    # Then the handler saw it once and the copy was acknowledged as a duplicate
    assert [e.id for e in handled] == [event.event_id]
    assert sub.stats.handled == 1 and sub.stats.duplicates == 1
    assert sub.pending() == 0


def test_subscribers_with_different_patterns_each_get_only_theirs(exchange, tmp_path):
    assigned, unassigned, everything = [], [], []
    subs = [
        subscriber(exchange, ["device.assigned"], assigned.append, tmp_path),
        subscriber(exchange, ["*.unassigned"], unassigned.append, tmp_path),
        subscriber(exchange, ["#"], everything.append, tmp_path),
    ]
    for sub in subs:
        sub.declare()
    events = [an_event(DeviceAssigned), an_event(DeviceUnassigned), an_event(DeviceAssigned)]
    publish(exchange, *events)
    for sub in subs:
        sub.consume(until=lambda sub=sub: sub.pending() == 0)
    assert [e.type for e in assigned] == ["device.assigned", "device.assigned"]
    assert [e.type for e in unassigned] == ["device.unassigned"]
    assert [e.id for e in everything] == [e.event_id for e in events]


def test_a_declared_subscriber_that_was_not_running_gets_every_event_in_order(exchange, tmp_path):
    handled = []
    sub = subscriber(exchange, ["#"], handled.append, tmp_path)
    sub.declare()
    events = [an_event(device=f"SN-{n}") for n in range(20)]
    publish(exchange, *events)
    assert sub.pending() == 20
    sub.consume(until=lambda: sub.pending() == 0)
    assert [e.id for e in handled] == [e.event_id for e in events]


def test_a_handler_that_keeps_failing_is_retried_then_its_event_is_parked_not_lost(
    exchange, tmp_path
):
    calls = []

    def broken(event):
        calls.append(event.id)
        raise RuntimeError("downstream is down")

    sub = subscriber(exchange, ["#"], broken, tmp_path, max_attempts=3)
    sub.declare()
    bad, good = an_event(), an_event()
    publish(exchange, bad)
    sub.consume(until=lambda: sub.pending() == 0)
    # Then it was tried three times and parked with the reason
    assert calls == [bad.event_id] * 3
    assert sub.stats.parked == 1 and sub.stats.retries == 2
    assert sub.parked() == 1 and sub.pending() == 0
    # And once the handler works again, replaying the parked event handles it
    handled = []
    sub.handler = handled.append
    assert sub.replay_parked() == 1
    publish(exchange, good)
    sub.consume(until=lambda: sub.pending() == 0)
    assert [e.id for e in handled] == [bad.event_id, good.event_id]
    assert sub.parked() == 0


def test_a_handler_that_fails_once_is_called_again_and_the_event_is_handled(exchange, tmp_path):
    attempts = []

    def flaky(event):
        attempts.append(event.id)
        if len(attempts) == 1:
            raise TimeoutError("slow")

    sub = subscriber(exchange, ["#"], flaky, tmp_path)
    sub.declare()
    publish(exchange, an_event())
    sub.consume(until=lambda: sub.pending() == 0)
    assert len(attempts) == 2 and sub.stats.handled == 1 and sub.parked() == 0


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"{not json", "application/json", "not a CloudEvent"),
        (json.dumps(["a", "list"]).encode(), "application/json", "expected a JSON object"),
        (
            json.dumps({"id": "x", "type": "device.assigned"}).encode(),
            "application/json",
            "subject",
        ),
        (b"plain text", "text/plain", "not a CloudEvent"),
    ],
)
def test_a_message_that_is_not_a_cloudevent_is_parked_with_the_reason_and_never_handled(
    exchange, tmp_path, body, content_type, reason
):
    handled = []
    sub = subscriber(exchange, ["#"], handled.append, tmp_path)
    sub.declare()
    with Connection("memory://") as conn:
        conn.Producer().publish(
            body,
            exchange=exchange,
            routing_key="device.assigned",
            content_type=content_type,
            content_encoding="utf-8",
        )
    sub.consume(until=lambda: sub.pending() == 0)
    assert handled == [] and sub.parked() == 1
    with Connection("memory://") as conn:
        from models.topology import direct_queue

        message = direct_queue(sub.parked_queue_name).bind(conn.default_channel).get()
        assert reason in message.headers["x-custody-parked-reason"]
        assert message.body == body  # kept byte for byte


@pytest.mark.parametrize("name", ["", "has space", "dots.not.allowed", "-lead", "x" * 65, "ü"])
def test_a_bad_subscriber_name_is_refused_with_a_clear_reason(name):
    with pytest.raises(ValueError, match="subscriber name"):
        check_name(name)


@pytest.mark.parametrize("patterns", [[], ["device..x"], ["device.*x"], ["a b"], ["#" * 300]])
def test_bad_patterns_are_refused_with_a_clear_reason(patterns):
    with pytest.raises(ValueError, match="pattern"):
        check_patterns(patterns)


def test_good_patterns_pass():
    assert check_patterns(["device.*", "access.#", "#", "device.assigned"]) == [
        "device.*",
        "access.#",
        "#",
        "device.assigned",
    ]


def test_handled_event_ids_survive_a_restart_and_expire(tmp_path):
    path = tmp_path / "seen.sqlite3"
    store = SqliteSeenEvents(path, ttl_s=3600)
    store.remember("e-1")
    store.close()
    again = SqliteSeenEvents(path, ttl_s=3600)
    assert again.seen("e-1") and not again.seen("e-2")
    again.close()
    expired = SqliteSeenEvents(path, ttl_s=0.001)
    time.sleep(0.01)
    assert not expired.seen("e-1")
    expired.close()


def test_the_tail_sees_only_the_events_of_its_patterns_and_organization(exchange):
    with EventTail(
        ["device.*"], broker_url="memory://", exchange=exchange, organization="acme"
    ) as tail:
        ours, theirs = an_event(org="acme"), an_event(org="other")
        publish(exchange, theirs, ours)
        seen = tail.next(timeout_s=2)
        assert seen is not None and seen.id == ours.event_id
        publish(exchange, an_event(DeviceUnassigned, org="acme"))
        unassigned = tail.next(timeout_s=2)
        assert unassigned is not None and unassigned.type == "device.unassigned"
        assert tail.next(timeout_s=0.2) is None
