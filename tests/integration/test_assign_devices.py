"""custody.assign_devices on the fake, on SQLite and on PostgreSQL: many items in one
transaction, each answered on its own, as if applied one after the other."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from models import constants as c
from tests.helpers import assign_body, deliver, new_device


def bulk_body(org: str, items: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "requestId": extra.pop("requestId", f"bulk-{uuid.uuid4().hex}"),
        "organizationId": org,
        "items": items,
        **extra,
    }


def item(device: str, emails: list[str], **extra: Any) -> dict[str, Any]:
    return {"deviceIdentifier": device, "customerEmails": emails, **extra}


def new(device: str, emails: list[str], device_type: str = "Lock") -> dict[str, Any]:
    return item(device, emails, autoCreateDevice=True, deviceType=device_type)


def deliver_bulk(backend: Any, body: Any) -> Any:
    return deliver(backend, body, task=c.ASSIGN_DEVICES)


def test_valid_items_are_applied_and_invalid_ones_answered_in_their_place(backend):
    # Given an organization with one known device owned by a
    org = backend.new_org()
    known, fresh, unknown = new_device(), new_device(), new_device()
    deliver(
        backend, assign_body(org, known, ["a@example.com"], autoCreateDevice=True, deviceType="T")
    )
    items = [
        new(fresh, ["b@example.com", "c@example.com"]),
        item(known, ["a@example.com"]),
        item(known, "a@example.com"),  # wrong type
        item(new_device(), ["not-an-email"], autoCreateDevice=True, deviceType="T"),
        item(unknown, ["d@example.com"]),  # unknown device, may not create it
        "not an object",
        item(new_device(), ["e@example.com"], autoCreateDevice=True),  # no deviceType
        item(known, ["f@example.com", "bad"], colour="red"),  # unknown field
    ]
    # When they are sent as one command
    outcome = deliver_bulk(backend, bulk_body(org, items))
    # Then the command succeeds with one answer per item, in item order
    result = outcome.result
    assert result["success"] is True and result["statusCode"] == 200
    assert [(i["status"], i["statusCode"]) for i in result["items"]] == [
        ("assigned", 200),
        ("alreadyAssigned", 200),
        ("failed", 400),
        ("failed", 400),
        ("skipped", 404),
        ("failed", 400),
        ("failed", 400),
        ("failed", 400),
    ]
    assert result["summary"] == {"assigned": 1, "alreadyAssigned": 1, "skipped": 1, "failed": 5}
    assert result["message"] == (
        "Processed 8 item(s): 1 assigned, 1 already assigned, 1 skipped, 5 failed"
    )
    answers = result["items"]
    assert answers[0]["deviceCreated"] is True and answers[0]["customersAssigned"] == 2
    assert answers[0]["customersCreated"] == 2 and "skippedEmails" not in answers[0]
    assert answers[1]["deviceCreated"] is False and answers[1]["customersAssigned"] == 0
    assert answers[2]["errorMessages"] == ["customerEmails: Input should be a valid list"]
    assert answers[3]["errorMessages"] == [
        "customerEmails: no valid e-mail address in 'not-an-email'"
    ]
    assert answers[4]["errorCode"] == "DEVICE_NOT_FOUND"
    assert answers[4]["deviceIdentifier"] == unknown
    assert answers[5]["errorMessages"] == ["expected a JSON object, got str"]
    assert "deviceIdentifier" not in answers[5]
    assert answers[6]["errorMessages"] == ["deviceType is required when autoCreateDevice is true"]
    assert answers[7]["errorMessages"] == ["colour: unknown field"]
    # and only the valid items changed anything, with one event for the one changed device
    state = backend.state(org)
    assert set(state.devices) == {known, fresh}
    assert state.owners == {
        (known, "a@example.com"),
        (fresh, "b@example.com"),
        (fresh, "c@example.com"),
    }
    assert [e["subject"] for e in state.events] == [known, fresh]
    assert state.processed[outcome.request_id] == result


def test_emails_are_normalized_per_item_and_invalid_ones_listed(backend):
    org, device = backend.new_org(), new_device()
    outcome = deliver_bulk(
        backend,
        bulk_body(org, [new(f"  {device} ", [" Ann@Example.COM", "x@@y", "ann@example.com"])]),
    )
    (answer,) = outcome.result["items"]
    assert answer["deviceIdentifier"] == device
    assert answer["customersAssigned"] == 1
    assert answer["skippedEmails"] == ["x@@y"]
    assert backend.state(org).customers == {"ann@example.com": "ann"}


def test_items_naming_the_same_device_are_applied_in_order_with_one_event(backend):
    # Given a batch that creates a device and then adds owners to it twice
    org, device = backend.new_org(), new_device()
    items = [
        new(device, ["a@example.com"], device_type="Lock"),
        item(device, ["A@example.com", "b@example.com"]),
        item(device, ["b@example.com"]),
        new(device, ["c@example.com"], device_type="Other"),  # exists by now: type unchanged
    ]
    outcome = deliver_bulk(backend, bulk_body(org, items))
    # Then each item sees the ones before it
    answers = outcome.result["items"]
    assert [a["status"] for a in answers] == [
        "assigned",
        "assigned",
        "alreadyAssigned",
        "assigned",
    ]
    assert [a["customersAssigned"] for a in answers] == [1, 1, 0, 1]
    assert [a["customersCreated"] for a in answers] == [1, 1, 0, 1]
    assert [a["deviceCreated"] for a in answers] == [True, False, False, False]
    assert len({a["deviceId"] for a in answers}) == 1
    # and one event names every owner added, in the order the items named them
    state = backend.state(org)
    assert state.devices == {device: "Lock"}
    (event,) = state.events
    data = event["data"]
    assert data["deviceCreated"] is True
    assert [o["email"] for o in data["ownersAdded"]] == [
        "a@example.com",
        "b@example.com",
        "c@example.com",
    ]
    assert sorted(o["email"] for o in data["owners"]) == [
        "a@example.com",
        "b@example.com",
        "c@example.com",
    ]


def test_an_item_before_the_one_that_creates_its_device_is_skipped(backend):
    org, device = backend.new_org(), new_device()
    items = [item(device, ["a@example.com"]), new(device, ["b@example.com"])]
    answers = deliver_bulk(backend, bulk_body(org, items)).result["items"]
    assert [a["status"] for a in answers] == ["skipped", "assigned"]
    assert answers[1]["deviceCreated"] is True
    assert backend.state(org).owners == {(device, "b@example.com")}


def test_a_device_that_gains_owners_carries_its_full_owner_list_in_its_event(backend):
    # Given a device owned by a and b
    org, device = backend.new_org(), new_device()
    deliver(
        backend,
        assign_body(
            org, device, ["a@example.com", "b@example.com"], autoCreateDevice=True, deviceType="T"
        ),
    )
    # When a batch adds c and re-assigns a
    deliver_bulk(backend, bulk_body(org, [item(device, ["c@example.com", "a@example.com"])]))
    # Then the event adds only c and lists all three owners
    event = backend.state(org).events[-1]
    assert [o["email"] for o in event["data"]["ownersAdded"]] == ["c@example.com"]
    assert [o["email"] for o in event["data"]["owners"]] == [
        "a@example.com",
        "b@example.com",
        "c@example.com",
    ]
    assert event["data"]["deviceCreated"] is False


def test_a_batch_that_changes_nothing_emits_no_event(backend):
    org, device = backend.new_org(), new_device()
    deliver_bulk(backend, bulk_body(org, [new(device, ["a@example.com"])]))
    outcome = deliver_bulk(backend, bulk_body(org, [item(device, ["a@example.com"])]))
    assert outcome.result["summary"]["alreadyAssigned"] == 1
    assert len(backend.state(org).events) == 1


def test_existing_customers_are_shared_across_items_and_devices(backend):
    org = backend.new_org()
    first, second = new_device(), new_device()
    outcome = deliver_bulk(
        backend, bulk_body(org, [new(first, ["a@example.com"]), new(second, ["a@example.com"])])
    )
    answers = outcome.result["items"]
    assert [a["customersCreated"] for a in answers] == [1, 0]
    state = backend.state(org)
    assert len(state.customers) == 1 and state.owner_rows == 2 and len(state.events) == 2


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([], "items: List should have at least 1 item after validation, not 0"),
        (
            [item("SN", ["a@example.com"])] * (c.MAX_BULK_ITEMS + 1),
            "items: 1001 items, at most 1000 (limit on items per array)",
        ),
        ("SN-1", "items: Input should be a valid list"),
    ],
    ids=["no-items", "1001-items", "not-a-list"],
)
def test_a_batch_outside_the_limits_is_a_400_that_changes_nothing(backend, items, expected):
    org = backend.new_org()
    outcome = deliver_bulk(backend, bulk_body(org, items))
    assert outcome.result["statusCode"] == 400
    assert outcome.result["errorCode"] == "INVALID_REQUEST"
    assert expected in outcome.result["errorMessages"]
    state = backend.state(org)
    assert state.devices == {} and state.customers == {} and state.events == []
    # recorded: under its requestId, or (a shape over the limits, refused before the schema
    # reads it) as a rejection that takes no requestId
    assert outcome.result in [state.processed.get(outcome.request_id), *state.rejections]


def test_a_batch_without_items_or_with_unknown_fields_is_a_400(backend):
    org = backend.new_org()
    missing = bulk_body(org, [])
    del missing["items"]
    extra = bulk_body(org, [new(new_device(), ["a@example.com"])], colour="red")
    assert "items: Field required" in deliver_bulk(backend, missing).result["errorMessages"]
    assert "colour: unknown field" in deliver_bulk(backend, extra).result["errorMessages"]


def test_a_full_batch_of_1000_items_is_applied_in_one_command(backend):
    # Given 1,000 new devices, half of them shared by one customer
    org = backend.new_org()
    devices = [new_device() for _ in range(c.MAX_BULK_ITEMS)]
    items = [
        new(d, [f"owner{n}@example.com", "shared@example.com" if n % 2 else "x@example.com"])
        for n, d in enumerate(devices)
    ]
    # When they are assigned in one command
    outcome = deliver_bulk(backend, bulk_body(org, items))
    # Then every device has its two owners and its own event
    assert outcome.result["summary"] == {
        "assigned": 1000,
        "alreadyAssigned": 0,
        "skipped": 0,
        "failed": 0,
    }
    state = backend.state(org)
    assert len(state.devices) == 1000 and state.owner_rows == 2000
    assert len(state.customers) == 1002
    assert len(state.events) == 1000
    assert len({e["id"] for e in state.events}) == 1000
    assert all(len(e["data"]["owners"]) == 2 for e in state.events)


def test_the_same_batch_twice_returns_the_stored_result_and_writes_nothing(backend):
    org = backend.new_org()
    body = bulk_body(org, [new(new_device(), ["a@example.com"]), item("nope", ["b@example.com"])])
    first = deliver_bulk(backend, body)
    before = backend.state(org)
    again = deliver_bulk(backend, dict(body))
    assert again.replayed is True and again.result == first.result
    assert backend.state(org) == before


def test_the_same_request_id_with_other_items_is_an_idempotency_conflict(backend):
    org = backend.new_org()
    body = bulk_body(org, [new(new_device(), ["a@example.com"])])
    deliver_bulk(backend, body)
    other = {**body, "items": [new(new_device(), ["b@example.com"])]}
    outcome = deliver_bulk(backend, other)
    assert outcome.result["statusCode"] == 409
    assert outcome.result["errorCode"] == "IDEMPOTENCY_CONFLICT"
    assert len(backend.state(org).devices) == 1


def test_a_batch_for_an_unknown_organization_is_a_401(backend):
    outcome = deliver_bulk(backend, bulk_body("no-such-org", [new(new_device(), ["a@x.com"])]))
    assert outcome.result["statusCode"] == 401
