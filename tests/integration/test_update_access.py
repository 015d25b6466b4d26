"""Every update_access rule: absent fields stay, explicit nulls clear, the merged schedule
is checked, and only owners and admins change accesses (fake, SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from tests.access_helpers import (
    OWNER,
    grant,
    grant_body,
    granted,
    owned_device,
    revoke,
    revoke_body,
    update,
    update_body,
    without_records,
)
from tests.helpers import assign_body, deliver, new_device

JOHN, ADMIN = "john@example.com", "admin@example.com"
SCHEDULED = {
    "weekDays": 7,
    "startDate": "2030-01-01T00:00:00Z",
    "endDate": "2030-12-31T00:00:00Z",
    "dayStartTime": "08:00",
    "dayEndTime": "20:00",
    "timeZone": "Europe/Berlin",
}


def test_absent_fields_stay_and_explicit_nulls_clear(backend):
    # Given a scheduled guest access
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOHN, **SCHEDULED)
    # When the end date and the time zone are cleared and the weekdays changed
    outcome = update(
        backend, update_body(org, device, access_id, endDate=None, timeZone=None, weekDays=31)
    )
    # Then only those changed; the rest is as granted
    assert outcome.result["statusCode"] == 200 and outcome.result["errorMessages"] == []
    result = outcome.result["result"]
    assert result["changedFields"] == ["weekDays", "endDate", "timeZone"]
    assert (result["weekDays"], result["endDate"], result["timeZone"]) == (31, None, "UTC")
    access = backend.state(org).accesses[access_id]
    assert access["startDate"] == datetime(2030, 1, 1, tzinfo=UTC)
    assert (access["dayStartTime"], access["dayEndTime"]) == (time(8), time(20))
    assert (access["endDate"], access["timeZone"], access["weekDays"]) == (None, "UTC", 31)
    assert access["updatedAt"] > access["createdAt"]


def test_an_update_is_announced_with_the_fields_it_changed(backend):
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOHN)
    body = update_body(org, device, access_id, accessLevel=1, remoteAccessDisabled=True)
    update(backend, body)
    event = backend.state(org).events[-1]
    assert event["type"] == "access.updated" and event["correlationid"] == body["requestId"]
    assert event["data"]["changedFields"] == ["accessLevel", "remoteAccessDisabled"]
    assert event["data"]["updatedBy"] == OWNER
    assert event["data"]["accessLevel"] == 1 and event["data"]["remoteAccessDisabled"] is True


def test_an_update_that_changes_nothing_writes_nothing(backend):
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOHN, **SCHEDULED)
    before = without_records(backend.state(org))
    outcome = update(
        backend, update_body(org, device, access_id, weekDays="mon,tue,wed", accessLevel=0)
    )
    assert outcome.success and outcome.result["result"]["changedFields"] == []
    assert without_records(backend.state(org)) == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"endDate": "2029-06-01T00:00:00Z"}, "endDate: must be after startDate (2030-01-01"),
        ({"dayEndTime": None}, "dayEndTime: required when dayStartTime is given"),
        ({"dayStartTime": "20:00"}, "dayEndTime: must differ from dayStartTime"),
        ({"weekDays": 0}, "weekDays: must be a weekday mask"),
        ({"timeZone": "Berlin"}, "timeZone: 'Berlin' is not an IANA time zone name"),
        ({"accessLevel": 2}, "accessLevel: cannot grant the owner level (2)"),
        ({"accessLevel": None}, "accessLevel: cannot be cleared (null)"),
    ],
)  # fmt: skip
def test_the_merged_schedule_must_still_be_a_schedule(backend, change, message):
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOHN, **SCHEDULED)
    before = without_records(backend.state(org))
    outcome = update(backend, update_body(org, device, access_id, **change))
    assert outcome.result["statusCode"] == 400
    assert any(m.startswith(message) for m in outcome.result["errorMessages"]), outcome.result
    assert without_records(backend.state(org)) == before


def test_a_window_added_to_an_access_without_one_needs_both_ends(backend):
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOHN)
    half = update(backend, update_body(org, device, access_id, dayStartTime="22:00"))
    assert half.result["errorMessages"] == [
        "dayEndTime: required when dayStartTime is given (both or neither)"
    ]
    whole = update(
        backend, update_body(org, device, access_id, dayStartTime="22:00", dayEndTime="06:00")
    )
    assert whole.result["result"]["changedFields"] == ["dayStartTime", "dayEndTime"]


def test_an_admin_may_promote_a_guest_and_demote_another_admin(backend):
    org, device = owned_device(backend)
    granted(backend, org, device, ADMIN, level=1)
    guest = granted(backend, org, device, JOHN, level=0)
    other_admin = granted(backend, org, device, "other@example.com", level=1)
    promoted = update(backend, update_body(org, device, guest, by=ADMIN, accessLevel=1))
    demoted = update(backend, update_body(org, device, other_admin, by=ADMIN, accessLevel=0))
    assert promoted.success and demoted.success
    state = backend.state(org)
    assert state.accesses[guest]["level"] == 1 and state.accesses[other_admin]["level"] == 0


@pytest.mark.parametrize("actor_level", [None, 0])
def test_a_guest_or_a_stranger_may_not_update(backend, actor_level):
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOHN)
    actor = "actor@example.com"
    if actor_level is not None:
        granted(backend, org, device, actor, level=actor_level)
    outcome = update(backend, update_body(org, device, access_id, by=actor, weekDays=1))
    assert outcome.result["statusCode"] == 403 and outcome.result["errorCode"] == "FORBIDDEN"


def test_nobody_changes_their_own_access(backend):
    org, device = owned_device(backend)
    own = granted(backend, org, device, ADMIN, level=1)
    outcome = update(backend, update_body(org, device, own, by=ADMIN, endDate=None))
    assert outcome.result["statusCode"] == 400
    assert outcome.result["errorMessages"] == [
        f"updatedBy: cannot change your own access ({ADMIN})"
    ]


def test_an_unknown_access_or_device_is_a_404(backend):
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOHN)
    _, other_device = owned_device(backend)  # in another organization
    missing = update(backend, update_body(org, device, access_id + 1000, weekDays=1))
    assert (missing.result["statusCode"], missing.result["errorCode"]) == (404, "ACCESS_NOT_FOUND")
    no_device = update(backend, update_body(org, "SN-nowhere", access_id, weekDays=1))
    assert no_device.result["errorCode"] == "DEVICE_NOT_FOUND"
    elsewhere = update(backend, update_body(org, other_device, access_id, weekDays=1))
    assert elsewhere.result["errorCode"] == "DEVICE_NOT_FOUND"


def test_an_access_is_only_found_through_its_own_device(backend):
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOHN)
    second = new_device()
    deliver(backend, assign_body(org, second, [OWNER], autoCreateDevice=True, deviceType="T"))
    outcome = update(backend, update_body(org, second, access_id, weekDays=1))
    assert outcome.result["errorCode"] == "ACCESS_NOT_FOUND"


def test_a_revoked_access_cannot_be_updated(backend):
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOHN)
    revoke(backend, revoke_body(org, device, access_id))
    outcome = update(backend, update_body(org, device, access_id, weekDays=1))
    assert outcome.result["errorCode"] == "ACCESS_NOT_FOUND"
    assert "was revoked" in outcome.result["errorMessages"][0]


def test_an_expired_access_may_be_extended(backend):
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOHN, endDate="2021-01-01T00:00:00Z")
    outcome = update(backend, update_body(org, device, access_id, endDate=None))
    assert outcome.result["result"]["changedFields"] == ["endDate"]
    # and being active again, it blocks another grant
    assert grant(backend, grant_body(org, device, JOHN, level=1)).result["statusCode"] == 409
