"""What every command goes through, in one transaction: authenticate, deduplicate,
validate, apply, write the outbox and the idempotency record, commit.

Framework-free: the Celery adapter hands in a ``Delivery`` and maps the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from models import constants as c
from models.canonical import canonical_json, digest_of
from models.commands import wire_problems
from models.domain import DomainEvent
from models.errors import Rejected, Transient
from models.events import cloud_event_wire, wire_time
from models.limits import is_clean_text, shape_problems, storable_json
from models.ports import OutboxRecord, RejectionRecord, StoredResult, UnitOfWork, UnitOfWorkFactory
from models.results import Rejection
from models.signing import redacted
from tasks.authenticate import Authenticator
from tasks.registry import COMMANDS

MAX_STORED_BODY_CHARS = 65_536  # of a rejected command kept beside its rejection


@dataclass(frozen=True)
class Delivery:
    """One command as it came off the queue."""

    task: str
    message_id: str
    command: Any  # the decoded JSON value of the message's single positional argument


@dataclass(frozen=True)
class Outcome:
    """The answer to a delivery, ready to be replied and logged."""

    result: dict[str, Any]
    organization_id: str | None
    request_id: str | None
    replayed: bool = False  # the stored answer of an earlier delivery; nothing was written
    events: int = 0

    @property
    def success(self) -> bool:
        return bool(self.result.get("success"))

    def reply(self) -> dict[str, Any]:
        return {
            "requestId": self.request_id,
            "organizationId": self.organization_id,
            "replayed": self.replayed,
            "result": self.result,
        }


def validation_messages(exc: ValidationError) -> list[str]:
    """One line per problem, naming the field as it is spelled on the wire."""
    return wire_problems(exc, limit=c.MAX_ERROR_MESSAGES)


def _key_part(body: Any, field: str, max_chars: int) -> str | None:
    value = body.get(field) if isinstance(body, dict) else None
    if isinstance(value, str) and 0 < len(value) <= max_chars and is_clean_text(value):
        return value
    return None


def _required(field: str, max_chars: int) -> str:
    return f"{field}: required, a string of 1 to {max_chars} characters"


_NO_CHECK = Authenticator(None, required=False)  # signatures neither required nor checkable


@dataclass(frozen=True)
class Admitted:
    """A delivery whose shape and tenant can be read: what the transaction starts from."""

    body: dict[str, Any]
    organization_id: str
    request_id: str | None  # None: unusable; the rejection is recorded unbound
    signed: bytes  # the canonical JSON the signature covers
    digest: str  # of ``signed``: the idempotency record's command hash


def admit(delivery: Delivery) -> Admitted | Rejected:
    """Bound the shape before anything reads the command, then read its tenant and key."""
    body = delivery.command
    if not isinstance(body, dict):
        return Rejected.invalid(f"command: expected a JSON object, got {type(body).__name__}")
    problems = shape_problems(body)
    if problems:
        return Rejected.invalid(*problems)
    org = _key_part(body, "organizationId", c.MAX_ORGANIZATION_ID_CHARS)
    if org is None:
        return Rejected.invalid(_required("organizationId", c.MAX_ORGANIZATION_ID_CHARS))
    request_id = _key_part(body, "requestId", c.MAX_REQUEST_ID_CHARS)
    signed = canonical_json(body)  # cannot fail: the shape check refused what JSON cannot hold
    return Admitted(body, org, request_id, signed, digest_of(signed))


def process(
    delivery: Delivery,
    uow_factory: UnitOfWorkFactory,
    *,
    authenticator: Authenticator = _NO_CHECK,
) -> Outcome:
    """Apply one delivery exactly once per (organizationId, requestId).

    The order matters: the shape is bounded before anything reads the command, and the
    signature is checked as soon as the organization is known, before the idempotency
    record, the schema or a handler sees the command. Raises ``Transient`` for faults
    worth a retry; every other outcome is a result.
    """
    spec = COMMANDS[delivery.task]
    admitted = admit(delivery)
    if isinstance(admitted, Rejected):
        return reject_unbound(delivery, admitted, uow_factory)
    body, org, request_id = admitted.body, admitted.organization_id, admitted.request_id

    for _ in range(3):
        with uow_factory() as uow:
            try:
                verified = authenticator.check(
                    uow,
                    organization_id=org,
                    signature=body.get(c.SIGNATURE_FIELD),
                    signed=admitted.signed,
                )
            except Rejected as unauthenticated:
                return reject_unbound(delivery, unauthenticated, uow_factory, uow=uow)
            if not verified and not uow.organizations.exists(org):  # a key implies its org
                rejection = Rejected.unauthorized(f"organizationId: unknown organization {org!r}")
                return reject_unbound(delivery, rejection, uow_factory, uow=uow)
            if request_id is None:
                problem = _required("requestId", c.MAX_REQUEST_ID_CHARS)
                return reject_unbound(delivery, Rejected.invalid(problem), uow_factory, uow=uow)
            stored = uow.commands.get(org, request_id)
            if stored is not None:
                if stored.command_hash == admitted.digest and stored.task == delivery.task:
                    return Outcome(stored.result, org, request_id, replayed=True)
                rejection = Rejected.conflict(
                    "IDEMPOTENCY_CONFLICT",
                    f"requestId {request_id!r} was already used for a different command",
                )
                return reject_unbound(delivery, rejection, uow_factory, uow=uow)
            outcome = _apply(spec.model, spec.handler, body, delivery, admitted.digest, uow)
            if outcome is not None:
                return outcome
        # A concurrent delivery of the same requestId committed first: read its answer.
    raise Transient(f"requestId {request_id!r} kept racing with concurrent deliveries")


def _apply(
    model: Any, handler: Any, body: dict[str, Any], delivery: Delivery, digest: str, uow: UnitOfWork
) -> Outcome | None:
    org, request_id = body["organizationId"], body["requestId"]
    try:
        command = model.model_validate(body, by_alias=True, by_name=False)
        result: dict[str, Any] = handler(command, uow).to_wire()
    except ValidationError as exc:
        rejection: Rejected = Rejected.invalid(*validation_messages(exc))
    except Rejected as exc:
        rejection = exc
    else:
        records = outbox_records(uow.events, org, request_id, wire_time(uow.now))
        if not _record(uow, delivery, org, request_id, digest, result, outbox=records):
            return None
        uow.commit()
        return Outcome(result, org, request_id, events=len(records))

    uow.rollback()  # a rejection changes nothing
    result = Rejection.of(rejection).to_wire()
    if not _record(uow, delivery, org, request_id, digest, result):
        return None
    uow.commit()
    return Outcome(result, org, request_id)


def _record(
    uow: UnitOfWork,
    delivery: Delivery,
    org: str,
    request_id: str,
    digest: str,
    result: dict[str, Any],
    *,
    outbox: list[OutboxRecord] | None = None,
) -> bool:
    return uow.commands.add(
        StoredResult(
            organization_id=org,
            request_id=request_id,
            task=delivery.task,
            command_hash=digest,
            status_code=int(result["statusCode"]),
            result=result,
        ),
        outbox,
    )


def outbox_records(
    events: list[DomainEvent], org: str, request_id: str, time_text: str
) -> list[OutboxRecord]:
    """The outbox rows of one command's events, at the transaction's clock reading."""
    records = []
    for sequence, event in enumerate(events):
        payload = cloud_event_wire(
            event,
            organization_id=org,
            request_id=request_id,
            sequence=sequence,
            time_text=time_text,
        )
        records.append(
            OutboxRecord(
                event_id=payload["id"],
                organization_id=org,
                type=payload["type"],
                subject=payload["subject"],
                payload=payload,
            )
        )
    return records


def reject_unbound(
    delivery: Delivery,
    rejection: Rejected,
    uow_factory: UnitOfWorkFactory,
    *,
    uow: UnitOfWork | None = None,
) -> Outcome:
    """Record a rejection that must not take the idempotency key, and answer it."""
    record, outcome = unbound_rejection(delivery, rejection)
    if uow is not None:
        uow.rollback()
        uow.rejections.add(record)
        uow.commit()
    else:
        with uow_factory() as fresh:
            fresh.rejections.add(record)
            fresh.commit()
    return outcome


def unbound_rejection(delivery: Delivery, rejection: Rejected) -> tuple[RejectionRecord, Outcome]:
    """The record and the answer of a rejection that binds no key, not yet written."""
    body = delivery.command
    org = _key_part(body, "organizationId", c.MAX_ORGANIZATION_ID_CHARS)
    request_id = _key_part(body, "requestId", c.MAX_REQUEST_ID_CHARS)
    result = Rejection.of(rejection).to_wire()
    text = storable_json(redacted(body), max_chars=MAX_STORED_BODY_CHARS)
    record = RejectionRecord(
        message_id=delivery.message_id[:255],
        organization_id=org,
        request_id=request_id,
        task=delivery.task,
        status_code=rejection.status_code,
        result=result,
        body=text,
    )
    return record, Outcome(result, org, request_id)
