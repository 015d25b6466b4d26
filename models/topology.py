"""The broker entities of the wire contract, declared the same way by every party."""

from __future__ import annotations

from kombu.entity import Exchange, Queue


def commands_queue(name: str) -> Queue:
    """Durable queue of commands, bound to a direct exchange of the same name."""
    exchange = Exchange(name, type="direct", durable=True)  # type: ignore[no-untyped-call]
    return Queue(name, exchange, routing_key=name, durable=True)  # type: ignore[no-untyped-call]


def events_exchange(name: str) -> Exchange:
    """Durable topic exchange of events; routing key = event type."""
    return Exchange(name, type="topic", durable=True)  # type: ignore[no-untyped-call]
