"""The outbox payload built directly is exactly what the CloudEvent models produce."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from models.domain import DeviceAssigned, OwnerRef
from models.events import _EVENT_NAMESPACE, cloud_event_wire, event_id, to_cloud_event, wire_time

owners = st.lists(st.builds(OwnerRef, st.integers(1, 2**40), st.text(max_size=30)), max_size=4)


@settings(max_examples=100, deadline=None)
@given(
    org=st.text(min_size=1, max_size=20),
    request_id=st.text(min_size=1, max_size=40),
    sequence=st.integers(0, 5000),
    identifier=st.text(min_size=1, max_size=30),
    created=st.booleans(),
    added=owners,
    current=owners,
    time=st.datetimes(timezones=st.just(UTC)),
)
def test_the_direct_payload_equals_the_models_output(
    org, request_id, sequence, identifier, created, added, current, time
):
    event = DeviceAssigned(
        device_identifier=identifier,
        device_id=7,
        device_created=created,
        owners_added=added,
        owners=current,
    )
    expected = to_cloud_event(
        event, organization_id=org, request_id=request_id, sequence=sequence, time=time
    ).to_wire()
    direct = cloud_event_wire(
        event,
        organization_id=org,
        request_id=request_id,
        sequence=sequence,
        time_text=wire_time(time),
    )
    assert direct == expected


def test_event_ids_are_uuid5_of_the_command_and_position():
    for org, request_id, sequence in [("o", "r", 0), ("acme", "é-ü/日本", 999)]:
        name = f"{org}\x00{request_id}\x00{sequence}"
        assert event_id(org, request_id, sequence) == str(uuid.uuid5(_EVENT_NAMESPACE, name))


def test_times_keep_their_wire_spelling():
    assert wire_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    assert wire_time(datetime(2026, 1, 2, 3, 4, 5, 60, tzinfo=UTC)) == "2026-01-02T03:04:05.000060Z"
