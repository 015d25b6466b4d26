"""Which events a subscriber has handled, so a redelivered event does not call its handler
twice. Two stores behind one small protocol; neither needs SQLAlchemy."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol

from models.settings import Settings

PRUNE_EVERY = 1_000  # remembered ids between two deletions of expired ones


class SeenEvents(Protocol):
    def seen(self, event_id: str) -> bool: ...

    def remember(self, event_id: str) -> None:
        """Called after the handler succeeded; kept for the store's time to live."""
        ...

    def close(self) -> None: ...


class SqliteSeenEvents:
    """One SQLite file per subscriber (stdlib ``sqlite3``): for a subscriber whose
    instances share a machine."""

    def __init__(self, path: Path, *, ttl_s: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, seen_at REAL NOT NULL)"
        )
        self._since_prune = 0

    def seen(self, event_id: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM seen WHERE event_id = ? AND seen_at >= ?",
                (event_id, time.time() - self._ttl_s),
            ).fetchone()
        return row is not None

    def remember(self, event_id: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO seen (event_id, seen_at) VALUES (?, ?)",
                (event_id, time.time()),
            )
            self._since_prune += 1
            if self._since_prune >= PRUNE_EVERY:
                self._since_prune = 0
                self._db.execute("DELETE FROM seen WHERE seen_at < ?", (time.time() - self._ttl_s,))

    def close(self) -> None:
        self._db.close()


class RedisSeenEvents:
    """One Redis key per handled event, expiring after the time to live: for a subscriber
    scaled over several machines."""

    def __init__(self, url: str, name: str, *, ttl_s: float) -> None:
        import redis

        self._redis = redis.Redis.from_url(url)
        self._prefix = f"custody:subscriber:{name}:seen:"
        self._ttl_s = max(1, int(ttl_s))

    def seen(self, event_id: str) -> bool:
        return bool(self._redis.exists(self._prefix + event_id))

    def remember(self, event_id: str) -> None:
        self._redis.set(self._prefix + event_id, 1, ex=self._ttl_s)

    def close(self) -> None:
        self._redis.close()


def seen_events_for(settings: Settings, name: str) -> SeenEvents:
    """Redis when the broker is Redis (shared by every instance), else a file under HOME."""
    url = settings.resolved_broker_url
    if url.startswith(("redis://", "rediss://")):
        return RedisSeenEvents(url, name, ttl_s=settings.subscriber_seen_ttl_s)
    path = settings.home.resolve() / "subscribers" / f"{name}.seen.sqlite3"
    return SqliteSeenEvents(path, ttl_s=settings.subscriber_seen_ttl_s)
