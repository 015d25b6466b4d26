"""``EventTail``: watch events as they are published, through a throw-away queue.

Unlike a ``Subscriber`` it keeps nothing: its queue exists only while it is open (it is
deleted on close), so it sees the events published meanwhile and no others.
"""

from __future__ import annotations

import collections
import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, Self

from kombu import Connection, Consumer, Queue, binding

from models import constants as c
from models.events import CloudEvent
from models.settings import Settings
from models.topology import events_exchange
from subscribers.subscriber import check_patterns, parse_event

log = logging.getLogger("custody.tail")


class EventTail:
    def __init__(
        self,
        patterns: Iterable[str] = ("#",),
        *,
        broker_url: str = "filesystem://localhost/",
        transport_options: dict[str, Any] | None = None,
        exchange: str = c.EVENTS_EXCHANGE,
        organization: str | None = None,
        transport: str | None = None,
    ) -> None:
        self.patterns = check_patterns(patterns)
        self.organization = organization
        topic = events_exchange(exchange)
        name = f"{c.TAIL_QUEUE_PREFIX}{uuid.uuid4().hex}"
        self._queue = Queue(  # auto-deleted where the broker can (AMQP), deleted on close
            name,
            bindings=[binding(topic, routing_key=p) for p in self.patterns],
            durable=False,
            auto_delete=True,
        )
        self._connection = Connection(
            broker_url, transport=transport, transport_options=transport_options or {}
        )
        self._consumer: Consumer | None = None
        self._ready: collections.deque[CloudEvent] = collections.deque()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        patterns: Iterable[str] = ("#",),
        *,
        organization: str | None = None,
    ) -> EventTail:
        settings.prepare_home()
        return cls(
            patterns,
            broker_url=settings.resolved_broker_url,
            transport_options=settings.broker_transport_options(),
            exchange=settings.events_exchange,
            organization=organization,
            transport=settings.broker_transport,
        )

    def open(self) -> Self:
        """Bind the queue: events published from now on are seen."""
        if self._consumer is None:
            self._consumer = Consumer(
                self._connection.default_channel,
                queues=[self._queue],
                on_message=self._on_message,
                accept=["json"],
                prefetch_count=100,
            )
            self._consumer.consume()
        return self

    def next(self, timeout_s: float) -> CloudEvent | None:
        """The next event, or None if none came within ``timeout_s``."""
        self.open()
        deadline = time.monotonic() + timeout_s
        while not self._ready:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                self._connection.drain_events(timeout=min(remaining, 0.25))
            except TimeoutError:
                continue
        return self._ready.popleft()

    def events(self, *, idle_timeout_s: float | None = None) -> Iterator[CloudEvent]:
        """Events as they come; ends after ``idle_timeout_s`` without one (never if None)."""
        while True:
            event = self.next(idle_timeout_s if idle_timeout_s is not None else 3600.0)
            if event is not None:
                yield event
            elif idle_timeout_s is not None:
                return

    def _on_message(self, message: Any) -> None:
        try:
            event = parse_event(message.decode())
        except Exception as exc:
            log.warning("skipping a message that is not a CloudEvent: %s", exc)
        else:
            if self.organization is None or event.organizationid == self.organization:
                self._ready.append(event)
        message.ack()

    def close(self) -> None:
        try:
            if self._consumer is not None:
                self._consumer.cancel()
            self._queue.bind(self._connection.default_channel).delete()
        finally:
            self._connection.release()

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
