"""The wire schema of the access commands: the API's examples parse, bad input is refused
with a message that names the field, and update tells an absent field from a null."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, time

import pytest
from pydantic import ValidationError

from models.access_commands import GrantAccess, RevokeAccess, UpdateAccess
from models.errors import Rejected
from producers.client import Client
from tasks.pipeline import validation_messages

BASE = {
    "requestId": "r-1",
    "organizationId": "acme",
    "deviceIdentifier": "SN-1",
    "grantedBy": "owner@example.com",
    "userEmail": "john@example.com",
    "accessLevel": 0,
}

# The three examples of the "Create device access" page (with the missing commas put back).
SEED_EXAMPLES = {
    "permanent admin": {
        "accessLevel": 1,
        "weekDays": None,
        "dayStartTime": None,
        "dayEndTime": None,
        "startDate": None,
        "endDate": None,
        "remoteAccessDisabled": False,
    },
    "guest time restricted": {
        "accessLevel": 0,
        "weekDays": None,
        "dayStartTime": None,
        "dayEndTime": None,
        "startDate": "2020-12-14T08:09:57.781Z",
        "endDate": "2020-12-31T08:10:57.781Z",
        "remoteAccessDisabled": False,
    },
    "guest custom": {
        "accessLevel": 0,
        "weekDays": 7,
        "dayStartTime": "2020-12-01T08:00:00.000Z",
        "dayEndTime": "2020-12-31T20:00:00.000Z",
        "startDate": "2020-12-01T08:09:57.781Z",
        "endDate": "2020-12-31T23:10:57.781Z",
        "remoteAccessDisabled": False,
    },
}


def grant(**changes):
    return GrantAccess.model_validate({**BASE, **changes}, by_alias=True, by_name=False)


def problems(model, body) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body, by_alias=True, by_name=False)
    return validation_messages(caught.value)


@pytest.mark.parametrize("name", SEED_EXAMPLES)
def test_the_api_examples_parse(name):
    command = grant(**SEED_EXAMPLES[name])
    assert command.access_level == SEED_EXAMPLES[name]["accessLevel"]
    assert command.time_zone == "UTC"


def test_the_custom_example_keeps_the_clock_and_drops_the_dates_of_its_times():
    command = grant(**SEED_EXAMPLES["guest custom"])
    assert (command.day_start_time, command.day_end_time) == (time(8), time(20))
    assert command.start_date == datetime(2020, 12, 1, 8, 9, 57, 781000, tzinfo=UTC)
    assert command.week_days == 7


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("08:00", time(8)),
        ("08:00:30", time(8, 0, 30)),
        ("23:59:59.5", time(23, 59, 59, 500000)),
        ("2020-12-01T08:00:00.000Z", time(8)),
        ("2020-12-01T08:00:00+05:00", time(8)),  # the clock as written; the offset ignored
        (" 07:15 ", time(7, 15)),
    ],
)
def test_times_of_day_accept_clock_readings_and_full_datetimes(given, expected):
    command = grant(dayStartTime=given, dayEndTime="23:59:59.9")
    assert command.day_start_time == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2020-12-14T08:09:57.781Z", datetime(2020, 12, 14, 8, 9, 57, 781000, tzinfo=UTC)),
        ("2020-12-14T10:09:57+02:00", datetime(2020, 12, 14, 8, 9, 57, tzinfo=UTC)),
        ("2020-12-14T08:09:57", datetime(2020, 12, 14, 8, 9, 57, tzinfo=UTC)),  # naive = UTC
        ("2020-12-14", datetime(2020, 12, 14, tzinfo=UTC)),
    ],
)
def test_dates_are_iso_8601_and_kept_in_utc(given, expected):
    assert grant(startDate=given).start_date == expected


def test_weekdays_may_be_given_by_name():
    assert grant(weekDays="Monday, Tuesday, Wednesday").week_days == 7
    assert grant(weekDays="sat,sun").week_days == 96


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"weekDays": 0}, "weekDays: must be a weekday mask from 1 (Monday) to 127"),
        ({"weekDays": 128}, "weekDays: must be a weekday mask from 1 (Monday) to 127"),
        ({"weekDays": "someday"}, "weekDays: unknown weekday 'someday'"),
        ({"weekDays": 7.0}, "weekDays: Input should be a valid integer"),
        (
            {"startDate": "2020-12-31T00:00:00Z", "endDate": "2020-12-01T00:00:00Z"},
            "endDate: must be after startDate (2020-12-31T00:00:00Z)",
        ),
        (
            {"startDate": "2020-12-01T00:00:00Z", "endDate": "2020-12-01T00:00:00Z"},
            "endDate: must be after startDate",
        ),
        ({"endDate": "next tuesday"}, "endDate: 'next tuesday' is not an ISO 8601 date-time"),
        ({"startDate": 1607933397}, "startDate: must be an ISO 8601 date-time string"),
        ({"timeZone": "Mars/Olympus_Mons"}, "timeZone: 'Mars/Olympus_Mons' is not an IANA"),
        ({"timeZone": "x" * 65}, "timeZone: String should have at most 64 characters"),
        ({"dayStartTime": "08:00"}, "command: dayEndTime required when dayStartTime is given"),
        ({"dayEndTime": "08:00"}, "command: dayStartTime required when dayEndTime is given"),
        ({"dayStartTime": "08:00", "dayEndTime": "08:00:00"}, "dayEndTime must differ"),
        ({"dayStartTime": "25:00", "dayEndTime": "08:00"}, "dayStartTime: '25:00' is not a time"),
        ({"dayStartTime": 800, "dayEndTime": "09:00"}, "dayStartTime: must be a time of day"),
        ({"accessLevel": 2}, "accessLevel: cannot grant the owner level (2)"),
        ({"accessLevel": 7}, "accessLevel: must be 0 (guest) or 1 (admin), got 7"),
        ({"accessLevel": "1"}, "accessLevel: Input should be a valid integer"),
        ({"accessLevel": True}, "accessLevel: Input should be a valid integer"),
        ({"remoteAccessDisabled": "no"}, "remoteAccessDisabled: Input should be a valid boolean"),
        ({"userEmail": "john"}, "userEmail: 'john' is not a valid e-mail address"),
        ({"grantedBy": "a" * 400 + "@x.org"}, "grantedBy: String should have at most 320"),
        ({"startDate": "2" * 100}, "startDate: at most 64 characters"),
        ({"userEmail": ["john@example.com"]}, "userEmail: Input should be a valid string"),
        ({"shareWith": "x"}, "shareWith: unknown field"),
    ],
)
def test_bad_grants_are_refused_naming_the_field(change, expected):
    messages = problems(GrantAccess, {**BASE, **change})
    assert any(expected in m for m in messages), messages


@pytest.mark.parametrize("missing", ["deviceIdentifier", "grantedBy", "userEmail", "accessLevel"])
def test_a_grant_without_a_required_field_is_refused(missing):
    body = {k: v for k, v in BASE.items() if k != missing}
    assert f"{missing}: Field required" in problems(GrantAccess, body)


def test_a_grant_goes_on_the_wire_normalized():
    command = grant(
        userEmail=" John@Example.COM ",
        weekDays="mon",
        dayStartTime="2020-01-01T22:00Z",
        dayEndTime="06:00",
        timeZone="Europe/Berlin",
    )
    assert command.to_wire() == {
        **BASE,
        "userEmail": "john@example.com",
        "weekDays": 1,
        "dayStartTime": "22:00:00",
        "dayEndTime": "06:00:00",
        "timeZone": "Europe/Berlin",
    }


UPDATE = {
    "requestId": "r-2",
    "organizationId": "acme",
    "deviceIdentifier": "SN-1",
    "accessId": 7,
    "updatedBy": "owner@example.com",
}


def test_an_update_tells_absent_fields_from_explicit_nulls():
    command = UpdateAccess.model_validate(
        {**UPDATE, "endDate": None, "weekDays": 31}, by_alias=True, by_name=False
    )
    assert command.changes() == {"week_days": 31, "end_date": None}
    assert command.to_wire() == {**UPDATE, "weekDays": 31, "endDate": None}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, "command: nothing to change"),
        ({"accessLevel": None}, "accessLevel: cannot be cleared (null)"),
        ({"remoteAccessDisabled": None}, "remoteAccessDisabled: cannot be cleared (null)"),
        ({"accessLevel": 2}, "accessLevel: cannot grant the owner level (2)"),
        ({"weekDays": 0}, "weekDays: must be a weekday mask"),
        ({"accessId": 0, "weekDays": 1}, "accessId: Input should be greater than or equal to 1"),
        ({"accessId": 2**64, "weekDays": 1}, "accessId: Input should be less than or equal"),
        ({"accessId": "7", "weekDays": 1}, "accessId: Input should be a valid integer"),
        ({"timeZone": "Nowhere", "weekDays": 1}, "timeZone: 'Nowhere' is not an IANA"),
    ],
)
def test_bad_updates_are_refused_naming_the_field(change, expected):
    messages = problems(UpdateAccess, {**UPDATE, **change})
    assert any(expected in m for m in messages), messages


@pytest.mark.parametrize(
    "body",
    [
        {"requestId": "r", "organizationId": "acme", "deviceIdentifier": "SN-1", "accessId": 1},
        {"requestId": "r", "organizationId": "acme", "accessId": 1, "revokedBy": "a@b.org"},
        {"requestId": "r", "organizationId": "acme", "deviceIdentifier": "SN-1",
         "accessId": "1", "revokedBy": "a@b.org"},
    ],
)  # fmt: skip
def test_a_revoke_needs_device_access_and_actor(body):
    assert problems(RevokeAccess, body)


# -- the client validates locally -------------------------------------------------------


@pytest.fixture
def client():
    with Client("memory://", organization="acme", queue=f"custody.t-{uuid.uuid4().hex}") as c:
        yield c


def published(client: Client) -> list[dict]:
    channel = client._connection.default_channel
    commands = []
    while (message := channel.basic_get(client._queue.name)) is not None:
        args, _kwargs, _embed = message.decode()
        commands.append((message.headers["task"], args[0]))
    return commands


def test_the_client_publishes_grant_update_and_revoke(client):
    client.grant_access(
        "SN-1", "john@example.com", granted_by="owner@example.com", week_days="mon,tue",
        day_start_time="08:00", day_end_time="20:00", request_id="g-1",
    )  # fmt: skip
    client.update_access("SN-1", 5, updated_by="owner@example.com", end_date=None, request_id="u")
    client.revoke_access("SN-1", 5, revoked_by="owner@example.com", request_id="v")
    (g, u, v) = published(client)
    assert g == (
        "custody.grant_access",
        {
            "requestId": "g-1",
            "organizationId": "acme",
            "deviceIdentifier": "SN-1",
            "grantedBy": "owner@example.com",
            "userEmail": "john@example.com",
            "accessLevel": 0,
            "weekDays": 3,
            "dayStartTime": "08:00:00",
            "dayEndTime": "20:00:00",
        },
    )
    assert u == (
        "custody.update_access",
        {
            "requestId": "u",
            "organizationId": "acme",
            "deviceIdentifier": "SN-1",
            "accessId": 5,
            "updatedBy": "owner@example.com",
            "endDate": None,
        },
    )
    assert v[0] == "custody.revoke_access" and v[1]["accessId"] == 5


def grant_with(**fields):
    return lambda c: c.grant_access("SN-1", "j@example.com", granted_by="o@x.org", **fields)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (grant_with(week_days=0), "weekDays: must be a weekday mask"),
        (grant_with(access_level=2), "accessLevel: cannot grant the owner level"),
        (grant_with(time_zone="Atlantis"), "timeZone: "),
        (grant_with(day_start_time="08:00"), "dayEndTime"),
        (lambda c: c.grant_access("SN-1", "not-an-email", granted_by="o@x.org"), "userEmail: "),
        (lambda c: c.update_access("SN-1", 1, updated_by="o@x.org"), "nothing to change"),
        (lambda c: c.revoke_access("SN-1", -1, revoked_by="o@x.org"), "accessId: "),
    ],
)
def test_an_invalid_access_command_raises_and_publishes_nothing(client, call, field):
    with pytest.raises(Rejected) as caught:
        call(client)
    assert caught.value.status_code == 400
    assert field in " ".join(caught.value.messages)
    assert published(client) == []


def test_the_seed_bodies_survive_a_json_round_trip():
    for body in SEED_EXAMPLES.values():
        wire = grant(**json.loads(json.dumps(body))).to_wire()
        again = {k: v for k, v in wire.items() if k not in ("requestId", "organizationId")}
        assert grant(**again).to_wire() == wire
