"""Bulk and single assignments running at once on real databases: no deadlock, no lost or
doubled owner, and the state one worker applying them one by one would reach."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from models import constants as c
from tests.backends import SqlBackend
from tests.helpers import assign_body, deliver, new_device
from tests.integration.test_concurrency import run_together


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_backend(request: pytest.FixtureRequest) -> SqlBackend:
    return SqlBackend(request.param, request.getfixturevalue(f"{request.param}_engine"))


def bulk(org: str, items: list[dict]) -> dict:
    return {"requestId": f"bulk-{uuid.uuid4().hex}", "organizationId": org, "items": items}


def test_bulk_and_single_commands_on_the_same_devices_end_in_one_consistent_state(sql_backend):
    # Given ten known devices and five that do not exist yet
    org = sql_backend.new_org()
    known = [new_device() for _ in range(10)]
    fresh = [new_device() for _ in range(5)]
    for device in known:
        deliver(
            sql_backend,
            assign_body(org, device, ["first@example.com"], autoCreateDevice=True, deviceType="T"),
        )
    everything = known + fresh

    def items(devices: list[str], emails: list[str]) -> list[dict]:
        return [
            {
                "deviceIdentifier": d,
                "customerEmails": emails,
                "autoCreateDevice": True,
                "deviceType": "T",
            }
            for d in devices
        ]

    # When two batches (naming the devices in opposite orders) and single commands on the
    # same devices and customers run at the same time
    bodies = [
        (c.ASSIGN_DEVICES, bulk(org, items(everything, ["a@example.com", "b@example.com"]))),
        (c.ASSIGN_DEVICES, bulk(org, items(everything[::-1], ["b@example.com", "c@example.com"]))),
    ] + [
        (
            c.ASSIGN_DEVICE,
            assign_body(
                org, d, ["c@example.com", "d@example.com"], autoCreateDevice=True, deviceType="T"
            ),
        )
        for d in [known[0], known[5], fresh[0], fresh[4], known[9], fresh[2]]
    ]
    outcomes = run_together(
        [
            lambda task=task, body=body: deliver(sql_backend, body, task=task)
            for task, body in bodies
        ]
    )

    # Then every command succeeded (no deadlock surfaced as an error)
    assert all(not isinstance(o, BaseException) for o in outcomes), outcomes
    assert all(o.result["success"] for o in outcomes), [o.result for o in outcomes]
    # and the state is the union of all assignments, each pair stored once
    state = sql_backend.state(org)
    assert set(state.devices) == set(everything)
    expected = {(d, e) for d in known for e in ["first@example.com"]}
    expected |= {
        (d, e) for d in everything for e in ["a@example.com", "b@example.com", "c@example.com"]
    }
    expected |= {
        (d, "d@example.com") for d in [known[0], known[5], fresh[0], fresh[4], known[9], fresh[2]]
    }
    assert state.owners == expected and state.owner_rows == len(expected)
    # and each new pair was reported newly assigned by exactly one command
    newly = sum(
        item.get("customersAssigned", 0) for o in outcomes[:2] for item in o.result["items"]
    ) + sum(
        not customer["alreadyAssigned"] for o in outcomes[2:] for customer in o.result["customers"]
    )
    assert newly == len(expected) - len(known)
    # and every fresh device was created by exactly one command
    created = Counter(
        item["identifier"]
        for item in (
            [
                {"identifier": i["deviceIdentifier"]}
                for o in outcomes[:2]
                for i in o.result["items"]
                if i["deviceCreated"]
            ]
            + [
                {"identifier": o.result["deviceIdentifier"]}
                for o in outcomes[2:]
                if o.result["deviceCreated"]
            ]
        )
    )
    assert created == Counter(fresh)
    # and the events add each pair once, with owner lists that only grow per device
    added = Counter(
        (e["subject"], o["email"]) for e in state.events for o in e["data"]["ownersAdded"]
    )
    assert set(added) == expected and set(added.values()) == {1}
    sizes: dict[str, list[int]] = {}
    for event in state.events:
        sizes.setdefault(event["subject"], []).append(len(event["data"]["owners"]))
    assert all(s == sorted(s) for s in sizes.values())
    assert all(s[-1] == sum(1 for d, _ in expected if d == device) for device, s in sizes.items())
