"""Access events read as one line to a person, like device events do."""

from __future__ import annotations

from datetime import UTC, datetime

from models.events import CloudEvent
from subscribers.describe import describe_event


def event(kind: str, **data) -> CloudEvent:
    return CloudEvent(
        id="e",
        type=kind,
        subject="SN-1",
        time=datetime(2026, 1, 1, tzinfo=UTC),
        correlationid="r-1",
        organizationid="acme",
        data=data,
    )


def test_a_grant_names_the_user_the_level_the_schedule_and_the_granter():
    line = describe_event(
        event(
            "access.granted",
            accessId=3,
            userEmail="joe@example.com",
            accessLevel=0,
            weekDays=7,
            dayStartTime="08:00:00",
            dayEndTime="20:00:00",
            timeZone="UTC",
            grantedBy="alice@example.com",
        )
    )
    assert "access 3 of joe@example.com (guest): weekDays 7, 08:00:00-20:00:00 UTC" in line
    assert line.endswith("granted by alice@example.com  [acme, r-1]")


def test_a_permanent_admin_grant_says_permanent():
    line = describe_event(
        event(
            "access.granted",
            accessId=1,
            userEmail="j@example.com",
            accessLevel=1,
            grantedBy="a@example.com",
        )
    )
    assert "(admin): permanent" in line


def test_an_update_lists_the_changed_fields_and_a_revocation_its_author():
    updated = describe_event(
        event(
            "access.updated",
            accessId=2,
            userEmail="j@example.com",
            accessLevel=0,
            changedFields=["endDate"],
            endDate="2027-01-01T00:00:00Z",
            updatedBy="a@example.com",
        )
    )
    assert "changed endDate: until 2027-01-01T00:00:00Z, by a@example.com" in updated
    revoked = describe_event(
        event("access.revoked", accessId=2, userEmail="j@example.com", revokedBy="a@example.com")
    )
    assert "access 2 of j@example.com revoked by a@example.com" in revoked
