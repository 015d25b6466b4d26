"""The contract files in the repository are what the models generate, and cover every
command the worker registers."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from models.contract import command_models, drifted
from tasks.registry import COMMANDS

REPO = Path(__file__).resolve().parents[2]


def test_the_contract_files_match_the_models():
    # A failure here means a model changed: run `custody contract` and commit the files.
    assert drifted(REPO) == []


def test_every_registered_command_has_a_schema_and_a_result_schema():
    assert set(command_models()) == set(COMMANDS)
    for task in COMMANDS:
        assert (REPO / "schemas/commands" / f"{task}.json").is_file()
        assert (REPO / "schemas/results" / f"{task}.json").is_file()


def test_a_documented_command_validates_and_a_bad_one_does_not():
    schema = json.loads((REPO / "schemas/commands/custody.assign_device.json").read_text())
    good = {
        "requestId": "r-1",
        "organizationId": "acme",
        "deviceIdentifier": "SN-1001",
        "customerEmails": ["alice@example.com"],
        "autoCreateDevice": True,
        "deviceType": "Thermostat",
    }
    jsonschema.validate(good, schema)
    for bad in (
        {**good, "customerEmails": "alice@example.com"},
        {**good, "colour": "red"},
        {k: v for k, v in good.items() if k != "requestId"},
    ):
        assert not jsonschema.Draft202012Validator(schema).is_valid(bad)


def test_the_asyncapi_document_names_the_queue_the_exchange_and_every_message():
    doc = json.loads((REPO / "asyncapi.json").read_text())
    assert doc["asyncapi"] == "3.0.0"
    assert doc["channels"]["commands"]["address"] == "custody.commands"
    assert doc["channels"]["events"]["bindings"]["amqp"]["exchange"]["type"] == "topic"
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert set(COMMANDS) <= names
    assert {"device.assigned", "access.granted"} <= names
    for message in doc["components"]["messages"].values():  # every file it points at exists
        for ref in json.dumps(message).split('"$ref": "./')[1:]:
            assert (REPO / ref.split('"')[0]).is_file()
