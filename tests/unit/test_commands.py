"""The wire schema of AssignDevice: strict types, camelCase only, bounded sizes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from models.commands import AssignDevice

VALID = {
    "requestId": "r-1",
    "organizationId": "acme",
    "deviceIdentifier": " SN-1 ",
    "customerEmails": ["a@example.com"],
}


def validate(body):
    return AssignDevice.model_validate(body, by_alias=True, by_name=False)


def test_a_valid_command_parses_and_trims_the_identifier():
    command = validate(VALID)
    assert command.device_identifier == "SN-1"
    assert command.auto_create_device is False
    assert command.to_wire() == {**VALID, "deviceIdentifier": "SN-1"}


@pytest.mark.parametrize(
    "change",
    [
        {"requestId": ""},
        {"requestId": "r" * 256},
        {"organizationId": "has space"},
        {"customerEmails": "a@example.com"},
        {"autoCreateDevice": 1},
        {"deviceType": 5},
        {"deviceIdentifier": 12345},
        {"extra": True},
        {"signature": {"keyId": "k", "value": "zz"}},
    ],
)
def test_wrong_types_unknown_fields_and_oversized_values_are_refused(change):
    with pytest.raises(ValidationError):
        validate({**VALID, **change})


def test_snake_case_keys_are_not_accepted_on_the_wire():
    body = dict(VALID)
    body["device_identifier"] = body.pop("deviceIdentifier")
    with pytest.raises(ValidationError):
        validate(body)


def test_json_schema_uses_wire_names():
    schema = AssignDevice.model_json_schema(by_alias=True)
    assert {"requestId", "organizationId", "deviceIdentifier", "customerEmails"} <= set(
        schema["required"]
    )
    assert schema["additionalProperties"] is False
