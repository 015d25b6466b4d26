"""Organization A aims every command it can send at organization B's devices, customers and
request ids: each is rejected or applied inside A only; nothing of B changes or shows.

To cover a new command, add its attacks to ATTACKS: a builder of A's command, given B's world.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from models import constants as c
from tasks.authenticate import Authenticator
from tests.helpers import assign_body, deliver, new_device, signed


@dataclass
class World:
    """What B holds: a device with owners, and the answer to one of B's commands."""

    org: str
    device: str
    emails: list[str]
    request_id: str
    ids: set[tuple[str, int]]  # every internal id of B's rows, by the field that shows it


@dataclass(frozen=True)
class Attack:
    task: str
    build: Callable[[str, World], dict[str, Any]]  # (A, B's world) -> A's command
    isolated: bool  # True: applied inside A; False: rejected


ATTACKS: dict[str, Attack] = {
    "assign B's device by its identifier": Attack(
        c.ASSIGN_DEVICE,
        lambda a, b: assign_body(a, b.device, ["a-user@example.com"]),
        isolated=False,
    ),
    "auto-create B's device identifier": Attack(
        c.ASSIGN_DEVICE,
        lambda a, b: assign_body(
            a, b.device, ["a-user@example.com"], autoCreateDevice=True, deviceType="T"
        ),
        isolated=True,
    ),
    "assign to B's customers' e-mails": Attack(
        c.ASSIGN_DEVICE,
        lambda a, b: assign_body(a, new_device(), b.emails, autoCreateDevice=True, deviceType="T"),
        isolated=True,
    ),
    "reuse B's requestId": Attack(
        c.ASSIGN_DEVICE,
        lambda a, b: assign_body(
            a, b.device, b.emails, autoCreateDevice=True, deviceType="T", requestId=b.request_id
        ),
        isolated=True,
    ),
}


@pytest.fixture
def world(backend) -> World:
    b = backend.new_org()
    device, emails = new_device(), ["owner@b.example", "other@b.example"]
    body = assign_body(b, device, emails, autoCreateDevice=True, deviceType="Lock")
    result = deliver(backend, signed(backend, body), authenticator=required(backend)).result
    assert result["success"], result
    ids = ids_in(result)
    return World(b, device, emails, body["requestId"], ids)


def ids_in(value: Any) -> set[tuple[str, int]]:
    """Every internal id a result shows, with the field that names it (deviceId, …)."""
    if isinstance(value, dict):
        found = {
            (k, v) for k, v in value.items() if isinstance(v, int) and k.endswith(("Id", "id"))
        }
        return found | {i for v in value.values() for i in ids_in(v)}
    if isinstance(value, list):
        return {i for v in value for i in ids_in(v)}
    return set()


def required(backend) -> Authenticator:
    return Authenticator(backend.master_key, required=True)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_a_command_of_one_organization_aimed_at_another_changes_and_reveals_nothing_of_it(
    backend, world, name
):
    attack = ATTACKS[name]
    # Given organization A, signing with its own key
    a = backend.new_org()
    b_before = backend.state(world.org)
    # When A sends a command aimed at B's things
    outcome = deliver(
        backend,
        signed(backend, attack.build(a, world)),
        attack.task,
        authenticator=required(backend),
    )
    # Then B is exactly as it was
    assert backend.state(world.org) == b_before
    # And A's answer shows none of B's rows
    assert not ids_in(outcome.result) & world.ids, outcome.result
    assert not outcome.replayed
    # And it was applied inside A, or refused
    if attack.isolated:
        assert outcome.success, outcome.result
        assert backend.state(a).events, "applied in A, with A's event"
        assert all(e["organizationid"] == a for e in backend.state(a).events)
    else:
        assert not outcome.success


def test_a_404_for_another_organizations_device_reads_as_for_a_device_nobody_has(backend, world):
    a = backend.new_org()
    nobody = new_device()
    theirs = deliver(
        backend,
        signed(backend, assign_body(a, world.device, ["x@example.com"])),
        authenticator=required(backend),
    ).result
    absent = deliver(
        backend,
        signed(backend, assign_body(a, nobody, ["x@example.com"])),
        authenticator=required(backend),
    ).result
    assert json.dumps(theirs).replace(world.device, "DEVICE") == json.dumps(absent).replace(
        nobody, "DEVICE"
    )


def test_a_key_of_one_organization_cannot_sign_for_another(backend, world):
    # Given A's key on a command that names B
    a = backend.new_org()
    body = assign_body(world.org, world.device, ["mallory@example.com"])
    b_before = backend.state(world.org)
    outcome = deliver(backend, signed(backend, body, org=a), authenticator=required(backend))
    # Then it is a 401 and B is untouched, its requestId space too
    assert outcome.result["statusCode"] == 401
    after = backend.state(world.org)
    assert after.rejections == [*b_before.rejections, outcome.result]
    assert (after.owners, after.processed) == (b_before.owners, b_before.processed)


def test_an_unknown_request_id_status_shows_no_other_organizations_rejection(backend):
    # Given a rejection recorded for organization B
    from tasks.queries import find_result

    b, a = backend.new_org(), backend.new_org()
    request_id = f"r-{uuid.uuid4().hex}"
    unsigned = assign_body(b, new_device(), ["x@example.com"], requestId=request_id)
    assert deliver(backend, unsigned, authenticator=required(backend)).result["statusCode"] == 401
    # When A asks for that requestId
    with backend.uow() as uow:
        seen_by_a = find_result(uow, a, request_id)
        seen_by_b = find_result(uow, b, request_id)
    # Then A sees nothing, B sees its rejection
    assert seen_by_a is None
    assert seen_by_b is not None and seen_by_b.result["statusCode"] == 401
