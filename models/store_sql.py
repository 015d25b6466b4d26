"""The SQL the unit of work runs, built once: building and keying a SQLAlchemy statement
costs about as much client time as executing it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from models import tables as t

# Set-based SQL. On PostgreSQL many rows travel as ONE parameter, a JSON array, expanded
# server-side (``json_to_recordset``): one statement, one round trip, and next to no
# client-side work per row. Encoding a list of dicts to JSON is one C call; array
# parameters would be dumped element by element in Python (and JSON documents inside a
# text array escaped quote by quote), and a multi-row VALUES list costs an order of
# magnitude more. On SQLite, in-process, ``executemany`` and IN lists in chunks do the job.
SQLITE_IN_CHUNK = 900  # bound parameters per IN list, below every SQLite's variable limit


def json_param(name: str) -> Any:
    """A JSON text parameter, read as ``json``: the ``json_*`` functions scan the text once
    and cut the values out of it, where ``jsonb_*`` first build a binary copy of the whole
    document (a third more of PostgreSQL's time for the outbox rows of a 1,000-item batch)."""
    return sa.cast(sa.bindparam(name, type_=sa.Text()), postgresql.JSON)


def json_rows(**columns: Any) -> Any:
    """``json_to_recordset(:rows) AS anon(a type, …)``: the rows of a JSON array of objects."""
    return (
        sa.func.json_to_recordset(json_param("rows"))
        .table_valued(*(sa.column(name, type_) for name, type_ in columns.items()))
        .render_derived(with_types=True)
    )


def pg_each(query: Callable[[Any], Any]) -> Any:
    """``query(value)`` run once per element of the JSON array parameter ``values``, in
    the array's order: ``FROM json_array_elements_text(:values) v CROSS JOIN LATERAL
    (query(v.value) OFFSET 0)``. Each run is an index lookup whatever the planner's
    statistics say (a set-based ``= ANY(…)`` is planned as a filter over the whole
    organization while a fast-growing table has not been analyzed yet), and row locks
    are taken in the array's order."""
    values = sa.func.json_array_elements_text(json_param("values")).table_valued("value")
    match = query(values.c.value).offset(0).lateral("match")
    return sa.select(match).select_from(values).join(match, sa.true())


def org_param() -> Any:
    return sa.bindparam("organization_id", type_=sa.String())


def now_param() -> Any:
    return sa.bindparam("now", type_=t.UTCDateTime())


def pg_insert_rows(
    table: sa.Table, conflict: list[str] | None, *, per_org: bool = True, **columns: Any
) -> Any:
    """INSERT the rows of the ``rows`` parameter with the clock reading (and, ``per_org``,
    the organization) on each; with ``conflict``, ON CONFLICT DO NOTHING, so that the
    RETURNING rows are exactly the rows created."""
    rows = json_rows(**columns)
    given = [org_param()] if per_org else []
    select = sa.select(*given, *(rows.c[name] for name in columns), now_param())
    names = ["organization_id"] if per_org else []
    insert = postgresql.insert(table).from_select([*names, *columns, "created_at"], select)
    return insert if conflict is None else insert.on_conflict_do_nothing(index_elements=conflict)


PG_INSERT_DEVICES = pg_insert_rows(
    t.devices,
    ["organization_id", "identifier"],
    identifier=sa.String(),
    device_type=sa.String(),
).returning(*t.devices.c)
PG_INSERT_CUSTOMERS = pg_insert_rows(
    t.customers, ["organization_id", "email"], email=sa.String(), name=sa.String()
).returning(t.customers.c.id, t.customers.c.email, t.customers.c.name)
PG_INSERT_OWNERS = pg_insert_rows(
    t.ownerships,
    ["device_id", "customer_id"],
    device_id=sa.BigInteger(),
    customer_id=sa.BigInteger(),
).returning(t.ownerships.c.device_id, t.ownerships.c.customer_id)
PG_INSERT_OUTBOX = pg_insert_rows(
    t.outbox,
    None,
    per_org=False,
    event_id=sa.String(),
    organization_id=sa.String(),
    type=sa.String(),
    subject=sa.String(),
    payload=postgresql.JSON(),
)


_d, _c, _o = t.devices, t.customers, t.ownerships
PG_LOCK_DEVICES = pg_each(
    lambda value: (
        sa.select(_d)
        .where(_d.c.organization_id == org_param(), _d.c.identifier == value)
        .with_for_update()
    )
)
PG_FIND_CUSTOMERS = pg_each(
    lambda value: sa.select(_c.c.id, _c.c.email, _c.c.name).where(
        _c.c.organization_id == org_param(), _c.c.email == value
    )
)
PG_OWNERS_OF = pg_each(
    lambda value: (
        sa.select(
            _o.c.id.label("ownership_id"),
            _o.c.device_id,
            _c.c.id,
            _c.c.organization_id,
            _c.c.email,
            _c.c.name,
        )
        .join(_c, _o.c.customer_id == _c.c.id)
        .where(_o.c.device_id == sa.cast(value, sa.BigInteger()))
    )
)

_p = t.processed_commands
PG_GET_PROCESSED_MANY = pg_each(
    lambda value: sa.select(_p).where(_p.c.organization_id == org_param(), _p.c.request_id == value)
)
PG_ADD_PROCESSED_MANY = pg_insert_rows(
    _p,
    ["organization_id", "request_id"],
    per_org=False,
    organization_id=sa.String(),
    request_id=sa.String(),
    task=sa.String(),
    command_hash=sa.String(),
    status_code=sa.SmallInteger(),
    result=postgresql.JSONB(),
).returning(_p.c.id)


# The statements every single command runs, built once (building and keying a statement
# costs about as much client time as executing it). Inserts differ per dialect.
def per_dialect(build: Callable[[Any], Any]) -> dict[str, Any]:
    return {"postgresql": build(postgresql.insert), "sqlite": build(sqlite.insert)}


ORGANIZATION_EXISTS = sa.select(t.organizations.c.id).where(
    t.organizations.c.id == sa.bindparam("organization_id")
)
GET_DEVICE = sa.select(_d).where(
    _d.c.organization_id == sa.bindparam("organization_id"),
    _d.c.identifier == sa.bindparam("identifier"),
)
GET_DEVICE_LOCKED = GET_DEVICE.with_for_update()
ADD_DEVICE = per_dialect(
    lambda insert: (
        insert(_d)
        .on_conflict_do_nothing(index_elements=["organization_id", "identifier"])
        .returning(*_d.c)
    )
)
GET_PROCESSED = sa.select(_p).where(
    _p.c.organization_id == sa.bindparam("organization_id"),
    _p.c.request_id == sa.bindparam("request_id"),
)
ADD_PROCESSED = per_dialect(
    lambda insert: (
        insert(_p)
        .on_conflict_do_nothing(index_elements=["organization_id", "request_id"])
        .returning(_p.c.id)
    )
)


def _pg_add_processed_with_outbox() -> Any:
    """One round trip for the end of every command: the idempotency record and, only if
    it was written (its key was free), the outbox rows; answers 1 or 0."""
    recorded = (
        postgresql.insert(_p)
        .values(
            {
                name: sa.bindparam(name, type_=column.type)
                for name, column in _p.c.items()
                if name != "id"
            }
        )
        .on_conflict_do_nothing(index_elements=["organization_id", "request_id"])
        .returning(_p.c.id)
        .cte("recorded")
    )
    rows = json_rows(
        event_id=sa.String(),
        organization_id=sa.String(),
        type=sa.String(),
        subject=sa.String(),
        payload=postgresql.JSON(),
    )
    events = (
        sa.insert(t.outbox)
        .from_select(
            ["event_id", "organization_id", "type", "subject", "payload", "created_at"],
            sa.select(
                rows.c.event_id,
                rows.c.organization_id,
                rows.c.type,
                rows.c.subject,
                rows.c.payload,
                sa.bindparam("created_at", type_=t.UTCDateTime()),
            ).where(sa.exists(sa.select(recorded.c.id))),
        )
        .cte("events")
    )
    return sa.select(sa.func.count()).select_from(recorded).add_cte(events)


PG_ADD_PROCESSED_WITH_OUTBOX = _pg_add_processed_with_outbox()


def chunks(values: list[Any], size: int) -> list[list[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def json_text(value: Any) -> str:
    """Compact JSON text, as JSON parameters are sent: orjson, about five times faster than
    the standard library on the thousand rows of a batch; the standard library for what
    orjson refuses (integers beyond 64 bits, non-text keys)."""
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
