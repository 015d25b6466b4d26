"""The SQLAlchemy tables. Every row belongs to one organization; invariants are constraints."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Stored as UTC everywhere (naive on SQLite), always returned timezone-aware."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json: Any = sa.JSON().with_variant(JSONB(), "postgresql")
# Kept as written (``json`` on PostgreSQL): a document that is only stored and read back
# whole, never queried inside (migration 0003).
JsonText: Any = sa.JSON()
BigId: Any = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite rowid aliasing


def _id() -> sa.Column[int]:
    return sa.Column("id", BigId, primary_key=True, autoincrement=True)


def _org(*, foreign_key: bool = True) -> sa.Column[str]:
    """The tenant column. Tables that every assignment writes do without the foreign key
    (migration 0002): the pipeline checks the organization before it writes anything."""
    if not foreign_key:
        return sa.Column("organization_id", sa.String(64), nullable=False)
    return sa.Column(
        "organization_id",
        sa.String(64),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    )


def _created() -> sa.Column[datetime]:
    return sa.Column("created_at", UTCDateTime(), nullable=False)


organizations = sa.Table(
    "organizations",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    _created(),
)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # the public keyId
    _org(),
    sa.Column("secret_encrypted", sa.Text(), nullable=False),
    _created(),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
)

devices = sa.Table(
    "devices",
    metadata,
    _id(),
    _org(foreign_key=False),
    sa.Column("identifier", sa.String(128), nullable=False),
    sa.Column("device_type", sa.String(64), nullable=True),
    _created(),
    sa.UniqueConstraint("organization_id", "identifier", name="uq_devices_org_identifier"),
)

customers = sa.Table(
    "customers",
    metadata,
    _id(),
    _org(foreign_key=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.String(320), nullable=False),
    _created(),
    sa.UniqueConstraint("organization_id", "email", name="uq_customers_org_email"),
)

# No foreign keys (migration 0002): owner rows are written only with the ids of a device and
# customers locked, inserted or read in the same transaction, and nothing deletes those.
ownerships = sa.Table(
    "ownerships",
    metadata,
    _id(),
    _org(foreign_key=False),
    sa.Column("device_id", BigId, nullable=False),
    sa.Column("customer_id", BigId, nullable=False),
    _created(),
    sa.UniqueConstraint("device_id", "customer_id", name="uq_ownerships_device_customer"),
)

accesses = sa.Table(
    "accesses",
    metadata,
    _id(),
    _org(),
    sa.Column("device_id", BigId, sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    sa.Column(
        "customer_id", BigId, sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("access_level", sa.SmallInteger(), nullable=False),
    sa.Column("remote_access_disabled", sa.Boolean(), nullable=False),
    sa.Column("week_days", sa.SmallInteger(), nullable=True),
    sa.Column("start_date", UTCDateTime(), nullable=True),
    sa.Column("end_date", UTCDateTime(), nullable=True),
    sa.Column("day_start_time", sa.Time(), nullable=True),
    sa.Column("day_end_time", sa.Time(), nullable=True),
    sa.Column("time_zone", sa.String(64), nullable=False),
    sa.Column("granted_by_customer_id", BigId, sa.ForeignKey("customers.id"), nullable=True),
    _created(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    # Set when the access stops counting as "the" access of this user and device:
    # revoked, or expired and superseded by a new grant.
    sa.Column("closed_at", UTCDateTime(), nullable=True),
    sa.Index(
        "uq_accesses_one_open",
        "device_id",
        "customer_id",
        unique=True,
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
    ),
)

processed_commands = sa.Table(
    "processed_commands",
    metadata,
    _id(),
    _org(foreign_key=False),
    sa.Column("request_id", sa.String(255), nullable=False),
    sa.Column("task", sa.String(64), nullable=False),
    sa.Column("command_hash", sa.String(64), nullable=False),
    sa.Column("status_code", sa.SmallInteger(), nullable=False),
    sa.Column("result", Json, nullable=False),
    _created(),
    sa.UniqueConstraint("organization_id", "request_id", name="uq_processed_org_request"),
)

# Final answers that could not be bound to an idempotency key: unauthenticated commands,
# commands without a usable requestId, and requestId reuse with another body.
rejections = sa.Table(
    "rejections",
    metadata,
    _id(),
    sa.Column("message_id", sa.String(255), nullable=False),
    sa.Column("organization_id", sa.String(64), nullable=True),
    sa.Column("request_id", sa.String(255), nullable=True, index=True),
    sa.Column("task", sa.String(255), nullable=False),
    sa.Column("status_code", sa.SmallInteger(), nullable=False),
    sa.Column("result", Json, nullable=False),
    sa.Column("body", sa.Text(), nullable=True),
    _created(),
)

outbox = sa.Table(
    "outbox",
    metadata,
    _id(),  # commit order per device: rows of one device are written under its row lock
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),
    _org(foreign_key=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(128), nullable=False),
    sa.Column("payload", JsonText, nullable=False),
    _created(),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
    sa.Index(
        "ix_outbox_unsent",
        "id",
        postgresql_where=sa.text("sent_at IS NULL"),
        sqlite_where=sa.text("sent_at IS NULL"),
    ),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    _id(),
    sa.Column("message_id", sa.String(255), nullable=True),
    sa.Column("task", sa.String(255), nullable=True),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("headers", Json, nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    _created(),
    sa.Column("replayed_at", UTCDateTime(), nullable=True),
)
