"""Engines: PostgreSQL through psycopg 3, or SQLite set up for several processes at once."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from models.store_sql import json_text

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option of a SQLite connection whose transactions only read: they begin
# DEFERRED (a snapshot, no lock; WAL lets them run beside the writer) instead of IMMEDIATE.
SQLITE_READ_ONLY = "custody_sqlite_read_only"


# A pooled connection idle for longer than this is checked before use.
PING_AFTER_IDLE_S = 10.0


def create_engine(
    url: str, *, ping_after_idle_s: float = PING_AFTER_IDLE_S, **kwargs: Any
) -> Engine:
    """Build an engine; connects lazily, on first use. JSON columns are written with the
    same encoder as the set-based statements' JSON parameters."""
    kwargs.setdefault("json_serializer", json_text)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    kwargs.setdefault("pool_size", 5)
    engine = sa.create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine, ping_after_idle_s)
    return engine


def _ping_when_idle(engine: Engine, after_s: float) -> None:
    """Check a connection taken from the pool only when it sat idle for a while.

    ``pool_pre_ping`` checks before every use: three round trips (BEGIN, SELECT 1,
    ROLLBACK) per command on a busy worker. A connection in steady use does not go stale
    unnoticed, and one that broke between two uses fails its command with a transient
    fault, which is retried; a connection that idled (the database may have restarted
    meanwhile) is checked and, if dead, replaced by the pool.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("checked_in_at")
        if since is None or time.monotonic() - since < after_s:
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi_connection.rollback()
        except Exception as exc:
            raise sa.exc.DisconnectionError(f"stale pooled connection: {exc}") from exc


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    engine = sa.create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, open transactions; then take the write lock at
        # BEGIN so two processes never deadlock upgrading a read lock.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get(SQLITE_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
