"""The events on the wire: CloudEvents 1.0 exactly as the contract says, and JSON Schemas
of their data that are generated from the models and kept in the repo."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from cli.contract import contract
from models import constants as c
from models.contract import file_text
from models.domain import DeviceAssigned, DeviceUnassigned, OwnerRef
from models.events import (
    DATA_MODELS,
    event_json_schemas,
    registered_event_types,
    to_cloud_event,
)
from tests.backends import FakeBackend
from tests.helpers import assign_body, deliver, unassign_body

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas" / "events"

ALICE, BOB = OwnerRef(7, "alice@example.com"), OwnerRef(8, "bob@example.com")
EXAMPLES = [
    DeviceAssigned(
        device_identifier="SN-1",
        device_id=3,
        device_created=True,
        owners_added=[BOB],
        owners=[ALICE, BOB],
    ),
    DeviceUnassigned(device_identifier="SN-1", device_id=3, owners_removed=[ALICE], owners=[BOB]),
]


def test_an_event_has_exactly_the_attributes_of_the_contract():
    when = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    wire = to_cloud_event(
        EXAMPLES[0], organization_id="acme", request_id="req-1", sequence=0, time=when
    ).to_wire()
    assert set(wire) == {
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "datacontenttype",
        "data",
        "correlationid",
        "organizationid",
    }
    assert wire["specversion"] == "1.0"
    assert wire["type"] == "device.assigned"
    assert wire["subject"] == "SN-1"
    assert wire["time"] == "2025-03-01T12:30:00Z"
    assert wire["datacontenttype"] == "application/json"
    assert wire["correlationid"] == "req-1" and wire["organizationid"] == "acme"
    assert wire["data"]["ownersAdded"] == [{"customerId": 8, "email": "bob@example.com"}]


def test_the_event_id_is_the_same_for_every_redelivery_of_a_command_and_differs_otherwise():
    def event_id(request_id: str, sequence: int = 0) -> str:
        return to_cloud_event(
            EXAMPLES[0],
            organization_id="acme",
            request_id=request_id,
            sequence=sequence,
            time=datetime.now(UTC),
        ).id

    assert event_id("req-1") == event_id("req-1")
    assert len({event_id("req-1"), event_id("req-2"), event_id("req-1", 1)}) == 3


def test_every_event_a_handler_can_emit_has_a_data_model_and_a_schema_file():
    assert set(registered_event_types()) == set(DATA_MODELS)
    assert {c.DEVICE_ASSIGNED, c.DEVICE_UNASSIGNED} <= set(DATA_MODELS)
    for event_type in DATA_MODELS:
        assert (SCHEMAS / f"{event_type}.data.json").is_file(), event_type


def test_the_schema_files_in_the_repo_match_the_models():
    # A failure here means a model changed: run `custody contract` and commit.
    generated = event_json_schemas()
    on_disk = {p.stem: p.read_text() for p in SCHEMAS.glob("*.json")}
    assert sorted(on_disk) == sorted(generated)
    for stem, schema in generated.items():
        assert on_disk[stem] == file_text(schema), stem


def test_the_contract_check_fails_on_a_stale_file(tmp_path):
    runner = CliRunner()
    assert runner.invoke(contract, ["--folder", str(tmp_path)]).exit_code == 0
    assert runner.invoke(contract, ["--folder", str(tmp_path), "--check"]).exit_code == 0
    (tmp_path / "schemas/events/device.assigned.data.json").write_text("{}\n")
    stale = runner.invoke(contract, ["--folder", str(tmp_path), "--check"])
    assert stale.exit_code != 0
    assert "device.assigned.data.json" in stale.output


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.type)
def test_events_validate_against_their_schema_files(example):
    wire = to_cloud_event(
        example, organization_id="acme", request_id="r", sequence=0, time=datetime.now(UTC)
    ).to_wire()
    envelope = json.loads((SCHEMAS / "cloudevent.json").read_text())
    data_schema = json.loads((SCHEMAS / f"{example.type}.data.json").read_text())
    jsonschema.validate(wire, envelope)
    jsonschema.validate(wire["data"], data_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**wire["data"], "extra": 1}, data_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({k: v for k, v in wire.items() if k != "subject"}, envelope)


def test_the_events_the_pipeline_writes_validate_against_the_schema_files():
    backend = FakeBackend()
    org = backend.new_org()
    deliver(
        backend,
        assign_body(
            org,
            "SN-9",
            ["a@example.com", "b@example.com"],
            autoCreateDevice=True,
            deviceType="Lock",
        ),
    )
    deliver(backend, unassign_body(org, "SN-9", ["a@example.com"]), c.UNASSIGN_DEVICE)
    events = backend.state(org).events
    assert [e["type"] for e in events] == ["device.assigned", "device.unassigned"]
    envelope = json.loads((SCHEMAS / "cloudevent.json").read_text())
    for event in events:
        jsonschema.validate(event, envelope)
        jsonschema.validate(
            event["data"], json.loads((SCHEMAS / f"{event['type']}.data.json").read_text())
        )
