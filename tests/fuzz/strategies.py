"""Inputs a hostile or broken sender could produce, from noise to nearly valid commands."""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from models import constants as c

EXAMPLES = int(os.environ.get("CUSTODY_FUZZ_EXAMPLES", "150"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Text of every kind, lone surrogates and NUL included (what a "\ud800" escape decodes to).
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
keys = st.one_of(
    any_text,
    st.sampled_from(
        [
            "requestId",
            "organizationId",
            "deviceIdentifier",
            "customerEmails",
            "autoCreateDevice",
            "deviceType",
            "signature",
            "keyId",
            "value",
        ]
    ),
    st.text(min_size=120, max_size=140),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**300), max_value=10**300),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
    st.text(min_size=200, max_size=400),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6), st.dictionaries(keys, children, max_size=6)
    ),
    max_leaves=40,
)


def deep(levels: int, leaf: Any = 1) -> Any:
    for _ in range(levels):
        leaf = [leaf]
    return leaf


@st.composite
def commands(draw: Any, org: str) -> Any:
    """A command of ``org``: valid, nearly valid, or anything at all."""
    body: dict[str, Any] = {
        "requestId": draw(st.one_of(st.just(f"r-{draw(st.uuids())}"), any_text)),
        "organizationId": org,
        "deviceIdentifier": draw(st.one_of(st.just("SN-1"), any_text)),
        "customerEmails": draw(
            st.one_of(st.just(["a@example.com"]), st.lists(any_text, max_size=5), json_values)
        ),
    }
    if draw(st.booleans()):
        body["autoCreateDevice"] = draw(st.one_of(st.booleans(), json_values))
        body["deviceType"] = draw(st.one_of(st.just("T"), json_values))
    for _ in range(draw(st.integers(0, 3))):
        mutation = draw(st.sampled_from(["drop", "replace", "add", "deepen", "widen"]))
        field = draw(st.sampled_from(sorted(body) or ["requestId"]))
        if mutation == "drop":
            body.pop(field, None)
        elif mutation == "replace":
            body[field] = draw(json_values)
        elif mutation == "add":
            body[draw(keys)] = draw(json_values)
        elif mutation == "deepen":
            body[field] = deep(draw(st.integers(c.MAX_JSON_DEPTH - 2, c.MAX_JSON_DEPTH + 2)))
        else:
            body[field] = ["x@example.com"] * draw(st.integers(90, c.MAX_JSON_ARRAY_ITEMS + 5))
    return draw(st.one_of(st.just(body), st.just(body), json_values))


message_bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.tuples(json_values, json_values, json_values).map(lambda t: json.dumps(list(t)).encode()),
    st.just(b"[" * 5000 + b"]" * 5000),
)
headers = st.one_of(
    st.none(),
    json_values,
    st.fixed_dictionaries(
        {"task": st.one_of(st.just(c.ASSIGN_DEVICE), any_text, json_values)},
        optional={
            "id": st.one_of(st.uuids().map(str), any_text, st.text(min_size=250, max_size=300)),
            "compression": st.one_of(st.none(), any_text),
            "retries": json_values,
        },
    ),
)
content_types = st.one_of(st.just("application/json"), any_text, st.none())
