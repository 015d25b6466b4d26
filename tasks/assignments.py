"""Set-based assignment: many (device, e-mail addresses) requests applied with a fixed
number of statements, each answered as if the requests had been applied one after the
other. ``custody.assign_devices`` (the items of one command) and the worker's groups of
single ``custody.assign_device`` commands both stand on it.

Statements, whatever the number of requests: lock the known devices (in identifier
order), create the missing ones that some request may create, ensure the customers, add
the owner rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from models.domain import Customer, Device
from models.errors import Rejected
from models.ports import UnitOfWork


@dataclass(frozen=True)
class Assignment:
    """A valid request, before it meets the database."""

    identifier: str  # trimmed
    emails: list[str]  # valid, normalized, without duplicates, in the order given
    auto_create: bool
    device_type: str | None


@dataclass(frozen=True)
class Applied:
    """What one request did, as it would have seen it applied alone after those before it."""

    device: Device
    device_created: bool  # this request created the device
    customers: list[Customer]  # one per address, in order; ``created``: by this request
    added: list[Customer]  # the owners this request added, in address order


def no_valid_email(given: list[str]) -> Rejected:
    return Rejected.invalid(
        "customerEmails: no valid e-mail address in " + ", ".join(repr(e) for e in given)
    )


def device_not_found(identifier: str) -> Rejected:
    return Rejected.not_found(
        "DEVICE_NOT_FOUND",
        f"device {identifier!r} not found (set autoCreateDevice and deviceType to create it)",
    )


def apply_assignments(
    uow: UnitOfWork, organization_id: str, assignments: list[Assignment]
) -> list[Applied | None]:
    """Apply every request inside ``uow``'s transaction; the caller commits.

    None stands for a request whose device does not exist and that may not create it (a
    device that a later request creates does not exist yet for an earlier one).
    """
    org = organization_id
    devices = uow.devices.lock_many(org, [a.identifier for a in assignments])
    creators: dict[str, int] = {}  # identifier -> the first request that may create it
    for index, request in enumerate(assignments):
        if request.identifier not in devices and request.auto_create:
            creators.setdefault(request.identifier, index)
    made, created = uow.devices.add_many(
        org, {ident: assignments[index].device_type for ident, index in creators.items()}
    )
    devices.update(made)

    found: list[tuple[int, Device]] = []
    for index, request in enumerate(assignments):
        device = devices.get(request.identifier)
        creator = creators.get(request.identifier)
        made_later = request.identifier in created and creator is not None and creator > index
        if device is not None and not made_later:
            found.append((index, device))

    wanted = sorted({email for index, _ in found for email in assignments[index].emails})
    customers = {customer.email: customer for customer in uow.customers.ensure(org, wanted)}
    pairs = [(d.id, customers[e].id) for index, d in found for e in assignments[index].emails]
    added = uow.owners.add_many(org, pairs)

    outcome: list[Applied | None] = [None] * len(assignments)
    seen_pairs: set[tuple[int, int]] = set()
    seen_emails: set[str] = set()
    for index, device in found:
        request = assignments[index]
        mine: list[Customer] = []
        new: list[Customer] = []
        for email in request.emails:
            customer = customers[email]
            pair = (device.id, customer.id)
            if pair in added and pair not in seen_pairs:
                new.append(customer)
            seen_pairs.add(pair)
            made_here = customer.created and email not in seen_emails
            seen_emails.add(email)
            if made_here != customer.created:  # created by an earlier request
                customer = dataclasses.replace(customer, created=made_here)
            mine.append(customer)
        outcome[index] = Applied(
            device=device,
            device_created=creators.get(request.identifier) == index
            and request.identifier in created,
            customers=mine,
            added=new,
        )
    return outcome


def devices_created(applied: list[Applied | None]) -> set[int]:
    """Ids of the devices the requests created."""
    return {done.device.id for done in applied if done is not None and done.device_created}
