"""Every revoke_access rule: the access ends, is kept, and stops conferring anything
(fake, SQLite, PostgreSQL)."""

from __future__ import annotations

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

JOHN, ADMIN = "john@example.com", "admin@example.com"


def test_a_revoked_access_is_kept_marked_revoked_and_announced(backend):
    # Given an active access
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOHN, weekDays=31)
    # When the owner revokes it
    body = revoke_body(org, device, access_id)
    outcome = revoke(backend, body)
    # Then the result shows it ended, the row is kept, and an event says so
    assert outcome.result["statusCode"] == 200 and outcome.result["errorMessages"] == []
    result = outcome.result["result"]
    assert result["id"] == access_id and result["alreadyEnded"] is False
    assert result["revokedAt"] is not None and result["weekDays"] == 31
    access = backend.state(org).accesses[access_id]
    assert access["revokedAt"] is not None and access["closedAt"] == access["revokedAt"]
    event = backend.state(org).events[-1]
    assert event["type"] == "access.revoked" and event["correlationid"] == body["requestId"]
    assert event["data"]["accessId"] == access_id and event["data"]["revokedBy"] == OWNER


def test_revoking_again_answers_already_ended_and_writes_nothing(backend):
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOHN)
    first = revoke(backend, revoke_body(org, device, access_id))
    before = without_records(backend.state(org))
    again = revoke(backend, revoke_body(org, device, access_id))
    assert again.success and again.result["result"]["alreadyEnded"] is True
    assert again.result["result"]["revokedAt"] == first.result["result"]["revokedAt"]
    assert without_records(backend.state(org)) == before


def test_a_revoked_admin_can_no_longer_grant(backend):
    org, device = owned_device(backend)
    admin_access = granted(backend, org, device, ADMIN, level=1)
    assert grant(backend, grant_body(org, device, JOHN, by=ADMIN)).success
    revoke(backend, revoke_body(org, device, admin_access))
    outcome = grant(backend, grant_body(org, device, "jane@example.com", by=ADMIN))
    assert outcome.result["statusCode"] == 403


def test_an_admin_may_revoke_a_guest_another_admin_and_their_own_access(backend):
    org, device = owned_device(backend)
    own = granted(backend, org, device, ADMIN, level=1)
    guest = granted(backend, org, device, JOHN, level=0)
    other = granted(backend, org, device, "other@example.com", level=1)
    for access_id in (guest, other, own):
        assert revoke(backend, revoke_body(org, device, access_id, by=ADMIN)).success
    assert all(a["revokedAt"] for a in backend.state(org).accesses.values())


@pytest.mark.parametrize("actor_level", [None, 0])
def test_a_guest_or_a_stranger_may_not_revoke(backend, actor_level):
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOHN)
    actor = "actor@example.com"
    if actor_level is not None:
        granted(backend, org, device, actor, level=actor_level)
    before = without_records(backend.state(org))
    outcome = revoke(backend, revoke_body(org, device, access_id, by=actor))
    assert outcome.result["statusCode"] == 403 and outcome.result["errorCode"] == "FORBIDDEN"
    assert without_records(backend.state(org)) == before


def test_a_guest_may_not_revoke_their_own_access_either(backend):
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOHN, level=0)
    outcome = revoke(backend, revoke_body(org, device, access_id, by=JOHN))
    assert outcome.result["statusCode"] == 403


def test_an_unknown_access_or_device_is_a_404(backend):
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOHN)
    missing = revoke(backend, revoke_body(org, device, access_id + 1000))
    assert (missing.result["statusCode"], missing.result["errorCode"]) == (404, "ACCESS_NOT_FOUND")
    no_device = revoke(backend, revoke_body(org, "SN-nowhere", access_id))
    assert no_device.result["errorCode"] == "DEVICE_NOT_FOUND"


def test_an_access_of_another_organization_is_not_found(backend):
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOHN)
    other_org, other_device = owned_device(backend)
    outcome = revoke(backend, revoke_body(other_org, other_device, access_id))
    assert outcome.result["errorCode"] == "ACCESS_NOT_FOUND"
    assert backend.state(org).accesses[access_id]["revokedAt"] is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"accessId": "1"}, "accessId: Input should be a valid integer"),
        ({"accessId": 0}, "accessId: Input should be greater than or equal to 1"),
        ({"accessId": 2**63}, "accessId: Input should be less than or equal to"),
        ({"revokedBy": "nobody"}, "revokedBy: 'nobody' is not a valid e-mail address"),
        ({"revokedBy": None}, "revokedBy: Input should be a valid string"),
        ({"reason": "moved out"}, "reason: unknown field"),
    ],
)
def test_a_malformed_revoke_is_a_400_naming_the_field(backend, change, message):
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOHN)
    outcome = revoke(backend, {**revoke_body(org, device, access_id), **change})
    assert outcome.result["statusCode"] == 400
    assert any(m.startswith(message) for m in outcome.result["errorMessages"]), outcome.result
