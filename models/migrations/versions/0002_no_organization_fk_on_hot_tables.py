"""no organization foreign key on the tables every command writes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Every row inserted into devices, customers, ownerships, outbox and processed_commands
checked its organization through a foreign key: a lookup and a KEY SHARE row lock on the
one organization row per inserted row, shared by every concurrent transaction of the
organization (a fifth of PostgreSQL's time in a 1,000-item assign_devices). The pipeline
checks the organization of every command before it writes anything, organizations are
never deleted, and ownerships keep their foreign keys to devices and customers.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("devices", "customers", "ownerships", "outbox", "processed_commands")


def _name(table: str) -> str:
    return f"fk_{table}_organization_id_organizations"


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(_name(table), type_="foreignkey")


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_foreign_key(
                _name(table), "organizations", ["organization_id"], ["id"], ondelete="CASCADE"
            )
