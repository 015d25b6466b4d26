"""Single assign_device commands applied as a group: the same answers, records, events and
final state as the same commands applied one after the other, on every store."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest

from models import constants as c
from tasks.coalesced import process_group
from tasks.pipeline import Delivery, Outcome, process
from tests.helpers import assign_body, signed


def one_by_one(backend: Any, deliveries: list[Delivery]) -> list[Outcome]:
    return [process(d, backend.uow, authenticator=backend.authenticator) for d in deliveries]


def grouped(backend: Any, deliveries: list[Delivery]) -> list[Outcome]:
    """What the worker does: the group first, then whatever it left, one by one, in order."""
    outcomes = process_group(deliveries, backend.uow, authenticator=backend.authenticator)
    return [
        outcome or process(delivery, backend.uow, authenticator=backend.authenticator)
        for delivery, outcome in zip(deliveries, outcomes, strict=True)
    ]


def scenario(org: str, seed: int, size: int = 40) -> list[dict[str, Any]]:
    """Commands that meet each other: shared devices and customers, devices created by a
    later command, unknown devices, bad addresses, repeated and reused requestIds, schema
    violations."""
    rng = random.Random(seed)
    devices = [f"SN-{n}" for n in range(6)]
    emails = [f"user{n}@example.com" for n in range(8)] + ["not-an-address"]
    bodies: list[dict[str, Any]] = []
    for n in range(size):
        roll = rng.random()
        if bodies and roll < 0.1:
            bodies.append(dict(rng.choice(bodies)))  # the same command again
            continue
        body = assign_body(
            org,
            rng.choice(devices),
            rng.sample(emails, rng.randint(1, 3)),
            requestId=f"r-{n}",
        )
        if rng.random() < 0.6:
            body.update(autoCreateDevice=True, deviceType="Lock")
        if bodies and roll < 0.15:
            body["requestId"] = rng.choice(bodies)["requestId"]  # reused for another command
        elif roll < 0.2:
            body["customerEmails"] = []  # violates the schema
        bodies.append(body)
    return bodies


def deliveries_of(backend: Any, bodies: list[dict[str, Any]]) -> list[Delivery]:
    return [
        Delivery(task=c.ASSIGN_DEVICE, message_id=str(uuid.uuid4()), command=signed(backend, b))
        for b in bodies
    ]


def comparable(value: Any, org: str, ids: dict[tuple[str, int], str]) -> Any:
    """Results and events with what differs between two organizations taken out: the
    organization, database ids (as the identifier or address they stand for), event ids
    and clock readings. Owner lists are in ownership order, which follows customer ids: a
    group allocates those in another order, so the lists compare as sets."""
    if isinstance(value, dict):
        named = {}
        for key, item in value.items():
            if key in ("time", "id") and isinstance(item, str):
                continue
            if key in ("deviceId", "customerId") and isinstance(item, int):
                named[key] = ids.get((key, item), "?")
            elif key == "owners":
                named[key] = sorted(comparable(item, org, ids), key=lambda o: o["email"])
            else:
                named[key] = comparable(item, org, ids)
        return named
    if isinstance(value, list):
        return [comparable(item, org, ids) for item in value]
    return "ORG" if value == org else value


def id_names(outcomes: list[Outcome], backend: Any, org: str) -> dict[tuple[str, int], str]:
    names: dict[tuple[str, int], str] = {}
    for payload in backend.state(org).events:
        data = payload["data"]
        names["deviceId", data["deviceId"]] = data["deviceIdentifier"]
        for owner in data["owners"]:
            names["customerId", owner["customerId"]] = owner["email"]
    for outcome in outcomes:
        result = outcome.result
        if "deviceId" in result:
            names["deviceId", result["deviceId"]] = result["deviceIdentifier"]
        for customer in result.get("customers", []):
            names["customerId", customer["customerId"]] = customer["email"]
    return names


@pytest.mark.parametrize("seed", range(6))
def test_a_group_answers_and_changes_exactly_what_one_by_one_would(backend, seed):
    # Given the same commands for two organizations with the same starting state
    alone, together = backend.new_org(), backend.new_org()
    warm_up = [
        assign_body(
            o,
            "SN-0",
            ["user0@example.com"],
            autoCreateDevice=True,
            deviceType="Lock",
            requestId="w",
        )
        for o in (alone, together)
    ]
    one_by_one(backend, deliveries_of(backend, warm_up))
    # When one organization's commands are applied one by one, the other's as a group
    expected = one_by_one(backend, deliveries_of(backend, scenario(alone, seed)))
    got = grouped(backend, deliveries_of(backend, scenario(together, seed)))
    # Then every answer, record, event and the final state are the same
    names = {**id_names(expected, backend, alone), **id_names(got, backend, together)}
    assert [comparable(o.result, together, names) for o in got] == [
        comparable(o.result, alone, names) for o in expected
    ]
    assert [o.replayed for o in got] == [o.replayed for o in expected]
    before, after = backend.state(alone), backend.state(together)
    assert after.devices == before.devices
    assert after.customers == before.customers
    assert after.owners == before.owners
    assert after.owner_rows == before.owner_rows
    assert comparable(after.processed, together, names) == comparable(
        before.processed, alone, names
    )
    assert comparable(after.events, together, names) == comparable(before.events, alone, names)
    assert comparable(after.rejections, together, names) == comparable(
        before.rejections, alone, names
    )


def test_a_group_takes_one_transaction_and_leaves_replays_to_the_one_by_one_path(backend):
    # Given one command already applied
    org = backend.new_org()
    first = assign_body(org, "SN-1", ["a@example.com"], autoCreateDevice=True, deviceType="T")
    one_by_one(backend, deliveries_of(backend, [first]))
    fresh = [
        assign_body(org, f"SN-{n}", ["b@example.com"], autoCreateDevice=True, deviceType="T")
        for n in range(2, 6)
    ]
    # When it arrives again among four fresh commands
    outcomes = process_group(
        deliveries_of(backend, [*fresh[:2], first, *fresh[2:]]),
        backend.uow,
        authenticator=backend.authenticator,
    )
    # Then the group answers the fresh ones and leaves the replay to the one-by-one path
    assert [o is None for o in outcomes] == [False, False, True, False, False]
    assert all(o is not None and o.result["statusCode"] == 200 for o in outcomes if o)
    assert len(backend.state(org).events) == 1 + 4


def test_unsigned_and_unknown_organizations_are_left_to_the_one_by_one_path(backend):
    org = backend.new_org()
    good = signed(
        backend, assign_body(org, "SN-1", ["a@example.com"], autoCreateDevice=True, deviceType="T")
    )
    forged = {**signed(backend, assign_body(org, "SN-2", ["a@example.com"])), "deviceType": "x"}
    stranger = assign_body("no-such-org", "SN-3", ["a@example.com"])
    deliveries = [
        Delivery(task=c.ASSIGN_DEVICE, message_id=str(uuid.uuid4()), command=body)
        for body in (good, forged, stranger, "not an object")
    ]
    outcomes = process_group(deliveries, backend.uow, authenticator=backend.authenticator)
    assert [o is None for o in outcomes] == [False, True, True, True]
    # and the one-by-one path rejects them as it always did
    answers = [process(d, backend.uow, authenticator=backend.authenticator) for d in deliveries[1:]]
    assert [a.result["statusCode"] for a in answers] == [401, 401, 400]
    assert set(backend.state(org).devices) == {"SN-1"}
