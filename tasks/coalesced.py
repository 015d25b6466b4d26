"""Single ``custody.assign_device`` commands applied a group to a transaction, with the
set-based SQL of ``custody.assign_devices``: each command is answered, recorded under its
own idempotency key and evented exactly as if the group's commands had been applied alone,
one after the other, in delivery order; the group commits whole or not at all.

A group takes the fresh, authentic commands with a usable key (one that violates the schema
is answered there with its 400, which takes its key, as alone). Everything else (a replay,
a reused requestId, a missing or bad signature, an unknown organization, a second delivery
of a requestId within the group, a shape or key that cannot be read) is left to
``pipeline.process``, one by one, after the group: none of those changes anything but a
rejection record, so answering them after the group answers them as in delivery order.

Framework-free, like the pipeline: the Celery adapter hands in deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from models import constants as c
from models.commands import AssignDevice
from models.domain import DomainEvent, select_emails
from models.errors import Rejected
from models.events import wire_time
from models.ports import OutboxRecord, SigningKeyRecord, StoredResult, UnitOfWork, UnitOfWorkFactory
from models.results import Rejection
from tasks.assign_device import assigned_event, assignment_result, owners_after
from tasks.assignments import (
    Assignment,
    apply_assignments,
    device_not_found,
    devices_created,
    no_valid_email,
)
from tasks.authenticate import Authenticator
from tasks.pipeline import (
    Admitted,
    Delivery,
    Outcome,
    admit,
    outbox_records,
    validation_messages,
)


@dataclass(frozen=True)
class _Candidate:
    index: int  # in the deliveries
    admitted: Admitted
    command: AssignDevice | None  # None: it violates the schema, and ``invalid`` says how
    invalid: Rejected | None = None

    @property
    def key(self) -> tuple[str, str]:
        assert self.admitted.request_id is not None
        return self.admitted.organization_id, self.admitted.request_id


def process_group(
    deliveries: Sequence[Delivery],
    uow_factory: UnitOfWorkFactory,
    *,
    authenticator: Authenticator,
) -> list[Outcome | None]:
    """The outcome of each delivery the group applied, None for one left to ``process``.

    Raises ``Transient`` when the group's transaction failed: then nothing of it was
    written. When a concurrent delivery took one of the group's keys first, nothing is
    written either, and every delivery is left to ``process``.
    """
    outcomes: list[Outcome | None] = [None] * len(deliveries)
    candidates = [found for found in map(_candidate, range(len(deliveries)), deliveries) if found]
    if not candidates:
        return outcomes
    with uow_factory() as uow:
        chosen = _fresh(uow, _authentic(uow, candidates, authenticator))
        if not chosen:
            return outcomes
        time_text = wire_time(uow.now)
        entries: list[tuple[StoredResult, list[OutboxRecord]]] = []
        answers: list[tuple[_Candidate, Outcome]] = []
        for candidate, result, events in _apply(uow, chosen):
            org, request_id = candidate.key
            records = outbox_records(events, org, request_id, time_text)
            entries.append(
                (
                    StoredResult(
                        organization_id=org,
                        request_id=request_id,
                        task=c.ASSIGN_DEVICE,
                        command_hash=candidate.admitted.digest,
                        status_code=int(result["statusCode"]),
                        result=result,
                    ),
                    records,
                )
            )
            answers.append((candidate, Outcome(result, org, request_id, events=len(records))))
        if not uow.commands.add_many(entries):
            return outcomes  # rolled back on leaving: the one-by-one path reads their answer
        uow.commit()
    for candidate, outcome in answers:
        outcomes[candidate.index] = outcome
    return outcomes


def _candidate(index: int, delivery: Delivery) -> _Candidate | None:
    """A delivery the group can answer: its key is usable. One that violates the schema is
    answered in the group too (a 400 under its key), so that keys are taken in order."""
    if delivery.task != c.ASSIGN_DEVICE:
        return None
    admitted = admit(delivery)
    if isinstance(admitted, Rejected) or admitted.request_id is None:
        return None
    try:
        command = AssignDevice.model_validate(admitted.body, by_alias=True, by_name=False)
    except ValidationError as exc:
        return _Candidate(index, admitted, None, Rejected.invalid(*validation_messages(exc)))
    return _Candidate(index, admitted, command)


def _authentic(
    uow: UnitOfWork, candidates: list[_Candidate], authenticator: Authenticator
) -> list[_Candidate]:
    """Those signed as their organization requires (and of an organization that exists);
    each signing key's row is read once for the group."""
    keys: dict[str, SigningKeyRecord | None] = {}
    authentic = []
    for candidate in candidates:
        admitted = candidate.admitted
        try:
            verified = authenticator.check(
                uow,
                organization_id=admitted.organization_id,
                signature=admitted.body.get(c.SIGNATURE_FIELD),
                signed=admitted.signed,
                keys=keys,
            )
        except Rejected:
            continue
        if verified or uow.organizations.exists(admitted.organization_id):
            authentic.append(candidate)
    return authentic


def _fresh(uow: UnitOfWork, candidates: list[_Candidate]) -> list[_Candidate]:
    """The first delivery of each key that has no idempotency record yet."""
    firsts: dict[tuple[str, str], _Candidate] = {}
    for candidate in candidates:
        firsts.setdefault(candidate.key, candidate)
    by_org: dict[str, list[str]] = {}
    for org, request_id in firsts:
        by_org.setdefault(org, []).append(request_id)
    taken = {
        (org, request_id)
        for org, request_ids in by_org.items()
        for request_id in uow.commands.get_many(org, request_ids)
    }
    return [candidate for key, candidate in firsts.items() if key not in taken]


def _apply(
    uow: UnitOfWork, chosen: list[_Candidate]
) -> list[tuple[_Candidate, dict[str, Any], list[DomainEvent]]]:
    """Each command's result and events, in delivery order, organization by organization."""
    answered: list[tuple[_Candidate, dict[str, Any], list[DomainEvent]]] = []
    by_org: dict[str, list[_Candidate]] = {}
    for candidate in chosen:
        if candidate.invalid is not None:
            answered.append((candidate, _rejection(candidate.invalid), []))
        else:
            by_org.setdefault(candidate.admitted.organization_id, []).append(candidate)
    for org, group in by_org.items():
        answered.extend(_apply_org(uow, org, group))
    return sorted(answered, key=lambda answer: answer[0].index)


def _apply_org(
    uow: UnitOfWork, org: str, group: list[_Candidate]
) -> list[tuple[_Candidate, dict[str, Any], list[DomainEvent]]]:
    answered: list[tuple[_Candidate, dict[str, Any], list[DomainEvent]]] = []
    valid: list[tuple[_Candidate, Assignment, list[str]]] = []
    for candidate in group:
        command = candidate.command
        assert command is not None
        emails = select_emails(command.customer_emails)
        if not emails.valid:
            answered.append((candidate, _rejection(no_valid_email(command.customer_emails)), []))
            continue
        request = Assignment(
            command.device_identifier,
            emails.valid,
            command.auto_create_device,
            command.device_type,
        )
        valid.append((candidate, request, emails.skipped))

    applied = apply_assignments(uow, org, [request for _, request, _ in valid])
    # Owner lists as each command leaves them: those from before the group (read once,
    # for devices that existed), then what each command added, command by command.
    new_owners: dict[int, set[int]] = {}
    for done in applied:
        if done is not None and done.added:
            new_owners.setdefault(done.device.id, set()).update(c.id for c in done.added)
    made = devices_created(applied)
    existing = [d for d in sorted(new_owners) if d not in made]
    owners = {
        device_id: [o for o in found if o.id not in new_owners[device_id]]
        for device_id, found in uow.owners.of_many(existing).items()
    }
    for (candidate, request, skipped), done in zip(valid, applied, strict=True):
        if done is None:
            answered.append((candidate, _rejection(device_not_found(request.identifier)), []))
            continue
        events: list[DomainEvent] = []
        if done.added:
            before = owners.get(done.device.id, [])
            events.append(assigned_event(done, before))
            owners[done.device.id] = owners_after(done, before)
        answered.append((candidate, assignment_result(done, skipped).to_wire(), events))
    return answered


def _rejection(rejection: Rejected) -> dict[str, Any]:
    return Rejection.of(rejection).to_wire()
