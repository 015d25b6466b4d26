""" "May this user use this device at T?" from the stored state, and ``custody access check``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from cli.main import cli
from models import constants as c
from models.settings import Settings
from tasks.access_check import check_access
from tests.access_helpers import (
    OWNER,
    grant,
    grant_body,
    granted,
    owned_device,
    revoke,
    revoke_body,
)
from tests.backends import SqlBackend
from tests.helpers import assign_body, deliver, new_device
from worker.runtime import Runtime

JOE = "joe@example.com"
CUSTOM = {  # the API's "guest custom access" example, in Berlin time
    "weekDays": 7,
    "dayStartTime": "08:00",
    "dayEndTime": "20:00",
    "startDate": "2020-12-01T08:09:57.781Z",
    "endDate": "2020-12-31T23:10:57.781Z",
    "timeZone": "Europe/Berlin",
}


def ask(backend, org, device, email, at):
    with backend.uow() as uow:
        return check_access(uow, org, device, email, at)


def test_an_owner_is_always_allowed(backend):
    org, device = owned_device(backend)
    answer = ask(backend, org, device, " Owner@Example.com", datetime(1999, 1, 1, tzinfo=UTC))
    assert (answer.allowed, answer.role, answer.reason) == (True, "owner", "owner of the device")


def test_a_scheduled_guest_is_allowed_only_inside_the_schedule(backend):
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOE, **CUSTOM)
    inside = ask(backend, org, device, JOE, datetime(2020, 12, 2, 8, tzinfo=UTC))  # Wed 09:00
    assert inside.allowed and inside.access_id == access_id and inside.role == "guest"
    assert inside.reason == (
        f"guest access {access_id}: Wednesday 09:00 Europe/Berlin: "
        "inside the daily window 08:00-20:00 (Mon, Tue, Wed)"
    )
    saturday = ask(backend, org, device, JOE, datetime(2020, 12, 5, 9, tzinfo=UTC))
    assert not saturday.allowed and "not in weekDays" in saturday.reason
    evening = ask(backend, org, device, JOE, datetime(2020, 12, 2, 19, 30, tzinfo=UTC))
    assert not evening.allowed and "outside the daily window" in evening.reason
    later = ask(backend, org, device, JOE, datetime(2021, 1, 4, 9, tzinfo=UTC))
    assert not later.allowed and "endDate 2020-12-31T23:10:57.781000Z has passed" in later.reason


def test_a_revoked_access_denies_at_every_instant(backend):
    org, device = owned_device(backend)
    access_id = granted(backend, org, device, JOE)
    revoke(backend, revoke_body(org, device, access_id))
    answer = ask(backend, org, device, JOE, datetime(2000, 1, 1, tzinfo=UTC))
    assert not answer.allowed and answer.reason.startswith(f"access {access_id} was revoked at ")


def test_no_device_no_user_or_no_access_is_denied_with_the_reason(backend):
    # Given a device, and a customer who owns only another device
    org, device = owned_device(backend)
    other = assign_body(org, new_device(), [JOE], autoCreateDevice=True, deviceType="T")
    assert deliver(backend, other).success
    now = datetime.now(UTC)
    # Then each missing piece is named
    assert ask(backend, org, "SN-nowhere", JOE, now).reason == (
        f"device 'SN-nowhere' is not known in {org!r}"
    )
    assert ask(backend, org, device, "nobody@example.com", now).reason == (
        "nobody@example.com is not a known user"
    )
    no_access = ask(backend, org, device, JOE, now)
    assert not no_access.allowed
    assert no_access.reason == f"{JOE} has no access to device {device!r}"


# -- the command line ------------------------------------------------------------------------


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    """An embedded home with a device owned in the local organization."""
    monkeypatch.setenv("CUSTODY_HOME", str(tmp_path / "home"))
    for name in ("CUSTODY_DATABASE_URL", "CUSTODY_BROKER_URL", "CUSTODY_ORGANIZATION"):
        monkeypatch.delenv(name, raising=False)
    runtime = Runtime(Settings())
    runtime.prepare_embedded()
    backend = SqlBackend("sqlite", runtime.engine)
    org = c.LOCAL_ORGANIZATION
    deliver(backend, assign_body(org, "SN-1001", [OWNER], autoCreateDevice=True, deviceType="L"))
    yield backend
    runtime.close()


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_access_check_prints_allowed_or_denied_with_the_reason_and_exit_code(embedded):
    grant(embedded, grant_body(c.LOCAL_ORGANIZATION, "SN-1001", JOE, **CUSTOM))
    allowed = run("access", "check", "SN-1001", JOE, "--at", "2020-12-02T09:00:00+01:00")
    assert allowed.exit_code == 0
    assert allowed.output.startswith("allowed: guest access ")
    assert "Wednesday 09:00 Europe/Berlin" in allowed.output
    denied = run("access", "check", "SN-1001", JOE, "--at", "2020-12-05T09:00:00Z")
    assert denied.exit_code == 1 and denied.output.startswith("denied: ")
    owner = run("access", "check", "SN-1001", OWNER)
    assert owner.exit_code == 0 and owner.output == "allowed: owner of the device\n"


def test_access_check_prints_json_for_scripts(embedded):
    result = run("access", "check", "SN-1001", JOE, "--at", "2020-12-02T09:00:00Z", "--json")
    assert result.exit_code == 1
    assert json.loads(result.output) == {
        "deviceIdentifier": "SN-1001",
        "userEmail": JOE,
        "at": "2020-12-02T09:00:00Z",
        "allowed": False,
        "reason": f"{JOE} is not a known user",
        "role": None,
        "accessId": None,
        "remoteAccessDisabled": None,
    }


def test_access_check_refuses_an_instant_it_cannot_read(embedded):
    result = CliRunner().invoke(cli, ["access", "check", "SN-1001", JOE, "--at", "tomorrow"])
    assert result.exit_code == 2
    assert "--at" in result.output and "not an ISO 8601 date-time" in result.output
