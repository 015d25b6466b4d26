"""How the consumer recognises a message handed out again, and the count it carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from worker.consumer import DELIVERIES_HEADER, deliveries_so_far, was_redelivered


@dataclass
class Message:
    headers: Any = field(default_factory=dict)
    delivery_info: Any = field(default_factory=dict)
    _raw: Any = None


@pytest.mark.parametrize(
    ("message", "redelivered"),
    [
        (Message(), False),
        (Message(headers={"redelivered": True}), True),  # Redis: restored after loss
        (Message(delivery_info={"redelivered": True}), True),  # AMQP
        (Message(_raw={"redelivered": True}), True),  # kombu's filesystem transport
        (Message(headers=None, delivery_info=None), False),
    ],
)
def test_a_message_handed_out_again_is_recognised_on_every_transport(message, redelivered):
    assert was_redelivered(message) is redelivered


@pytest.mark.parametrize(
    ("headers", "count"),
    [
        ({}, 1),
        ({DELIVERIES_HEADER: 3}, 3),
        ({DELIVERIES_HEADER: "3"}, 1),  # not a count we wrote: start over, never crash
        ({DELIVERIES_HEADER: -2}, 1),
        (None, 1),
    ],
)
def test_the_delivery_count_comes_from_the_header_the_consumer_wrote(headers, count):
    assert deliveries_so_far(Message(headers=headers)) == count
