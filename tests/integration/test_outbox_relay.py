"""The outbox feed and relay on real SQLite, PostgreSQL and Redis: order, several relays at
once, prompt wake-up after a commit, and nothing published for a rollback."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from models import constants as c
from models import tables as t
from models.outbox_feed import SqlOutboxFeed
from subscribers import RedisSeenEvents, Subscriber
from tests.backends import SqlBackend
from tests.helpers import assign_body, deliver, new_device, unassign_body
from worker.relay import KombuPublisher, Relay


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> SqlBackend:
    return SqlBackend(request.param, request.getfixturevalue(f"{request.param}_engine"))


def given_committed_assignments(store: SqlBackend, org: str, devices: list[str]) -> None:
    for device in devices:
        body = assign_body(org, device, ["a@example.com"], autoCreateDevice=True, deviceType="T")
        assert deliver(store, body).success


def ours(events, org: str):
    return [e for e in events if e.payload["organizationid"] == org]


def drain(feed: SqlOutboxFeed) -> None:
    """Mark everything earlier tests left unsent, so each test sees its own rows."""
    while True:
        with feed.claim(1000) as batch:
            batch.mark_sent()
            if not batch.events:
                return


def unsent_of(store: SqlBackend, org: str) -> int:
    o = t.outbox
    with store.engine.connect() as conn:
        query = sa.select(sa.func.count()).where(o.c.organization_id == org, o.c.sent_at.is_(None))
        return int(conn.execute(query).scalar_one())


def test_a_claim_hands_out_committed_rows_in_order_and_marked_rows_never_again(store):
    feed = SqlOutboxFeed(store.engine)
    try:
        org, devices = store.new_org(), [new_device() for _ in range(3)]
        given_committed_assignments(store, org, devices)
        mine = []
        while True:  # earlier tests of this run may have left unsent rows before ours
            with feed.claim(1000) as batch:
                if not batch.events:
                    break
                mine += ours(batch.events, org)
                batch.mark_sent()
        assert [e.subject for e in mine] == devices
        assert [e.payload["subject"] for e in mine] == devices
        assert all(e.type == "device.assigned" for e in mine)
        with feed.claim(1000) as batch:
            assert ours(batch.events, org) == []
        assert unsent_of(store, org) == 0
    finally:
        feed.close()


def test_a_claim_that_ends_in_an_error_leaves_its_rows_unsent(store):
    feed = SqlOutboxFeed(store.engine)
    org = store.new_org()
    given_committed_assignments(store, org, [new_device()])
    with pytest.raises(ConnectionError), feed.claim(1000) as batch:
        batch.mark_sent()
        raise ConnectionError("the broker went away before the commit")
    assert unsent_of(store, org) == 1
    feed.close()


def test_while_one_relay_holds_a_batch_another_claims_nothing(store):
    first, second = SqlOutboxFeed(store.engine), SqlOutboxFeed(store.engine)
    drain(first)
    org = store.new_org()
    given_committed_assignments(store, org, [new_device(), new_device()])
    with first.claim(1000) as held:
        assert len(ours(held.events, org)) == 2
        # When a second relay tries while the first publishes
        with second.claim(1000) as other:
            assert other.events == []
        held.mark_sent()
    assert unsent_of(store, org) == 0
    # Then the turn is free again
    given_committed_assignments(store, org, [new_device()])
    with second.claim(1000) as batch:
        assert len(ours(batch.events, org)) == 1
        batch.mark_sent()
    first.close()
    second.close()


def test_commands_commit_while_a_relay_publishes(store):
    """A relay holding a batch (publishing it) does not hold up the commands' transactions."""
    feed = SqlOutboxFeed(store.engine)
    drain(feed)
    org = store.new_org()
    given_committed_assignments(store, org, [new_device()])
    late = new_device()
    committed = threading.Event()

    def assign() -> None:
        given_committed_assignments(store, org, [late])
        committed.set()

    with feed.claim(1000) as held:
        assert len(ours(held.events, org)) == 1
        writer = threading.Thread(target=assign, daemon=True)
        writer.start()
        # When a command commits while the batch is being published
        assert committed.wait(10), "the command waited for the relay"
        held.mark_sent()
    writer.join(10)
    # Then the batch is marked, and the new event waits for the next one
    with feed.claim(1000) as batch:
        assert [e.subject for e in ours(batch.events, org)] == [late]
        batch.mark_sent()
    assert unsent_of(store, org) == 0
    feed.close()


def test_a_commit_wakes_a_waiting_relay_and_a_rollback_does_not(store):
    feed = SqlOutboxFeed(store.engine)
    drain(feed)
    org = store.new_org()
    device = new_device()
    given_committed_assignments(store, org, [device])
    drain(feed)
    feed.wait(0.05)  # what was committed so far has been seen
    # A rollback (the outbox row written, then no commit) wakes nobody
    with store.uow() as uow:
        uow.outbox.add([_record(org, device)])
    assert feed.wait(0.5) is False
    # A commit wakes the relay at once, long before its poll interval
    waited: list[float] = []

    def wait() -> None:
        started = time.monotonic()
        assert feed.wait(20.0) is True
        waited.append(time.monotonic() - started)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.2)
    deliver(store, unassign_body(org, device, ["a@example.com"]), c.UNASSIGN_DEVICE)
    waiter.join(25)
    assert waited and waited[0] < 2.0, waited
    feed.close()


def _record(org: str, device: str):
    from models.ports import OutboxRecord

    event_id = str(uuid.uuid4())
    payload = {"id": event_id, "type": "device.assigned", "subject": device}
    return OutboxRecord(event_id, org, "device.assigned", device, payload)


def test_sent_rows_older_than_the_retention_are_deleted(store):
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    feed = SqlOutboxFeed(store.engine, clock=lambda: long_ago)
    drain(feed)
    org = store.new_org()
    given_committed_assignments(store, org, [new_device(), new_device()])
    with feed.claim(1000) as batch:
        batch.mark_sent()  # sent "in 2000", like everything drained above
    assert feed.prune_sent(long_ago + timedelta(days=1)) >= 2
    assert store.state(org).events == []
    feed.close()


class SlowBroker(KombuPublisher):
    """A broker that takes 2 ms per message: long enough for two relays that both
    published at once to interleave."""

    def publish(self, events):
        for event in events:
            time.sleep(0.002)
            super().publish([event])


def churn(store: SqlBackend, org: str, devices: list[str], writer: int, rounds: int) -> None:
    """Assign then unassign owners, round after round, spread over the devices."""
    for i in range(rounds):
        device = devices[(writer + i) % len(devices)]
        email = f"w{writer}-{i // 2}@example.com"
        if i % 2 == 0:
            deliver(store, assign_body(org, device, [email]))
        else:
            deliver(store, unassign_body(org, device, [email]), c.UNASSIGN_DEVICE)


@pytest.mark.postgres
@pytest.mark.redis
def test_two_relays_at_once_publish_every_event_in_commit_order_per_device(
    postgres_engine, redis_url
):
    # Given a subscriber on its own exchange and a backlog of events on three devices
    store = SqlBackend("postgres", postgres_engine)
    backlog = SqlOutboxFeed(postgres_engine)
    drain(backlog)
    backlog.close()
    exchange = f"custody.events.t{uuid.uuid4().hex[:8]}"
    received = []
    subscriber = Subscriber(
        f"order-{uuid.uuid4().hex[:8]}",
        ["#"],
        received.append,
        broker_url=redis_url,
        exchange=exchange,
    )
    subscriber.declare()
    org = store.new_org()
    devices = [new_device() for _ in range(3)]
    given_committed_assignments(store, org, devices)
    churn(store, org, devices, writer=0, rounds=40)
    # When two relays start together, while four writers keep committing
    stop = threading.Event()
    relays = [
        Relay(
            SqlOutboxFeed(postgres_engine),
            SlowBroker(redis_url, exchange=exchange),
            batch_size=4,
            poll_interval_s=0.2,
        )
        for _ in range(2)
    ]
    threads = [threading.Thread(target=r.run, args=(stop,)) for r in relays]
    writers = [
        threading.Thread(target=churn, args=(store, org, devices, n, 10)) for n in range(1, 5)
    ]
    for thread in threads + writers:
        thread.start()
    for thread in writers:
        thread.join()
    committed = store.state(org).events  # outbox rows in id order
    deadline = time.monotonic() + 30
    while unsent_of(store, org) and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join(10)
    subscriber.consume(idle_timeout_s=1.0)
    subscriber.delete()
    subscriber.close()
    for relay in relays:
        relay.close()
    # Then every committed event arrived, and per device the first arrival of each
    # event follows commit order
    assert unsent_of(store, org) == 0
    arrived = [e for e in received if e.organizationid == org]
    assert {e.id for e in arrived} == {e["id"] for e in committed}
    first_arrivals: dict[str, list[str]] = defaultdict(list)
    for event in arrived:
        if event.id not in first_arrivals[event.subject]:
            first_arrivals[event.subject].append(event.id)
    for device in devices:
        in_commit_order = [e["id"] for e in committed if e["subject"] == device]
        assert first_arrivals[device] == in_commit_order


@pytest.mark.redis
def test_handled_event_ids_are_shared_in_redis_and_expire(redis_url):
    name = f"r{uuid.uuid4().hex[:8]}"
    one, two = (RedisSeenEvents(redis_url, name, ttl_s=1) for _ in range(2))
    one.remember("e-1")
    assert two.seen("e-1") and not two.seen("e-2")
    time.sleep(1.2)
    assert not two.seen("e-1")
    one.close()
    two.close()
