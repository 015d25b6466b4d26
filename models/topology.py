"""The broker entities of the wire contract, declared the same way by every party."""

from __future__ import annotations

from kombu.entity import Exchange, Queue, binding


def commands_queue(name: str) -> Queue:
    """Durable queue of commands, bound to a direct exchange of the same name."""
    exchange = Exchange(name, type="direct", durable=True)  # type: ignore[no-untyped-call]
    return Queue(name, exchange, routing_key=name, durable=True)  # type: ignore[no-untyped-call]


def events_exchange(name: str) -> Exchange:
    """Durable topic exchange of events; routing key = event type."""
    return Exchange(name, type="topic", durable=True)  # type: ignore[no-untyped-call]


def subscriber_queue(queue_name: str, exchange: str, patterns: list[str]) -> Queue:
    """Durable queue of one subscriber, bound to the events exchange once per pattern."""
    topic = events_exchange(exchange)
    bindings = [binding(topic, routing_key=p) for p in patterns]  # type: ignore[no-untyped-call]
    return Queue(queue_name, bindings=bindings, durable=True)  # type: ignore[no-untyped-call]


def direct_queue(queue_name: str, *, durable: bool = True) -> Queue:
    """A queue reached through the default exchange by its own name (parked events)."""
    default = Exchange("")  # type: ignore[no-untyped-call]
    return Queue(queue_name, default, routing_key=queue_name, durable=durable)  # type: ignore[no-untyped-call]
