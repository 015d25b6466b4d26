"""Every assign_device rule of the contract, on the fake, on SQLite and on PostgreSQL."""

from __future__ import annotations

from tests.helpers import assign_body, deliver, new_device


def test_assigning_a_new_device_with_auto_create_creates_device_customers_and_owners(backend):
    # Given an organization with nothing in it
    org, device = backend.new_org(), new_device()
    # When a device is assigned to two customers with autoCreateDevice
    outcome = deliver(
        backend,
        assign_body(
            org,
            device,
            ["a@example.com", "b@example.com"],
            autoCreateDevice=True,
            deviceType="Thermostat",
        ),
    )
    # Then the device, both customers and both owner rows exist
    result = outcome.result
    assert result["success"] is True
    assert result["statusCode"] == 200
    assert result["message"] == "Successfully assigned device to 2 customer(s)"
    assert result["deviceCreated"] is True
    assert result["deviceIdentifier"] == device
    assert [
        (c["email"], c["name"], c["created"], c["alreadyAssigned"]) for c in result["customers"]
    ] == [
        ("a@example.com", "a", True, False),
        ("b@example.com", "b", True, False),
    ]
    state = backend.state(org)
    assert state.devices == {device: "Thermostat"}
    assert state.owners == {(device, "a@example.com"), (device, "b@example.com")}


def test_emails_are_trimmed_lowercased_and_invalid_ones_skipped(backend):
    org, device = backend.new_org(), new_device()
    outcome = deliver(
        backend,
        assign_body(
            org,
            device,
            ["  Alice@Example.COM ", "not-an-email", "x@@y", "alice@example.com"],
            autoCreateDevice=True,
            deviceType="Sensor",
        ),
    )
    assert [c["email"] for c in outcome.result["customers"]] == ["alice@example.com"]
    assert outcome.result["skippedEmails"] == ["not-an-email", "x@@y"]
    assert backend.state(org).customers == {"alice@example.com": "alice"}


def test_no_valid_email_is_a_400_and_changes_nothing(backend):
    org, device = backend.new_org(), new_device()
    outcome = deliver(
        backend,
        assign_body(org, device, ["nope", " "], autoCreateDevice=True, deviceType="Sensor"),
    )
    assert outcome.result["statusCode"] == 400
    assert outcome.result["errorCode"] == "INVALID_REQUEST"
    assert "customerEmails" in outcome.result["errorMessages"][0]
    state = backend.state(org)
    assert state.devices == {} and state.customers == {} and state.events == []


def test_unknown_device_without_auto_create_is_a_404_and_changes_nothing(backend):
    org = backend.new_org()
    outcome = deliver(backend, assign_body(org, "SN-missing", ["a@example.com"]))
    assert outcome.result["statusCode"] == 404
    assert outcome.result["errorCode"] == "DEVICE_NOT_FOUND"
    assert backend.state(org).customers == {}


def test_auto_create_without_device_type_is_a_400(backend):
    org = backend.new_org()
    outcome = deliver(
        backend, assign_body(org, new_device(), ["a@example.com"], autoCreateDevice=True)
    )
    assert outcome.result["statusCode"] == 400
    assert any("deviceType" in m for m in outcome.result["errorMessages"])


def test_device_identifier_is_trimmed(backend):
    org, device = backend.new_org(), new_device()
    deliver(
        backend,
        assign_body(org, f"  {device}\t", ["a@example.com"], autoCreateDevice=True, deviceType="T"),
    )
    assert list(backend.state(org).devices) == [device]


def test_a_device_can_have_many_owners_and_reassigning_an_owner_creates_nothing(backend):
    # Given a device owned by a
    org, device = backend.new_org(), new_device()
    deliver(
        backend, assign_body(org, device, ["a@example.com"], autoCreateDevice=True, deviceType="T")
    )
    events_before = len(backend.state(org).events)
    # When it is assigned to a (again) and b
    outcome = deliver(backend, assign_body(org, device, ["a@example.com", "b@example.com"]))
    # Then a is already assigned, b is new, and one event names only b as added
    customers = {c["email"]: c for c in outcome.result["customers"]}
    assert customers["a@example.com"]["alreadyAssigned"] is True
    assert customers["a@example.com"]["created"] is False
    assert customers["b@example.com"]["alreadyAssigned"] is False
    assert outcome.result["deviceCreated"] is False
    state = backend.state(org)
    assert state.owner_rows == 2
    assert len(state.events) == events_before + 1
    data = state.events[-1]["data"]
    assert [o["email"] for o in data["ownersAdded"]] == ["b@example.com"]
    assert [o["email"] for o in data["owners"]] == ["a@example.com", "b@example.com"]


def test_reassigning_only_existing_owners_emits_no_event(backend):
    org, device = backend.new_org(), new_device()
    deliver(
        backend, assign_body(org, device, ["a@example.com"], autoCreateDevice=True, deviceType="T")
    )
    outcome = deliver(backend, assign_body(org, device, ["A@example.com"]))
    assert outcome.result["customers"][0]["alreadyAssigned"] is True
    assert len(backend.state(org).events) == 1


def test_existing_customers_are_reused_across_devices(backend):
    org = backend.new_org()
    first, second = new_device(), new_device()
    deliver(
        backend, assign_body(org, first, ["a@example.com"], autoCreateDevice=True, deviceType="T")
    )
    outcome = deliver(
        backend, assign_body(org, second, ["a@example.com"], autoCreateDevice=True, deviceType="T")
    )
    assert outcome.result["customers"][0]["created"] is False
    assert len(backend.state(org).customers) == 1


def test_device_assigned_event_is_a_cloud_event_correlated_with_the_command(backend):
    org, device = backend.new_org(), new_device()
    body = assign_body(org, device, ["a@example.com"], autoCreateDevice=True, deviceType="T")
    deliver(backend, body)
    (event,) = backend.state(org).events
    assert event["specversion"] == "1.0"
    assert event["type"] == "device.assigned"
    assert event["subject"] == device
    assert event["correlationid"] == body["requestId"]
    assert event["organizationid"] == org
    assert event["datacontenttype"] == "application/json"
    assert event["data"]["deviceCreated"] is True
    assert event["id"] and event["time"] and event["source"]
