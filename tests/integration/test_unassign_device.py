"""Every unassign_device rule, on the fake, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from models import constants as c
from tests.helpers import assign_body, deliver, new_device, unassign_body


def given_a_device_owned_by(backend, org: str, emails: list[str]) -> str:
    device = new_device()
    outcome = deliver(
        backend, assign_body(org, device, emails, autoCreateDevice=True, deviceType="Lock")
    )
    assert outcome.success
    return device


def unassign(backend, org: str, device: str, emails: list[str], **extra):
    return deliver(backend, unassign_body(org, device, emails, **extra), c.UNASSIGN_DEVICE)


def test_unassigning_an_owner_removes_only_that_owner_row_and_keeps_the_customer(backend):
    # Given a device owned by three customers
    org = backend.new_org()
    device = given_a_device_owned_by(
        backend, org, ["a@example.com", "b@example.com", "c@example.com"]
    )
    # When one of them is unassigned
    outcome = unassign(backend, org, device, ["b@example.com"])
    # Then only that owner row is gone; the customer still exists
    result = outcome.result
    assert result["success"] is True and result["statusCode"] == 200
    assert result["message"] == "Removed 1 owner(s) from device"
    assert result["deviceIdentifier"] == device
    assert result["removedEmails"] == ["b@example.com"]
    assert result["notOwnerEmails"] == [] and result["skippedEmails"] == []
    state = backend.state(org)
    assert state.owners == {(device, "a@example.com"), (device, "c@example.com")}
    assert "b@example.com" in state.customers


def test_device_unassigned_carries_the_owners_removed_and_the_owners_remaining(backend):
    org = backend.new_org()
    device = given_a_device_owned_by(
        backend, org, ["a@example.com", "b@example.com", "c@example.com"]
    )
    outcome = unassign(backend, org, device, [" C@Example.com", "a@example.com"])
    event = backend.state(org).events[-1]
    assert event["type"] == "device.unassigned"
    assert event["subject"] == device
    assert event["correlationid"] == outcome.request_id
    data = event["data"]
    assert [o["email"] for o in data["ownersRemoved"]] == ["c@example.com", "a@example.com"]
    assert [o["email"] for o in data["owners"]] == ["b@example.com"]
    assert data["deviceId"] == outcome.result["deviceId"]


def test_emails_that_are_not_owners_are_listed_and_nobody_is_created(backend):
    # Given a device owned by a, and a customer b who owns another device
    org = backend.new_org()
    device = given_a_device_owned_by(backend, org, ["a@example.com"])
    given_a_device_owned_by(backend, org, ["b@example.com"])
    # When b and an unknown address are unassigned from the first device
    outcome = unassign(backend, org, device, ["b@example.com", "nobody@example.com"])
    # Then nothing changed, both are "not owners", no customer is created, no event
    result = outcome.result
    assert result["success"] is True
    assert result["removedEmails"] == []
    assert result["notOwnerEmails"] == ["b@example.com", "nobody@example.com"]
    state = backend.state(org)
    assert "nobody@example.com" not in state.customers
    assert [e["type"] for e in state.events] == ["device.assigned", "device.assigned"]


def test_invalid_emails_are_skipped_and_listed(backend):
    org = backend.new_org()
    device = given_a_device_owned_by(backend, org, ["a@example.com"])
    outcome = unassign(backend, org, device, ["not-an-email", "A@example.com "])
    assert outcome.result["removedEmails"] == ["a@example.com"]
    assert outcome.result["skippedEmails"] == ["not-an-email"]
    assert backend.state(org).owners == set()


def test_no_valid_email_is_a_400_and_changes_nothing(backend):
    org = backend.new_org()
    device = given_a_device_owned_by(backend, org, ["a@example.com"])
    outcome = unassign(backend, org, device, ["nope", " "])
    assert outcome.result["statusCode"] == 400
    assert outcome.result["errorCode"] == "INVALID_REQUEST"
    assert "customerEmails" in outcome.result["errorMessages"][0]
    assert backend.state(org).owners == {(device, "a@example.com")}


def test_an_unknown_device_is_a_404_and_changes_nothing(backend):
    org = backend.new_org()
    given_a_device_owned_by(backend, org, ["a@example.com"])
    before = backend.state(org)
    outcome = unassign(backend, org, "SN-missing", ["a@example.com"])
    assert outcome.result["statusCode"] == 404
    assert outcome.result["errorCode"] == "DEVICE_NOT_FOUND"
    after = backend.state(org)
    assert after.owners == before.owners and after.events == before.events


def test_the_same_unassign_again_returns_the_stored_result_and_emits_nothing(backend):
    org = backend.new_org()
    device = given_a_device_owned_by(backend, org, ["a@example.com", "b@example.com"])
    body = unassign_body(org, device, ["a@example.com"])
    first = deliver(backend, body, c.UNASSIGN_DEVICE)
    again = deliver(backend, dict(body), c.UNASSIGN_DEVICE)
    assert again.replayed and again.result == first.result
    assert [e["type"] for e in backend.state(org).events].count("device.unassigned") == 1


def test_unassigning_the_last_owner_leaves_the_device_without_owners(backend):
    org = backend.new_org()
    device = given_a_device_owned_by(backend, org, ["a@example.com"])
    unassign(backend, org, device, ["a@example.com"])
    state = backend.state(org)
    assert device in state.devices and state.owners == set()
    assert state.events[-1]["data"]["owners"] == []


def test_assigning_again_after_unassigning_restores_the_owner_with_an_event(backend):
    org = backend.new_org()
    device = given_a_device_owned_by(backend, org, ["a@example.com", "b@example.com"])
    unassign(backend, org, device, ["a@example.com"])
    outcome = deliver(backend, assign_body(org, device, ["a@example.com"]))
    assert outcome.result["customers"][0]["alreadyAssigned"] is False
    event = backend.state(org).events[-1]
    assert event["type"] == "device.assigned"
    assert [o["email"] for o in event["data"]["ownersAdded"]] == ["a@example.com"]
    assert sorted(o["email"] for o in event["data"]["owners"]) == [
        "a@example.com",
        "b@example.com",
    ]


def test_device_assigned_carries_the_owners_added_and_the_full_owner_list(backend):
    org = backend.new_org()
    device = given_a_device_owned_by(backend, org, ["a@example.com"])
    deliver(backend, assign_body(org, device, ["a@example.com", "b@example.com"]))
    data = backend.state(org).events[-1]["data"]
    assert [o["email"] for o in data["ownersAdded"]] == ["b@example.com"]
    assert [o["email"] for o in data["owners"]] == ["a@example.com", "b@example.com"]


def test_unassign_in_one_organization_does_not_touch_another(backend):
    org, other = backend.new_org(), backend.new_org()
    device = given_a_device_owned_by(backend, org, ["a@example.com"])
    outcome = unassign(backend, other, device, ["a@example.com"])
    assert outcome.result["statusCode"] == 404
    assert backend.state(org).owners == {(device, "a@example.com")}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"customerEmails": "a@example.com"}, "customerEmails: Input should be a valid list"),
        ({"customerEmails": []}, "customerEmails: List should have at least 1 item"),
        (
            {"customerEmails": [f"u{i}@example.com" for i in range(c.MAX_EMAILS_PER_COMMAND + 1)]},
            "customerEmails: List should have at most 100 items",
        ),
        ({"deviceIdentifier": "x" * 129}, "deviceIdentifier: String should have at most 128"),
        ({"deviceIdentifier": 42}, "deviceIdentifier: Input should be a valid string"),
        ({"autoCreateDevice": True}, "autoCreateDevice: unknown field"),
        ({"deviceIdentifier": None}, "deviceIdentifier: Input should be a valid string"),
    ],
)
def test_malformed_unassign_commands_are_400s_that_name_the_field(backend, change, expected):
    org = backend.new_org()
    device = given_a_device_owned_by(backend, org, ["a@example.com"])
    body = {**unassign_body(org, device, ["a@example.com"]), **change}
    outcome = deliver(backend, body, c.UNASSIGN_DEVICE)
    assert outcome.result["statusCode"] == 400
    assert any(m.startswith(expected) for m in outcome.result["errorMessages"]), outcome.result
    assert backend.state(org).owners == {(device, "a@example.com")}


def test_a_missing_device_identifier_is_a_400(backend):
    org = backend.new_org()
    body = unassign_body(org, "SN", ["a@example.com"])
    del body["deviceIdentifier"]
    outcome = deliver(backend, body, c.UNASSIGN_DEVICE)
    assert outcome.result["statusCode"] == 400
    assert "deviceIdentifier: Field required" in outcome.result["errorMessages"]
