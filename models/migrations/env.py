"""Alembic environment: runs on the engine custody passes in, never a URL of its own."""

from __future__ import annotations

from alembic import context

from models.tables import metadata

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A batch migration recreates a table: dropping the old one with foreign keys on
        # would delete (ON DELETE CASCADE) the rows that refer to it. Off for the migration
        # (it only takes effect outside a transaction), checked and back on afterwards.
        connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=sqlite,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        if sqlite:
            raw = connection.connection.dbapi_connection
            broken = raw.execute("PRAGMA foreign_key_check").fetchall()
            raw.execute("PRAGMA foreign_keys=ON")
    if sqlite and broken:
        raise RuntimeError(f"rows without the row they refer to after migrating: {broken}")
