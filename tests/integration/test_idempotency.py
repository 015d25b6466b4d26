"""The processed-commands record: same key and body → the stored result, no writes;
same key and another body → 409; malformed and unauthenticated input → recorded rejections."""

from __future__ import annotations

import pytest

from tests.helpers import assign_body, deliver, new_device


def test_the_same_command_twice_returns_the_stored_result_and_writes_nothing(backend):
    # Given a command that was applied once
    org, device = backend.new_org(), new_device()
    body = assign_body(org, device, ["a@example.com"], autoCreateDevice=True, deviceType="T")
    first = deliver(backend, body)
    before = backend.state(org)
    # When the same command is delivered again
    second = deliver(backend, dict(body))
    # Then the answer is the stored one and nothing changed
    assert second.replayed is True
    assert second.result == first.result
    assert backend.state(org) == before


def test_the_same_request_id_with_another_body_is_an_idempotency_conflict(backend):
    org, device = backend.new_org(), new_device()
    body = assign_body(org, device, ["a@example.com"], autoCreateDevice=True, deviceType="T")
    deliver(backend, body)
    before = backend.state(org)
    other = {**body, "customerEmails": ["b@example.com"]}
    outcome = deliver(backend, other)
    assert outcome.result["statusCode"] == 409
    assert outcome.result["errorCode"] == "IDEMPOTENCY_CONFLICT"
    after = backend.state(org)
    assert after.customers == before.customers
    assert after.processed == before.processed
    # And the original answer is still the one kept for that requestId
    assert after.processed[body["requestId"]]["success"] is True


def test_a_rejection_is_recorded_under_its_request_id_and_replayed(backend):
    org = backend.new_org()
    body = assign_body(org, "SN-none", ["a@example.com"])
    first = deliver(backend, body)
    assert first.result["statusCode"] == 404
    assert backend.state(org).processed[body["requestId"]] == first.result
    assert deliver(backend, body).replayed is True


def test_an_unknown_organization_is_401_and_binds_no_key(backend):
    body = assign_body("no-such-org", new_device(), ["a@example.com"])
    outcome = deliver(backend, body)
    assert outcome.result["statusCode"] == 401
    assert outcome.result["errorCode"] == "UNAUTHORIZED"
    assert backend.state("no-such-org").rejections[-1] == outcome.result


@pytest.mark.parametrize(
    ("mutation", "field"),
    [
        ({"customerEmails": "a@example.com"}, "customerEmails"),
        ({"customerEmails": []}, "customerEmails"),
        ({"customerEmails": [1, 2]}, "customerEmails.0"),
        ({"autoCreateDevice": "yes"}, "autoCreateDevice"),
        ({"deviceIdentifier": ""}, "deviceIdentifier"),
        ({"deviceIdentifier": "x" * 129}, "deviceIdentifier"),
        ({"deviceIdentifier": None}, "deviceIdentifier"),
        ({"colour": "red"}, "colour"),
        ({"customer_emails": ["a@example.com"]}, "customer_emails"),
        ({"customerEmails": ["a@example.com"] * 101}, "customerEmails"),
    ],
)
def test_schema_violations_are_recorded_400s_naming_the_field(backend, mutation, field):
    org = backend.new_org()
    body = {**assign_body(org, new_device(), ["a@example.com"]), **mutation}
    outcome = deliver(backend, body)
    assert outcome.result["statusCode"] == 400
    assert outcome.result["errorCode"] == "INVALID_REQUEST"
    assert any(m.startswith(field) for m in outcome.result["errorMessages"]), outcome.result
    state = backend.state(org)
    assert state.processed[body["requestId"]] == outcome.result
    assert state.customers == {} and state.events == []


def test_a_missing_device_identifier_is_a_400(backend):
    org = backend.new_org()
    body = assign_body(org, "x", ["a@example.com"])
    del body["deviceIdentifier"]
    outcome = deliver(backend, body)
    assert outcome.result["statusCode"] == 400
    assert "deviceIdentifier: Field required" in outcome.result["errorMessages"]


@pytest.mark.parametrize("body", [["not", "an", "object"], "text", 42, None])
def test_a_command_that_is_not_an_object_is_a_recorded_400(backend, body):
    outcome = deliver(backend, body)
    assert outcome.result["statusCode"] == 400
    assert "expected a JSON object" in outcome.result["errorMessages"][0]


def test_a_command_without_request_id_is_a_400_that_binds_nothing(backend):
    org = backend.new_org()
    body = assign_body(org, new_device(), ["a@example.com"])
    del body["requestId"]
    outcome = deliver(backend, body)
    assert outcome.result["statusCode"] == 400
    assert outcome.result["errorMessages"] == [
        "requestId: required, a string of 1 to 255 characters"
    ]
    assert backend.state(org).processed == {}
    assert backend.state(org).rejections == [outcome.result]


def test_organizations_do_not_see_each_others_devices(backend):
    # Given a device of organization A
    a, b, device = backend.new_org(), backend.new_org(), new_device()
    deliver(
        backend, assign_body(a, device, ["a@example.com"], autoCreateDevice=True, deviceType="T")
    )
    # When B assigns a device with the same identifier without auto-create
    outcome = deliver(backend, assign_body(b, device, ["x@example.com"]))
    # Then B gets 404 and A is untouched
    assert outcome.result["statusCode"] == 404
    assert backend.state(a).owners == {(device, "a@example.com")}
    assert backend.state(b).customers == {}
