"""The subscribing side: consume events from the events exchange, deduplicated.

Needs only the broker (and Redis or a local file to remember handled events); never
imports SQLAlchemy or Celery.
"""

from subscribers.dedup import RedisSeenEvents, SeenEvents, SqliteSeenEvents
from subscribers.describe import describe_event
from subscribers.subscriber import Subscriber, SubscriberStats
from subscribers.tail import EventTail

__all__ = [
    "EventTail",
    "RedisSeenEvents",
    "SeenEvents",
    "SqliteSeenEvents",
    "Subscriber",
    "SubscriberStats",
    "describe_event",
]
