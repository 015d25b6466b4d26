"""The relay's side of the outbox, on SQLAlchemy: committed rows not yet published, handed
out in commit order per device, and a signal that wakes a relay when rows commit."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: relays take turns within one process only
    fcntl = None  # type: ignore[assignment]

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from models import tables as t
from models.constants import OUTBOX_CHANNEL
from models.database import SQLITE_READ_ONLY
from models.errors import Transient
from models.ports import PendingEvent
from models.store import _describe, is_transient, utcnow

log = logging.getLogger("custody.outbox")


def outbox_unsent_count(engine: Engine) -> int:
    """How many committed events wait for the relay (the outbox lag)."""
    with engine.connect() as conn:
        o = t.outbox
        query = sa.select(sa.func.count()).select_from(o).where(o.c.sent_at.is_(None))
        return int(conn.execute(query).scalar_one())


# Key of the transaction-level advisory lock a PostgreSQL relay holds while it publishes a batch.
_RELAY_LOCK_KEY = (0x637573, 0x6F7574)  # "cus", "out"


class SqlOutboxBatch:
    """The rows a relay holds. On PostgreSQL they are marked inside the claim's
    transaction; on SQLite (``deferred``) the marking waits for the end of the claim and
    then takes a short write transaction of its own."""

    def __init__(
        self,
        conn: Connection | None,
        events: list[PendingEvent],
        clock: Callable[[], datetime],
        *,
        deferred: bool = False,
    ) -> None:
        self._conn = conn
        self._clock = clock
        self._deferred = deferred
        self._marked = False
        self.events = events

    def mark_sent(self) -> None:
        if not self.events:
            return
        if self._deferred:
            self._marked = True
        else:
            assert self._conn is not None
            self._update(self._conn)

    def _update(self, conn: Connection) -> None:
        o = t.outbox
        ids = [e.id for e in self.events]
        conn.execute(sa.update(o).where(o.c.id.in_(ids)).values(sent_at=self._clock()))


def _unsent(conn: Connection, limit: int) -> list[PendingEvent]:
    o = t.outbox
    query = (
        sa.select(o.c.id, o.c.event_id, o.c.type, o.c.subject, o.c.payload)
        .where(o.c.sent_at.is_(None))
        .order_by(o.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [
        PendingEvent(
            id=row.id,
            event_id=row.event_id,
            type=row.type,
            subject=row.subject,
            payload=row.payload,
        )
        for row in conn.execute(query)
    ]


class SqlOutboxFeed:
    """Committed, unsent outbox rows, handed to relays in id order.

    Ids of one device's rows follow its commit order: every change to a device locks the
    device row before it writes its outbox rows. Several relays at once stay in that order
    because one relay publishes at a time, the others finding the turn taken and waiting
    for the next signal: on PostgreSQL the turn is a transaction-level advisory lock, and
    the rows are also locked ``FOR UPDATE SKIP LOCKED`` so nothing else marks them while
    they are published. On SQLite the turn is a lock on a file beside the database, and
    the batch is read in a snapshot without the database's write lock: commands keep
    committing while a relay publishes (holding the write lock meanwhile left every worker
    waiting in SQLite's busy handler). A relay that dies mid-batch releases its turn and
    its rows stay unsent.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._clock = clock
        self._signal = _signal_for(engine)

    @contextmanager
    def claim(self, limit: int) -> Iterator[SqlOutboxBatch]:
        try:
            self._signal.listen()  # before reading, so no commit slips between read and wait
            if self._engine.dialect.name == "sqlite":
                with self._sqlite_claim(limit) as batch:
                    yield batch
                return
            with self._engine.connect() as conn, conn.begin():
                if conn.dialect.name == "postgresql":
                    lock = sa.func.pg_try_advisory_xact_lock(*_RELAY_LOCK_KEY)
                    if not conn.execute(sa.select(lock)).scalar_one():
                        yield SqlOutboxBatch(conn, [], self._clock)  # another relay publishes
                        return
                yield SqlOutboxBatch(conn, _unsent(conn, limit), self._clock)
        except sa.exc.SQLAlchemyError as exc:
            if is_transient(exc):
                raise Transient(f"outbox unavailable: {_describe(exc)}") from exc
            raise

    @contextmanager
    def _sqlite_claim(self, limit: int) -> Iterator[SqlOutboxBatch]:
        with _relay_turn(self._engine) as held:
            if not held:
                yield SqlOutboxBatch(None, [], self._clock)  # another relay publishes
                return
            with self._engine.connect() as reader:
                reader.execution_options(**{SQLITE_READ_ONLY: True})
                with reader.begin():
                    events = _unsent(reader, limit)
            batch = SqlOutboxBatch(None, events, self._clock, deferred=True)
            yield batch
            if batch._marked:
                with self._engine.begin() as writer:
                    batch._update(writer)

    def wait(self, timeout_s: float) -> bool:
        return self._signal.wait(timeout_s)

    def prune_sent(self, before: datetime) -> int:
        o = t.outbox
        stmt = sa.delete(o).where(o.c.sent_at.is_not(None), o.c.sent_at < before)
        try:
            with self._engine.begin() as conn:
                return int(conn.execute(stmt).rowcount)
        except sa.exc.SQLAlchemyError as exc:
            if is_transient(exc):
                raise Transient(f"outbox unavailable: {_describe(exc)}") from exc
            raise

    def close(self) -> None:
        self._signal.close()


class _Signal:
    """No way to be told: wait out the timeout (the relay then polls)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._raw: Any = None  # the pool's wrapper, detached
        self._driver: Any = None  # the driver's connection inside it

    def listen(self) -> None:
        pass

    def wait(self, timeout_s: float) -> bool:
        time.sleep(timeout_s)
        return False

    def _open(self) -> Any:
        """A driver connection of its own, never returned to the pool."""
        raw = self._engine.raw_connection()
        driver = raw.driver_connection
        raw.detach()
        self._raw = raw
        return driver

    def close(self) -> None:
        if self._raw is not None:
            try:
                self._raw.close()
            except Exception:
                log.debug("closing the outbox signal connection failed", exc_info=True)
            self._raw = self._driver = None


class _PostgresSignal(_Signal):
    """``LISTEN`` on the channel the outbox notifies in the writing transaction: a relay
    wakes as soon as events commit, and not for a rollback."""

    def listen(self) -> None:
        if self._driver is not None:
            return
        try:
            pg = self._open()
            pg.rollback()
            pg.autocommit = True
            pg.execute(f"LISTEN {OUTBOX_CHANNEL}")
            self._driver = pg
        except Exception as exc:
            log.warning("cannot LISTEN for outbox commits (polling meanwhile): %s", exc)
            self.close()

    def wait(self, timeout_s: float) -> bool:
        self.listen()
        pg = self._driver
        if pg is None:
            return super().wait(timeout_s)
        try:
            woken = any(True for _ in pg.notifies(timeout=timeout_s, stop_after=1))
            if woken:  # notifications of commits made meanwhile say nothing more
                for _ in pg.notifies(timeout=0.001):
                    pass
            return woken
        except Exception as exc:
            log.warning("lost the outbox LISTEN connection (reconnecting): %s", exc)
            self.close()
            return False


class _SqliteSignal(_Signal):
    """SQLite cannot notify; ``PRAGMA data_version`` changes when another connection
    commits, and reading it takes no lock, so polling it often is cheap."""

    POLL_S = 0.02

    def listen(self) -> None:
        if self._driver is None:
            self._driver = self._open()
            self._version = self._read()

    def _read(self) -> int:
        return int(self._driver.execute("PRAGMA data_version").fetchone()[0])

    def wait(self, timeout_s: float) -> bool:
        self.listen()
        deadline = time.monotonic() + timeout_s
        while True:
            version = self._read()
            if version != self._version:
                self._version = version
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(self.POLL_S, remaining))


_PROCESS_TURNS: dict[str, threading.Lock] = {}  # databases with no file to lock beside


@contextmanager
def _relay_turn(engine: Engine) -> Iterator[bool]:
    """Whether this relay holds the SQLite database's relay turn, not waited for: a lock on
    ``<database file>.relay-lock``, seen by relays of every process on the machine (and by
    the other relays of this one: each turn opens the file anew)."""
    database = engine.url.database
    if fcntl is None or not database or database == ":memory:" or database.startswith("file:"):
        lock = _PROCESS_TURNS.setdefault(str(engine.url), threading.Lock())
        held = lock.acquire(blocking=False)
        try:
            yield held
        finally:
            if held:
                lock.release()
        return
    with open(f"{database}.relay-lock", "a+b") as turn:
        try:
            fcntl.flock(turn.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held = False
        else:
            held = True
        yield held  # closing the file gives the turn back


def _signal_for(engine: Engine) -> _Signal:
    kinds: dict[str, type[_Signal]] = {"postgresql": _PostgresSignal, "sqlite": _SqliteSignal}
    return kinds.get(engine.dialect.name, _Signal)(engine)
