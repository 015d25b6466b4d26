"""outbox payloads stored as json, not jsonb

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

An outbox payload is written once, read back whole by the relay and published as it is;
nothing queries inside it. ``json`` keeps the text as written (checked, not converted);
``jsonb`` builds a binary copy on the way in and turns it back into text on the way out.
With the rows sent as one JSON parameter read by ``json_to_recordset``, the outbox insert
of a 1,000-item batch took a third less of PostgreSQL's time.

The outbox is kept small by pruning, so the rewrite of the table this takes is short.
The idempotency records keep ``jsonb``: that table grows with every command, and
rewriting it would hold the workers up for as long as it takes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite stores both as text
    op.alter_column(
        "outbox",
        "payload",
        type_=sa.JSON(),
        existing_type=postgresql.JSONB(),
        existing_nullable=False,
        postgresql_using="payload::json",
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column(
        "outbox",
        "payload",
        type_=postgresql.JSONB(),
        existing_type=sa.JSON(),
        existing_nullable=False,
        postgresql_using="payload::jsonb",
    )
