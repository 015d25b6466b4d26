"""Bad input is bounded: every limit has a clear 400 that names it, the rejection is stored
on every store (PostgreSQL refuses NUL and lone surrogates), and nothing changes."""

from __future__ import annotations

import pytest

from models import constants as c
from tests.helpers import assign_body, deliver, new_device


def nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"x": value}
    return value


def base(org: str) -> dict:
    return assign_body(org, new_device(), ["a@example.com"], autoCreateDevice=True, deviceType="T")


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"deep": nested(c.MAX_JSON_DEPTH)}, "nested deeper than 8 levels (limit on nesting)"),
        ({"deep": [[[[[[[[[1]]]]]]]]]}, "deep.0.0.0.0.0.0.0: nested deeper than 8 levels"),
        ({"wide": list(range(c.MAX_JSON_ARRAY_ITEMS + 1))}, "wide: 1001 items, at most 1000"),
        (
            {f"k{n}": n for n in range(c.MAX_JSON_OBJECT_KEYS)},
            "at most 64 (limit on keys per object)",
        ),
        ({"k" * 129: 1}, "a key of 129 characters, at most 128 (limit on key length)"),
        (
            {"many": [list(range(1000))] * 101},
            "more than 100000 values (limit on values per command)",
        ),
        ({"deviceIdentifier": "SN\x00X"}, "deviceIdentifier: text with a NUL character"),
        ({"deviceType": "T\ud800"}, "deviceType: text with a NUL character or a lone surrogate"),
        ({"x\x00": 1}, "command: a key with a NUL character"),
        ({"score": float("nan")}, "score: nan is not a JSON number"),
        ({"score": float("inf")}, "score: inf is not a JSON number"),
    ],
)
def test_a_command_over_a_shape_limit_is_a_400_naming_the_limit(backend, extra, says):
    # Given a command that breaks one bound of its shape
    org = backend.new_org()
    body = {**base(org), **extra}
    # When it is delivered
    outcome = deliver(backend, body)
    # Then it is a 400 naming the limit, recorded without taking the requestId
    assert outcome.result["statusCode"] == 400
    assert any(says in m for m in outcome.result["errorMessages"]), outcome.result
    state = backend.state(org)
    assert state.rejections == [outcome.result]
    assert (state.devices, state.customers, state.processed, state.events) == ({}, {}, {}, [])


def test_a_rejected_body_is_kept_storable_without_its_signature_value(backend):
    org = backend.new_org()
    body = {**base(org), "deviceType": "bad\ud800", "signature": {"keyId": "k", "value": "a" * 64}}
    deliver(backend, body)
    with backend.uow() as uow:
        kept = uow.rejections.latest(org, body["requestId"]).body
    assert "\\ud800" in kept and "a" * 64 not in kept and '"value": "redacted"' in kept


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"customerEmails": [f"u{n}@example.com" for n in range(101)]}, "at most 100 items"),
        ({"deviceIdentifier": "x" * 129}, "at most 128 characters"),
        ({"deviceType": "t" * 65}, "at most 64 characters"),
        ({"customerEmails": ["a" * 321]}, "at most 320 characters"),
        ({"requestId": "r" * 256}, "requestId: required, a string of 1 to 255 characters"),
        ({"organizationId": "o" * 65}, "organizationId: required, a string of 1 to 64 characters"),
    ],
)
def test_field_bounds_are_400s_naming_the_bound(backend, change, says):
    org = backend.new_org()
    outcome = deliver(backend, {**base(org), **change})
    assert outcome.result["statusCode"] == 400
    assert any(says in m for m in outcome.result["errorMessages"]), outcome.result
    assert backend.state(org).devices == {}


def test_a_command_with_many_problems_lists_the_first_fifty_and_counts_the_rest(backend):
    org = backend.new_org()
    body = {**base(org), "customerEmails": [n for n in range(100)]}
    messages = deliver(backend, body).result["errorMessages"]
    assert len(messages) == c.MAX_ERROR_MESSAGES + 1
    assert messages[-1] == "… and 50 more problems"
