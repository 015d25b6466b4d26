"""The relay's loop on the in-memory outbox: publish in order, then mark; a failure or a
death before marking leaves the events unsent, to be published again."""

from __future__ import annotations

import threading

import pytest

from models import constants as c
from models.commands import UnassignDevice
from models.events import to_cloud_event
from models.ports import OutboxRecord, PendingEvent
from tasks.pipeline import Delivery, process
from tasks.unassign_device import unassign_device
from tests.fakes import FakeDatabase, FakeOutboxFeed, FakeUnitOfWork
from tests.helpers import assign_body, new_device, unassign_body
from worker.relay import Relay


class RecordingPublisher:
    def __init__(self, *, fail_after: int | None = None) -> None:
        self.published: list[PendingEvent] = []
        self.fail_after = fail_after

    def publish(self, events: list[PendingEvent]) -> None:
        for event in events:
            if self.fail_after is not None and len(self.published) >= self.fail_after:
                raise ConnectionError("broker went away")
            self.published.append(event)

    def close(self) -> None:
        pass


class Died(Exception):
    """Stands for the relay process dying between publishing and marking."""


def given_committed_commands(db: FakeDatabase, org: str, count: int) -> list[str]:
    devices = [new_device() for _ in range(count)]
    for device in devices:
        body = assign_body(org, device, ["a@example.com"], autoCreateDevice=True, deviceType="T")
        process(Delivery(c.ASSIGN_DEVICE, "m", body), db.uow)
    return devices


def given_an_org(db: FakeDatabase) -> str:
    db.state.organizations["acme"] = "acme"
    return "acme"


def test_events_are_published_in_outbox_order_and_then_marked_sent():
    db = FakeDatabase()
    org = given_an_org(db)
    devices = given_committed_commands(db, org, 5)
    publisher = RecordingPublisher()
    relay = Relay(FakeOutboxFeed(db), publisher, batch_size=2)
    # When the relay runs until the outbox is drained
    counts = [relay.run_once() for _ in range(4)]
    # Then every event went out once, in order, in batches of two, and is marked sent
    assert counts == [2, 2, 1, 0]
    assert [e.subject for e in publisher.published] == devices
    assert [e.payload["subject"] for e in publisher.published] == devices
    assert db.state.sent == {r.event_id for r in db.state.outbox}


def test_a_relay_that_dies_after_publishing_leaves_the_batch_unsent_and_it_goes_out_again():
    db = FakeDatabase()
    org = given_an_org(db)
    given_committed_commands(db, org, 3)
    publisher = RecordingPublisher()

    def die(events: list[PendingEvent]) -> None:
        raise Died

    with pytest.raises(Died):
        Relay(FakeOutboxFeed(db), publisher, after_publish=die).run_once()
    assert len(publisher.published) == 3 and db.state.sent == set()
    # When another relay runs
    Relay(FakeOutboxFeed(db), publisher).run_once()
    # Then the same three events are published again (same ids) and now marked
    ids = [e.event_id for e in publisher.published]
    assert ids[:3] == ids[3:] and len(set(ids)) == 3
    assert len(db.state.sent) == 3


def test_a_broker_failure_mid_batch_marks_nothing_and_the_retry_keeps_the_order():
    db = FakeDatabase()
    org = given_an_org(db)
    devices = given_committed_commands(db, org, 4)
    publisher = RecordingPublisher(fail_after=2)
    relay = Relay(FakeOutboxFeed(db), publisher)
    with pytest.raises(ConnectionError):
        relay.run_once()
    assert db.state.sent == set()
    publisher.fail_after = None
    relay.run_once()
    subjects = [e.subject for e in publisher.published]
    assert subjects == devices[:2] + devices
    first_seen = list(dict.fromkeys(subjects))  # what a deduplicating subscriber sees
    assert first_seen == devices


def test_a_rolled_back_transaction_leaves_nothing_to_publish():
    db = FakeDatabase()
    org = given_an_org(db)
    device = given_committed_commands(db, org, 1)[0]
    # Given a unit of work that writes an unassignment and its outbox row, then rolls back
    body = unassign_body(org, device, ["a@example.com"])
    uow: FakeUnitOfWork = db.uow()
    with uow:
        unassign_device(UnassignDevice.model_validate(body), uow)
        event = to_cloud_event(
            uow.events[0], organization_id=org, request_id="r", sequence=0, time=uow.now
        )
        uow.outbox.add([OutboxRecord(event.id, org, event.type, event.subject, event.to_wire())])
        # ...and the block ends without commit()
    publisher = RecordingPublisher()
    Relay(FakeOutboxFeed(db), publisher).run_once()
    assert [e.type for e in publisher.published] == ["device.assigned"]


def test_the_loop_survives_failures_and_stops_when_asked():
    db = FakeDatabase()
    org = given_an_org(db)
    given_committed_commands(db, org, 2)
    publisher = RecordingPublisher(fail_after=0)
    feed = FakeOutboxFeed(db)
    relay = Relay(feed, publisher, poll_interval_s=0.01)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    # The broker fails first; once it is back, the events go out
    threading.Timer(0.3, lambda: setattr(publisher, "fail_after", None)).start()
    deadline = threading.Event()
    for _ in range(100):
        if len(db.state.sent) == 2:
            break
        deadline.wait(0.05)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert len(db.state.sent) == 2 and relay.published == 2
    assert feed.waits >= 1


@pytest.mark.parametrize(
    ("broker_url", "worker_relay", "expected"),
    [
        (None, None, True),  # the embedded default: `custody worker` alone is complete
        ("redis://localhost:6379/0", None, False),  # production runs `custody relay`
        ("redis://localhost:6379/0", True, True),
        (None, False, False),
    ],
)
def test_the_worker_runs_the_relay_by_default_only_when_embedded(
    broker_url, worker_relay, expected, tmp_path
):
    from models.settings import Settings

    settings = Settings(home=tmp_path, broker_url=broker_url, worker_relay=worker_relay)
    assert settings.relay_in_worker is expected
