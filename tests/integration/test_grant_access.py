"""Every grant_access rule of the contract, on the fake, on SQLite and on PostgreSQL."""

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
    without_records,
)
from tests.helpers import assign_body, deliver, new_device

JOHN = "john@example.com"
PAST = {"startDate": "2020-12-14T08:09:57.781Z", "endDate": "2020-12-31T08:10:57.781Z"}


def test_an_owner_grants_a_permanent_admin_access_in_the_seed_shape(backend):
    # Given a device owned by OWNER and a user who is not a customer yet
    org, device = owned_device(backend)
    # When the owner grants the user permanent admin access
    body = grant_body(
        org, device, JOHN, level=1, weekDays=None, dayStartTime=None, dayEndTime=None,
        startDate=None, endDate=None, remoteAccessDisabled=False,
    )  # fmt: skip
    outcome = grant(backend, body)
    # Then the result has the API's shape and the access is stored
    access_id = outcome.result["result"]["id"]
    assert outcome.result == {
        "success": True,
        "statusCode": 201,
        "result": {"id": access_id, "sharedUserDisplayName": "john"},
        "errorMessages": [],
    }
    state = backend.state(org)
    assert state.customers[JOHN] == "john"
    access = state.accesses[access_id]
    assert (access["device"], access["user"], access["grantedBy"]) == (device, JOHN, OWNER)
    assert (access["level"], access["remoteAccessDisabled"]) == (1, False)
    assert access["weekDays"] is access["startDate"] is access["dayStartTime"] is None
    assert access["timeZone"] == "UTC" and access["closedAt"] is None


def test_the_grant_is_announced_by_an_access_granted_event(backend):
    org, device = owned_device(backend)
    body = grant_body(
        org, device, JOHN, weekDays=7, dayStartTime="2020-12-01T08:00:00.000Z",
        dayEndTime="2020-12-31T20:00:00.000Z", timeZone="Europe/Berlin", **PAST,
    )  # fmt: skip
    access_id = grant(backend, body).result["result"]["id"]
    event = backend.state(org).events[-1]
    assert event["type"] == "access.granted"
    assert event["subject"] == device
    assert event["correlationid"] == body["requestId"]
    data = event["data"]
    assert data["accessId"] == access_id and data["userEmail"] == JOHN
    assert data["grantedBy"] == OWNER and data["accessLevel"] == 0
    assert (data["weekDays"], data["dayStartTime"], data["dayEndTime"]) == (
        7,
        "08:00:00",
        "20:00:00",
    )
    assert data["startDate"] == "2020-12-14T08:09:57.781000Z"
    assert data["timeZone"] == "Europe/Berlin" and data["replacedAccessId"] is None


def test_the_schedule_is_stored_in_utc_and_as_wall_clock_times(backend):
    org, device = owned_device(backend)
    access_id = granted(
        backend, org, device, JOHN, startDate="2030-01-01T10:00:00+02:00",
        dayStartTime="22:00", dayEndTime="06:00:30", timeZone="Europe/Berlin",
    )  # fmt: skip
    access = backend.state(org).accesses[access_id]
    assert access["startDate"] == datetime(2030, 1, 1, 8, tzinfo=UTC)
    assert (access["dayStartTime"], access["dayEndTime"]) == (time(22), time(6, 0, 30))


def test_the_same_grant_again_answers_the_same_access_and_writes_nothing(backend):
    # Given an active access
    org, device = owned_device(backend)
    body = grant_body(
        org, device, JOHN, level=1, weekDays=31, dayStartTime="08:00", dayEndTime="18:00"
    )
    first = grant(backend, body)
    before = without_records(backend.state(org))
    # When the very same grant comes again under a new requestId
    again = grant(backend, {**body, "requestId": body["requestId"] + "-again"})
    # Then it succeeds with the same id, and no access, customer or event was written
    assert again.success and again.replayed is False
    assert again.result["result"] == first.result["result"]
    assert again.result["statusCode"] == 200
    assert without_records(backend.state(org)) == before


def test_a_different_grant_while_one_is_active_is_a_409_and_changes_nothing(backend):
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOHN, level=0)
    before = without_records(backend.state(org))
    outcome = grant(backend, grant_body(org, device, JOHN, level=1))
    assert outcome.result["statusCode"] == 409
    assert outcome.result["errorCode"] == "ACCESS_EXISTS"
    message = outcome.result["errorMessages"][0]
    assert "already exists" in message and str(access_id) in message and "update_access" in message
    assert without_records(backend.state(org)) == before


def test_an_expired_access_does_not_block_a_new_grant_and_is_closed_by_it(backend):
    # Given an access whose endDate has passed
    org, device = owned_device(backend)
    old = granted(backend, org, device, JOHN, **PAST)
    # When the user is granted again, even with the very same terms
    outcome = grant(backend, grant_body(org, device, JOHN, **PAST))
    # Then a new access is created and the expired one closed (not revoked) in the same step
    new = outcome.result["result"]["id"]
    assert outcome.result["statusCode"] == 201 and new != old
    state = backend.state(org)
    assert state.open_accesses(device, JOHN) == [new]
    assert state.accesses[old]["closedAt"] is not None
    assert state.accesses[old]["revokedAt"] is None
    assert state.events[-1]["data"]["replacedAccessId"] == old


def test_a_revoked_access_does_not_block_a_new_grant(backend):
    org, device = owned_device(backend)
    old = granted(backend, org, device, JOHN, level=1)
    assert revoke(backend, revoke_body(org, device, old)).success
    outcome = grant(backend, grant_body(org, device, JOHN, level=1))
    assert outcome.result["statusCode"] == 201
    assert backend.state(org).open_accesses(device, JOHN) == [outcome.result["result"]["id"]]
    assert backend.state(org).events[-1]["data"]["replacedAccessId"] is None


def test_an_access_that_has_not_started_yet_is_active_and_blocks_another_grant(backend):
    org, device = owned_device(backend)
    granted(backend, org, device, JOHN, startDate="2099-01-01T00:00:00Z")
    assert grant(backend, grant_body(org, device, JOHN)).result["statusCode"] == 409


def test_an_existing_customer_is_reused_and_keeps_their_name(backend):
    org, device = owned_device(backend)
    other = new_device()
    deliver(backend, assign_body(org, other, [JOHN], autoCreateDevice=True, deviceType="Lock"))
    outcome = grant(backend, grant_body(org, device, " John@Example.com "))
    assert outcome.result["result"]["sharedUserDisplayName"] == "john"
    assert list(backend.state(org).customers).count(JOHN) == 1


# -- who may grant ------------------------------------------------------------------------


ADMIN, GUEST = "admin@example.com", "guest@example.com"


@pytest.mark.parametrize("level", [0, 1])
def test_an_admin_may_grant_guest_and_admin_access(backend, level):
    org, device = owned_device(backend)
    granted(backend, org, device, ADMIN, level=1)
    outcome = grant(backend, grant_body(org, device, JOHN, by=ADMIN, level=level))
    assert outcome.result["statusCode"] == 201
    assert backend.state(org).accesses[outcome.result["result"]["id"]]["grantedBy"] == ADMIN


@pytest.mark.parametrize(
    ("setup", "why"),
    [
        ("guest", "a guest access confers no authority"),
        ("unknown", "an address that is no customer at all"),
        ("revoked-admin", "an admin whose access was revoked"),
        ("expired-admin", "an admin whose access expired"),
        ("future-admin", "an admin whose access has not started"),
        ("owner-elsewhere", "the owner of another device"),
    ],
)
def test_only_an_owner_or_an_admin_in_force_may_grant(backend, setup, why):
    # Given someone who is neither an owner nor an administrator in force of the device
    org, device = owned_device(backend)
    actor = "actor@example.com"
    if setup == "guest":
        granted(backend, org, device, actor, level=0)
    elif setup == "revoked-admin":
        access_id = granted(backend, org, device, actor, level=1)
        revoke(backend, revoke_body(org, device, access_id))
    elif setup == "expired-admin":
        granted(backend, org, device, actor, level=1, **PAST)
    elif setup == "future-admin":
        granted(backend, org, device, actor, level=1, startDate="2099-01-01T00:00:00Z")
    elif setup == "owner-elsewhere":
        elsewhere = assign_body(org, new_device(), [actor], autoCreateDevice=True, deviceType="T")
        assert deliver(backend, elsewhere).success
    before = without_records(backend.state(org))
    # When they grant a guest access
    outcome = grant(backend, grant_body(org, device, JOHN, by=actor))
    # Then it is forbidden and changes nothing
    assert outcome.result["statusCode"] == 403, why
    assert outcome.result["errorCode"] == "FORBIDDEN"
    assert "neither an owner nor an administrator" in outcome.result["errorMessages"][0]
    assert without_records(backend.state(org)) == before


@pytest.mark.parametrize("by", [OWNER, " Owner@Example.COM "])
def test_nobody_grants_to_themselves(backend, by):
    org, device = owned_device(backend)
    outcome = grant(backend, grant_body(org, device, OWNER, by=by))
    assert outcome.result["statusCode"] == 400
    assert outcome.result["errorMessages"] == [
        f"userEmail: cannot grant access to yourself ({OWNER})"
    ]


def test_an_admin_cannot_grant_to_themselves_either(backend):
    org, device = owned_device(backend)
    granted(backend, org, device, ADMIN, level=1)
    outcome = grant(backend, grant_body(org, device, ADMIN, by=ADMIN, level=0))
    assert outcome.result["statusCode"] == 400


def test_granting_on_an_unknown_device_is_a_404(backend):
    org, _ = owned_device(backend)
    outcome = grant(backend, grant_body(org, "SN-nowhere", JOHN))
    assert outcome.result["statusCode"] == 404
    assert outcome.result["errorCode"] == "DEVICE_NOT_FOUND"
    assert JOHN not in backend.state(org).customers


def test_a_device_of_another_organization_is_unknown(backend):
    _, device = owned_device(backend)
    other_org, _ = owned_device(backend)
    assert grant(backend, grant_body(other_org, device, JOHN)).result["statusCode"] == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"weekDays": 0}, "weekDays"),
        ({"weekDays": 128}, "weekDays"),
        ({"startDate": "2021-01-02T00:00:00Z", "endDate": "2021-01-01T00:00:00Z"}, "endDate"),
        ({"timeZone": "Europe/Atlantis"}, "timeZone"),
        ({"dayStartTime": "08:00"}, "dayEndTime"),
        ({"dayEndTime": "08:00"}, "dayStartTime"),
        ({"accessLevel": 2}, "accessLevel"),
        ({"accessLevel": 5}, "accessLevel"),
        ({"accessLevel": "admin"}, "accessLevel"),
        ({"userEmail": "john at example"}, "userEmail"),
        ({"deviceIdentifier": "x" * 129}, "deviceIdentifier"),
    ],
)
def test_a_bad_schedule_or_level_is_a_recorded_400_naming_the_field(backend, change, field):
    org, device = owned_device(backend)
    body = {**grant_body(org, device, JOHN), **change}
    before = without_records(backend.state(org))
    outcome = grant(backend, body)
    assert outcome.result["statusCode"] == 400
    assert outcome.result["errorCode"] == "INVALID_REQUEST"
    assert any(field in m for m in outcome.result["errorMessages"]), outcome.result
    assert without_records(backend.state(org)) == before
    assert backend.state(org).processed[body["requestId"]] == outcome.result


def test_a_grant_missing_its_granter_is_a_400(backend):
    org, device = owned_device(backend)
    body = grant_body(org, device, JOHN)
    del body["grantedBy"]
    outcome = grant(backend, body)
    assert outcome.result["errorMessages"] == ["grantedBy: Field required"]


# -- idempotency ----------------------------------------------------------------------------


def test_the_same_request_again_is_replayed_and_another_body_under_it_conflicts(backend):
    org, device = owned_device(backend)
    body = grant_body(org, device, JOHN)
    first = grant(backend, body)
    replay = grant(backend, dict(body))
    assert replay.replayed and replay.result == first.result
    conflict = grant(backend, {**body, "accessLevel": 1})
    assert conflict.result["errorCode"] == "IDEMPOTENCY_CONFLICT"
    assert len(backend.state(org).accesses) == 1
    assert [e["type"] for e in backend.state(org).events].count("access.granted") == 1


def test_a_rejected_grant_is_replayed_as_the_same_rejection(backend):
    org, device = owned_device(backend)
    body = grant_body(org, device, JOHN, by="nobody@example.com")
    first = grant(backend, body)
    # Even after the actor became an owner, the requestId keeps its answer
    deliver(backend, assign_body(org, device, ["nobody@example.com"]))
    again = grant(backend, dict(body))
    assert again.replayed and again.result == first.result and first.result["statusCode"] == 403
