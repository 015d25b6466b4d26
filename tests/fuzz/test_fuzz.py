"""Whatever a sender puts on the queue ends as a result or a dead letter: no crash, no
unhandled exception, nothing a store would refuse, and a rejection changes nothing.

Runs CUSTODY_FUZZ_EXAMPLES inputs per property (a short run by default; see
``python -m tests.fuzz --long``).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import constants as c
from models.keystore import MasterKey
from models.limits import _problems, _within_bounds
from models.signing import sign
from tasks.authenticate import Authenticator
from tasks.pipeline import Delivery, process
from tests.backends import TEST_MASTER_KEY, FakeBackend
from tests.fuzz.checks import Message, check_result, check_storable
from tests.fuzz.strategies import (
    FUZZ_SETTINGS,
    commands,
    content_types,
    deep,
    headers,
    json_values,
    message_bodies,
)
from worker.consumer import bury_message, inspect_message

pytestmark = pytest.mark.fuzz

MASTER_KEY = MasterKey.from_text(TEST_MASTER_KEY)


def world(backend: FakeBackend) -> Any:
    s = backend.db.state
    return (s.devices, s.customers, s.owners, s.outbox, s.signing_keys, s.organizations)


@FUZZ_SETTINGS
@given(
    data=st.data(),
    required=st.booleans(),
    signing=st.sampled_from(["unsigned", "signed", "signed-then-changed", "another-org"]),
)
def test_any_command_ends_as_a_result_and_a_rejection_changes_nothing(data, required, signing):
    # Given an organization with a key, and any command a sender could produce
    backend = FakeBackend(MASTER_KEY)
    org, other = backend.new_org(), backend.new_org()
    body = data.draw(commands(org), label="command")
    secrets = {backend.key_for(org).secret}
    if signing != "unsigned" and isinstance(body, dict):
        try:
            body = sign(body, backend.key_for(other if signing == "another-org" else org))
        except ValueError:  # NaN, an infinity or a lone surrogate cannot be signed
            pass  # sent as drawn (a "signature" drawn with it is no secret)
        else:
            secrets.add(body["signature"]["value"])
        if signing == "signed-then-changed":
            body = {**body, data.draw(st.sampled_from(sorted(body))): data.draw(json_values)}
    before = world(backend)
    # When it is processed
    outcome = process(
        Delivery(c.ASSIGN_DEVICE, str(uuid.uuid4()), body),
        backend.uow,
        authenticator=Authenticator(MASTER_KEY, required=required),
    )
    # Then it is a result; a rejection changed nothing; everything stored is storable
    check_result(outcome.result, secrets=secrets)
    if not outcome.success:
        assert world(backend) == before
    signed_by = body.get("signature") if isinstance(body, dict) else None
    if signing == "another-org" and isinstance(signed_by, dict):
        assert not outcome.success  # another organization's key never passes
    if required and signed_by is None:
        assert not outcome.success  # nor does no signature where one is required
    check_storable(backend)


@FUZZ_SETTINGS
@given(
    data=st.data(),
    body=message_bodies,
    headers=headers,
    content_type=content_types,
    wrap=st.booleans(),
)
def test_any_message_is_a_command_call_or_a_dead_letter_with_a_reason(
    data, body, headers, content_type, wrap
):
    backend = FakeBackend(MASTER_KEY)
    org = backend.new_org()
    if wrap:  # a well-formed envelope around any command
        command = data.draw(commands(org), label="command")
        with contextlib.suppress(ValueError):
            body = json.dumps([[command], {}, {}]).encode("utf-8", "surrogatepass")
        headers = {"task": c.ASSIGN_DEVICE, "id": str(uuid.uuid4())}
    message = Message(body=body, headers=headers, content_type=content_type)
    problem = inspect_message(message)
    if problem is not None:
        # Then it is a dead letter with a short reason, kept whole or noted
        assert isinstance(problem, str) and 0 < len(problem) < 2_000
        assert bury_message(backend.uow, message, problem) == 1
    else:
        # Or a task call whose one argument the pipeline answers
        (command,), _kwargs, _embed = json.loads(body)
        outcome = process(Delivery(headers["task"], headers["id"], command), backend.uow)
        check_result(outcome.result, secrets=set())
    check_storable(backend)


def test_the_coverage_guided_harness_takes_its_seed_inputs():
    from tests.fuzz.harness import SEEDS, one_input

    for seed in SEEDS:
        one_input(seed)


@FUZZ_SETTINGS
@given(st.one_of(json_values, st.builds(deep, st.integers(1, 12), json_values)))
def test_the_quick_shape_check_agrees_with_the_one_that_says_where(value):
    # The first walk says whether a command is within bounds, the second says where not
    assert _within_bounds(value) == (not _problems(value))
