"""What must hold once the system is quiet, checked against the database alone.

- Nothing lost: every message sent is applied, rejected or dead-lettered (matched by
  requestId and command hash, or by message id).
- Every accepted command has exactly one effect: each owner row, customer and device is
  claimed as new by exactly one applied result, and nothing exists that no result claims.
- No duplicate customers, owner rows or active accesses.
- Each state change has exactly one outbox event, and no event lacks its change.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faults.load import (
    INVALID,
    MALFORMED,
    NOT_FOUND,
    PROBE,
    REUSE,
    UNKNOWN_ORG,
    VALID,
    Sent,
)
from models import tables as t

# Outcome classes of a sent message.
OK = "applied"
REJECTED = "rejected"
DEAD = "dead-lettered"


@dataclass
class Snapshot:
    """The rows the checks read, loaded once."""

    processed: dict[tuple[str, str], Any]
    rejections: dict[str, list[Any]]  # by message id
    dead_letters: dict[str, list[Any]]  # by message id
    outbox: list[Any]
    owners: list[tuple[int, int]]
    customers: list[tuple[str, str]]
    devices: list[int]
    duplicate_rows: dict[str, int]


def snapshot(engine: Engine) -> Snapshot:
    with engine.connect() as conn:
        p, r, d, o = t.processed_commands, t.rejections, t.dead_letters, t.outbox
        processed = {
            (row.organization_id, row.request_id): row for row in conn.execute(sa.select(p))
        }
        rejections: defaultdict[str, list[Any]] = defaultdict(list)
        for row in conn.execute(sa.select(r)):
            rejections[row.message_id].append(row)
        dead: defaultdict[str, list[Any]] = defaultdict(list)
        for row in conn.execute(sa.select(d)):
            dead[row.message_id or ""].append(row)
        outbox = conn.execute(sa.select(o).order_by(o.c.id)).all()
        own, cus, dev, acc = t.ownerships, t.customers, t.devices, t.accesses
        owners = [(x.device_id, x.customer_id) for x in conn.execute(sa.select(own))]
        customers = [(x.organization_id, x.email) for x in conn.execute(sa.select(cus))]
        devices = [x.id for x in conn.execute(sa.select(dev.c.id))]
        duplicate_rows = {
            "customers per (organization, e-mail)": _dupes(
                conn, cus, cus.c.organization_id, cus.c.email
            ),
            "owner rows per (device, customer)": _dupes(
                conn, own, own.c.device_id, own.c.customer_id
            ),
            "active accesses per (device, user)": _dupes(
                conn, acc, acc.c.device_id, acc.c.customer_id, where=acc.c.closed_at.is_(None)
            ),
        }
    return Snapshot(
        processed, dict(rejections), dict(dead), outbox, owners, customers, devices, duplicate_rows
    )


def _dupes(conn: Any, table: sa.Table, *columns: Any, where: Any = None) -> int:
    query = sa.select(sa.func.count()).select_from(table).group_by(*columns)
    if where is not None:
        query = query.where(where)
    query = query.having(sa.func.count() > 1)
    return sum(int(n) - 1 for n in conn.execute(query).scalars())


def outcome(item: Sent, snap: Snapshot) -> tuple[str | None, int | None, str | None]:
    """(class, statusCode, errorCode) of what became of one sent message; class None: lost."""
    if item.kind != MALFORMED and item.organization_id and item.request_id:
        stored = snap.processed.get((item.organization_id, item.request_id))
        if stored is not None and stored.command_hash == item.digest:
            cls = OK if stored.result.get("success") else REJECTED
            return cls, stored.status_code, stored.result.get("errorCode")
    if item.message_id in snap.dead_letters:
        return DEAD, None, None
    if item.message_id in snap.rejections:
        result = snap.rejections[item.message_id][-1].result
        return REJECTED, result.get("statusCode"), result.get("errorCode")
    return None, None, None


def expected(item: Sent, cls: str, status: int | None, code: str | None) -> bool:
    """Whether the outcome is the one this kind of message must end in. A dead letter is
    never wrong (it is kept, and counted); anything else must match the kind."""
    if cls == DEAD:
        return True
    if item.kind in (VALID, PROBE, REUSE):
        return status == 200 or code == "IDEMPOTENCY_CONFLICT"
    return {
        NOT_FOUND: status == 404,
        INVALID: status == 400,
        UNKNOWN_ORG: status == 401,
        MALFORMED: False,
    }[item.kind]


@dataclass
class Verdict:
    sent: int = 0
    copies: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    classes: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    duplicate_effects: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.unexpected
            or sum(self.duplicate_effects.values())
            or sum(self.violations.values())
        )


def unaccounted(sent: list[Sent], snap: Snapshot) -> list[Sent]:
    """The messages that have no outcome (yet)."""
    return [item for item in sent if outcome(item, snap)[0] is None]


def check(sent: list[Sent], snap: Snapshot) -> Verdict:
    verdict = Verdict(sent=len(sent), copies=sum(s.copies for s in sent))
    for item in sent:
        verdict.kinds[item.kind] += 1
        cls, status, code = outcome(item, snap)
        if cls is None:
            verdict.lost.append(f"{item.kind} {item.message_id} requestId {item.request_id}")
            continue
        verdict.classes[cls] += 1
        if not expected(item, cls, status, code):
            verdict.unexpected.append(f"{item.kind} {item.message_id}: {cls} {status} {code}")
    _check_effects(snap, verdict)
    for name, count in snap.duplicate_rows.items():
        if count:
            verdict.duplicate_effects[f"duplicate {name}"] += count
    return verdict


def _check_effects(snap: Snapshot, verdict: Verdict) -> None:
    """Every row claimed as new by exactly one applied result; every change with exactly one
    event carrying exactly that change; no event without a change."""
    pairs: Counter[tuple[int, int]] = Counter()
    customers: Counter[tuple[str, str]] = Counter()
    devices: Counter[int] = Counter()
    changes: dict[tuple[str, str], set[int]] = {}  # (org, requestId) -> customer ids added
    for (org, request_id), row in snap.processed.items():
        result = row.result
        if not result.get("success") or "customers" not in result:
            continue
        added = {c["customerId"] for c in result["customers"] if not c["alreadyAssigned"]}
        pairs.update((result["deviceId"], cid) for cid in added)
        customers.update((org, c["email"]) for c in result["customers"] if c["created"])
        if result["deviceCreated"]:
            devices[result["deviceId"]] += 1
        if added:
            changes[(org, request_id)] = added

    for name, claims, rows in (
        ("owner row", pairs, snap.owners),
        ("customer", customers, snap.customers),
        ("device", devices, snap.devices),
    ):
        verdict.duplicate_effects[f"{name} claimed as new twice"] += sum(
            n - 1 for n in claims.values() if n > 1
        )
        existing = set(rows)
        verdict.violations[f"{name} no result created"] += len(existing - set(claims))
        verdict.violations[f"{name} a result created is missing"] += len(set(claims) - existing)

    events: defaultdict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in snap.outbox:
        events[(row.organization_id, row.payload["correlationid"])].append(row)
    for key, rows in events.items():
        if len(rows) > 1:
            verdict.duplicate_effects["events per command"] += len(rows) - 1
        if key not in changes:
            verdict.violations["event without a change"] += len(rows)
            continue
        carried = {o["customerId"] for o in rows[0].payload["data"]["ownersAdded"]}
        if carried != changes[key]:
            verdict.violations["event that does not match its change"] += 1
    verdict.violations["change without an event"] += len(set(changes) - set(events))
