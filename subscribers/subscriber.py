"""``Subscriber``: a handler fed by a durable, named queue bound to the events exchange.

Guarantees: every event published while the queue exists reaches the handler at least
once, in publication order; a redelivered event (same id) is not handed over again once
the handler succeeded; a handler that keeps failing is retried a bounded number of times
and its event is then parked on ``<queue>.parked`` with the reason, never dropped.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from kombu import Connection, Consumer, Producer

from models import constants as c
from models.events import CloudEvent
from models.settings import Settings
from models.topology import direct_queue, subscriber_queue
from subscribers.dedup import SeenEvents, seen_events_for

log = logging.getLogger("custody.subscriber")

Handler = Callable[[CloudEvent], None]

MAX_NAME_CHARS = 64
MAX_PATTERN_CHARS = 255
MAX_REASON_CHARS = 2_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_WORD = re.compile(r"^(\*|#|[A-Za-z0-9_-]+)$")


def check_name(name: str) -> str:
    """A subscriber name becomes part of a queue name: letters, digits, '-' and '_'."""
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > MAX_NAME_CHARS:
        raise ValueError(
            f"subscriber name {name!r}: 1 to {MAX_NAME_CHARS} letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def check_patterns(patterns: Iterable[str]) -> list[str]:
    """Topic patterns: words joined by '.', a word being a name, '*' (one word) or '#'
    (any number of words), e.g. ``device.*``, ``access.#``, ``#``."""
    checked = list(patterns)
    if not checked:
        raise ValueError("at least one pattern is needed, e.g. 'device.*' or '#'")
    for pattern in checked:
        if (
            not isinstance(pattern, str)
            or len(pattern) > MAX_PATTERN_CHARS
            or not all(_WORD.match(word) for word in pattern.split("."))
        ):
            raise ValueError(
                f"pattern {pattern!r}: words of letters, digits, '-' or '_' joined by '.', "
                "or the wildcards '*' (one word) and '#' (any words)"
            )
    return checked


def parse_event(body: Any) -> CloudEvent:
    """The CloudEvent in a message body; attributes this version does not know are ignored."""
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object, got {type(body).__name__}")
    return CloudEvent.model_validate(
        {k: v for k, v in body.items() if k in CloudEvent.model_fields}
    )


@dataclass
class SubscriberStats:
    handled: int = 0  # handler calls that succeeded
    duplicates: int = 0  # redeliveries of handled events, acknowledged without a call
    retries: int = 0  # handler calls that failed and were tried again
    parked: int = 0  # events moved to the parked queue


class Subscriber:
    """One subscriber name = one durable queue ``custody.subscriber.<name>``; run several
    processes with the same name to share its load, different names to each get every
    event their patterns match."""

    def __init__(
        self,
        name: str,
        patterns: Iterable[str],
        handler: Handler,
        *,
        broker_url: str = "filesystem://localhost/",
        transport_options: dict[str, Any] | None = None,
        exchange: str = c.EVENTS_EXCHANGE,
        seen: SeenEvents | None = None,
        max_attempts: int = 5,
        retry_backoff_s: float = 0.2,
        prefetch_count: int = 10,
        transport: str | None = None,
    ) -> None:
        self.name = check_name(name)
        self.patterns = check_patterns(patterns)
        if max_attempts < 1:
            raise ValueError("max_attempts: at least 1")
        self.handler = handler
        self.queue_name = c.SUBSCRIBER_QUEUE_PREFIX + name
        self.parked_queue_name = self.queue_name + c.PARKED_QUEUE_SUFFIX
        self.stats = SubscriberStats()
        self._queue = subscriber_queue(self.queue_name, exchange, self.patterns)
        self._parked = direct_queue(self.parked_queue_name)
        self._plain = direct_queue(self.queue_name)
        self._seen = seen
        self._max_attempts = max_attempts
        self._retry_backoff_s = retry_backoff_s
        self._prefetch_count = prefetch_count
        self._connection = Connection(
            broker_url, transport=transport, transport_options=transport_options or {}
        )
        self._producer: Producer | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, name: str, patterns: Iterable[str], handler: Handler
    ) -> Subscriber:
        """Deduplicates in Redis when the broker is Redis, else in a file under HOME."""
        settings.prepare_home()
        return cls(
            name,
            patterns,
            handler,
            broker_url=settings.resolved_broker_url,
            transport_options=settings.broker_transport_options(),
            exchange=settings.events_exchange,
            seen=seen_events_for(settings, check_name(name)),
            max_attempts=settings.subscriber_max_attempts,
            retry_backoff_s=settings.subscriber_retry_backoff_s,
            prefetch_count=settings.subscriber_prefetch,
            transport=settings.broker_transport,
        )

    # -- the queue ------------------------------------------------------------------------

    def declare(self) -> None:
        """Create the queue and its bindings: from now on it collects events, running or not."""
        channel = self._connection.default_channel
        self._queue.bind(channel).declare()
        self._parked.bind(channel).declare()

    def pending(self) -> int:
        """Events waiting in the queue (not counting those being handled)."""
        return self._size(self._queue)

    def parked(self) -> int:
        return self._size(self._parked)

    def _size(self, queue: Any) -> int:
        bound = queue.bind(self._connection.default_channel)
        return int(bound.queue_declare(passive=False).message_count)

    def replay_parked(self) -> int:
        """Move every parked event back to the queue, to be handled again; how many."""
        channel = self._connection.default_channel
        parked = self._parked.bind(channel)
        moved = 0
        while (message := parked.get(no_ack=False)) is not None:
            headers = {
                k: v for k, v in (message.headers or {}).items() if not k.startswith("x-custody-")
            }
            self._republish(message, self.queue_name, headers)
            message.ack()
            moved += 1
        return moved

    def delete(self) -> None:
        """Remove the queue, its bindings and its parked queue (the subscriber unsubscribes)."""
        channel = self._connection.default_channel
        self._queue.bind(channel).delete()
        self._parked.bind(channel).delete()

    # -- consuming ------------------------------------------------------------------------

    def consume(
        self,
        *,
        stop: threading.Event | None = None,
        idle_timeout_s: float | None = None,
        until: Callable[[], bool] | None = None,
    ) -> None:
        """Handle events until ``stop`` is set, ``until()`` is true, or no event came for
        ``idle_timeout_s``. A lost broker connection is re-established."""
        failures = 0
        while True:
            try:
                self.declare()
                self._consume(stop, idle_timeout_s, until)
                return
            except self._connection.recoverable_connection_errors as exc:
                failures += 1
                delay = min(30.0, 0.5 * 2**failures)
                log.warning(
                    "subscriber %s lost the broker (retry in %.1fs): %s", self.name, delay, exc
                )
                self._reconnect()
                if stop is not None and stop.wait(delay):
                    return
                if stop is None:
                    time.sleep(delay)

    def _consume(
        self,
        stop: threading.Event | None,
        idle_timeout_s: float | None,
        until: Callable[[], bool] | None,
    ) -> None:
        consumer = Consumer(
            self._connection.default_channel,
            queues=[self._queue],
            on_message=self._on_message,
            accept=["json"],
            prefetch_count=self._prefetch_count,
        )
        with consumer:
            idle_since = time.monotonic()
            while not ((stop is not None and stop.is_set()) or (until is not None and until())):
                try:
                    self._connection.drain_events(timeout=0.25)
                    idle_since = time.monotonic()
                except TimeoutError:
                    if (
                        idle_timeout_s is not None
                        and time.monotonic() - idle_since >= idle_timeout_s
                    ):
                        return

    def _on_message(self, message: Any) -> None:
        try:
            event = parse_event(message.decode())
        except Exception as exc:
            self._park(message, f"not a CloudEvent: {exc}", attempts=0)
            return
        if self._seen is not None and self._seen.seen(event.id):
            self.stats.duplicates += 1
            message.ack()
            return
        for attempt in range(1, self._max_attempts + 1):
            try:
                self.handler(event)
                break
            except Exception as exc:
                if attempt == self._max_attempts:
                    log.error(
                        "subscriber %s parks event %s after %d attempts: %r",
                        self.name,
                        event.id,
                        attempt,
                        exc,
                    )
                    self._park(
                        message, f"handler failed {attempt} time(s): {exc!r}", attempts=attempt
                    )
                    return
                self.stats.retries += 1
                delay = self._retry_backoff_s * 2 ** (attempt - 1)
                log.warning(
                    "subscriber %s: handler failed on %s (attempt %d, retry in %.2fs): %r",
                    self.name,
                    event.id,
                    attempt,
                    delay,
                    exc,
                )
                time.sleep(delay)
        if self._seen is not None:
            self._seen.remember(event.id)
        self.stats.handled += 1
        message.ack()

    def _park(self, message: Any, reason: str, *, attempts: int) -> None:
        """Parked first, acknowledged second: a crash in between parks it twice, loses nothing."""
        headers = dict(message.headers or {})
        headers.update(
            {
                "x-custody-parked-reason": reason[:MAX_REASON_CHARS],
                "x-custody-attempts": attempts,
                "x-custody-subscriber": self.name,
                "x-custody-parked-at": datetime.now(UTC).isoformat(),
            }
        )
        self._republish(message, self.parked_queue_name, headers)
        self.stats.parked += 1
        message.ack()

    def _republish(self, message: Any, queue_name: str, headers: dict[str, Any]) -> None:
        if self._producer is None:
            self._producer = Producer(self._connection.default_channel)
        # Declared as a plain queue: republishing never adds bindings to the subscriber's.
        target = self._parked if queue_name == self.parked_queue_name else self._plain
        properties = message.properties or {}
        self._producer.publish(
            message.body,
            exchange="",
            routing_key=queue_name,
            declare=[target],
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            headers=headers,
            delivery_mode=2,
            message_id=properties.get("message_id"),
            correlation_id=properties.get("correlation_id"),
            retry=True,
        )

    def _reconnect(self) -> None:
        try:
            self._connection.release()
        finally:
            self._connection = self._connection.clone()
            self._producer = None

    def close(self) -> None:
        try:
            self._connection.release()
        finally:
            if self._seen is not None:
                self._seen.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
