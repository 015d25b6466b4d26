"""The outbox relay: publishes committed events to the events exchange, then marks them sent.

Delivery is at least once. A relay that dies after publishing a batch and before marking
it leaves the rows unsent, so the batch is published again; subscribers deduplicate on
the event id. Order: rows come from the feed in commit order per device (see
``models.store.SqlOutboxFeed``) and are published one after the other in that order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from kombu import Connection

from models import constants as c
from models.database import create_engine
from models.outbox_feed import SqlOutboxFeed
from models.ports import OutboxFeed, PendingEvent
from models.settings import Settings
from models.topology import events_exchange

log = logging.getLogger("custody.relay")

PRUNE_EVERY_S = 600.0
MAX_BACKOFF_S = 30.0

AfterPublish = Callable[[list[PendingEvent]], None]


class EventPublisher(Protocol):
    def publish(self, events: list[PendingEvent]) -> None:
        """Publish in the given order; return only when the broker has taken them all."""
        ...

    def close(self) -> None: ...


class KombuPublisher:
    """Publishes CloudEvents to the topic exchange: routing key = event type, body = the
    event as JSON, message id and correlation id = the event id. On AMQP with publisher
    confirms, so ``publish`` returns only after the broker acknowledged every message."""

    def __init__(
        self,
        broker_url: str,
        *,
        transport_options: dict[str, Any] | None = None,
        exchange: str = c.EVENTS_EXCHANGE,
        transport: str | None = None,
    ) -> None:
        options = dict(transport_options or {})
        scheme = broker_url.split(":", 1)[0]
        if scheme in {"amqp", "amqps", "pyamqp"}:
            options["confirm_publish"] = True
        self._connection = Connection(broker_url, transport=transport, transport_options=options)
        self._exchange = events_exchange(exchange)
        self._producer: Any = None
        # The filesystem transport orders a queue's messages by the millisecond in their
        # file name, then by the writing process's count of messages. Within a process
        # that is the order of publication; another process's relay writing in the same
        # millisecond could sort before it. There, a batch starts in a millisecond later
        # than anything published before it (relays take turns batch by batch).
        self._spaced = scheme == "filesystem"

    def publish(self, events: list[PendingEvent]) -> None:
        if self._producer is None:
            self._producer = self._connection.Producer(serializer="json")
        if self._spaced:  # anything published before this call is named by now or earlier
            began_ms = _millisecond()
            while _millisecond() <= began_ms:
                time.sleep(0.0002)
        for event in events:
            self._producer.publish(
                event.payload,
                exchange=self._exchange,
                routing_key=event.type,
                declare=[self._exchange],
                serializer="json",
                delivery_mode=2,
                message_id=event.event_id,
                correlation_id=event.event_id,
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
            )

    def close(self) -> None:
        self._connection.release()


def _millisecond() -> int:
    return round(time.monotonic() * 1000)  # the transport's own file-name clock


class Relay:
    """Moves events from the outbox to the broker, batch by batch."""

    def __init__(
        self,
        feed: OutboxFeed,
        publisher: EventPublisher,
        *,
        batch_size: int = 100,
        poll_interval_s: float = 1.0,
        retention_s: float = 0.0,
        after_publish: AfterPublish | None = None,
        on_published: AfterPublish | None = None,
    ) -> None:
        self._feed = feed
        self._on_published = on_published  # after marking sent: metrics
        self._publisher = publisher
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._retention_s = retention_s
        self._after_publish = after_publish  # between publishing and marking: fault drills
        self._pruned_at = 0.0
        self.published = 0

    def run_once(self) -> int:
        """Publish one batch of unsent events and mark it sent; how many it held."""
        with self._feed.claim(self._batch_size) as batch:
            if not batch.events:
                return 0
            self._publisher.publish(batch.events)
            if self._after_publish is not None:
                self._after_publish(batch.events)
            batch.mark_sent()
        self.published += len(batch.events)
        if self._on_published is not None:
            self._on_published(batch.events)
        for event in batch.events:
            log.debug(
                "published %s %s",
                event.type,
                event.event_id,
                extra={
                    "event_id": event.event_id,
                    "request_id": event.payload.get("correlationid"),
                    "organization_id": event.payload.get("organizationid"),
                },
            )
        log.debug(
            "published %d event(s), up to outbox id %d", len(batch.events), batch.events[-1].id
        )
        return len(batch.events)

    def run(self, stop: threading.Event) -> None:
        """Relay until ``stop`` is set: drain the outbox, then sleep until a commit signal
        (or the poll interval) says there may be more. Faults are logged and retried."""
        log.info(
            "relay started (batch %d, poll every %.1fs)", self._batch_size, self._poll_interval_s
        )
        failures = 0
        while not stop.is_set():
            try:
                count = self.run_once()
                self._maybe_prune()
                if count < self._batch_size:  # caught up: sleep until a commit signal
                    self._feed.wait(self._poll_interval_s)
                failures = 0
            except Exception as exc:
                failures += 1
                delay = min(MAX_BACKOFF_S, 0.25 * 2**failures)
                log.warning("relay batch failed (retry in %.1fs): %s", delay, exc)
                stop.wait(delay)
        log.info("relay stopped after publishing %d event(s)", self.published)

    def _maybe_prune(self) -> None:
        if self._retention_s <= 0 or time.monotonic() - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = time.monotonic()
        before = datetime.now(UTC) - timedelta(seconds=self._retention_s)
        pruned = self._feed.prune_sent(before)
        if pruned:
            log.info("deleted %d sent outbox row(s) older than %s", pruned, before.isoformat())

    def close(self) -> None:
        try:
            self._publisher.close()
        finally:
            self._feed.close()


class _SettingsRelay(Relay):
    """A relay that owns its engine, built from settings."""

    def __init__(
        self,
        settings: Settings,
        *,
        after_publish: AfterPublish | None = None,
        on_published: AfterPublish | None = None,
    ) -> None:
        settings.prepare_home()
        self._engine = create_engine(settings.resolved_database_url)
        super().__init__(
            SqlOutboxFeed(self._engine),
            KombuPublisher(
                settings.resolved_broker_url,
                transport_options=settings.broker_transport_options(),
                exchange=settings.events_exchange,
                transport=settings.broker_transport,
            ),
            batch_size=settings.relay_batch_size,
            poll_interval_s=settings.relay_poll_interval_s,
            retention_s=settings.outbox_retention_s,
            after_publish=after_publish,
            on_published=on_published,
        )

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._engine.dispose()


def relay_from_settings(settings: Settings, *, after_publish: AfterPublish | None = None) -> Relay:
    """Connects on first use only; counts what it publishes when metrics are served."""
    on_published = None
    if settings.metrics_port is not None:
        from worker.metrics import observe_published

        on_published = observe_published
    return _SettingsRelay(settings, after_publish=after_publish, on_published=on_published)


class RelayThread(threading.Thread):
    """The relay inside another process (the worker of the embedded default)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="custody-relay", daemon=True)
        self._settings = settings
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            relay = relay_from_settings(self._settings)  # made here: its connections stay here
        except Exception:
            log.exception("the relay could not start; events stay in the outbox")
            return
        try:
            relay.run(self._stopping)
        finally:
            relay.close()

    def stop(self, *, timeout_s: float = 15.0) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout_s)
