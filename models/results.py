"""Results as they travel back: one success shape per command and one rejection shape."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from models.commands import WireModel
from models.errors import Rejected


class Rejection(WireModel):
    """Every refused command ends as this; it changed nothing."""

    success: Literal[False] = False
    status_code: int
    error_code: str
    error_messages: list[str]

    @classmethod
    def of(cls, error: Rejected) -> Rejection:
        return cls(
            status_code=error.status_code,
            error_code=error.error_code,
            error_messages=error.messages,
        )


class AssignedCustomer(WireModel):
    email: str
    customer_id: int
    name: str
    created: bool
    already_assigned: bool


class AssignDeviceResult(WireModel):
    success: Literal[True] = True
    status_code: int = 200
    message: str
    device_id: int
    device_identifier: str
    device_created: bool
    customers: list[AssignedCustomer]
    skipped_emails: list[str] = Field(default_factory=list)


class UnassignDeviceResult(WireModel):
    success: Literal[True] = True
    status_code: int = 200
    message: str
    device_id: int
    device_identifier: str
    removed_emails: list[str]  # were owners, are not any more
    not_owner_emails: list[str]  # valid addresses that did not own the device
    skipped_emails: list[str] = Field(default_factory=list)
