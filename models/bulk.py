"""``custody.assign_devices`` on the wire: up to 1,000 assignment items in one command.

The envelope only checks that ``items`` is a list of the right length; each item is then
validated on its own, so one bad item is reported beside the others instead of failing them.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationError, WithJsonSchema, model_validator

from models import constants as c
from models.commands import (
    Command,
    DeviceIdentifier,
    DeviceType,
    RawEmail,
    WireModel,
    wire_problems,
)


class AssignmentItem(WireModel):
    """One item: an ``assign_device`` without ``requestId`` and ``organizationId``."""

    device_identifier: DeviceIdentifier
    customer_emails: Annotated[
        list[RawEmail], Field(min_length=1, max_length=c.MAX_EMAILS_PER_COMMAND)
    ]
    auto_create_device: bool = False
    device_type: DeviceType | None = None

    @model_validator(mode="after")
    def _device_type_when_auto_creating(self) -> AssignmentItem:
        if self.auto_create_device and self.device_type is None:
            raise ValueError("deviceType is required when autoCreateDevice is true")
        return self

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json", exclude_unset=True)


# What the wire accepts, though each item is checked on its own (see ``parse_item``).
_ITEMS_SCHEMA = {
    "type": "array",
    "minItems": 1,
    "maxItems": c.MAX_BULK_ITEMS,
    "items": AssignmentItem.model_json_schema(by_alias=True),
}


class AssignDevices(Command):
    """Assign many devices in one transaction; each item is checked and answered on its own."""

    task_name: ClassVar[str] = c.ASSIGN_DEVICES

    items: Annotated[
        list[Any],  # raw: each item is validated by ``parse_item`` and answered on its own
        Field(min_length=1, max_length=c.MAX_BULK_ITEMS),
        WithJsonSchema(_ITEMS_SCHEMA),
    ]


def parse_item(raw: Any) -> AssignmentItem | list[str]:
    """The item, or one message per problem naming the field as spelled on the wire."""
    if not isinstance(raw, dict):
        return [f"expected a JSON object, got {type(raw).__name__}"]
    try:
        return AssignmentItem.model_validate(raw, by_alias=True, by_name=False)
    except ValidationError as exc:
        return wire_problems(exc, whole=None)


ItemStatus = Literal["assigned", "alreadyAssigned", "skipped", "failed"]


class ItemResult(WireModel):
    """The answer to one item, compact: counts instead of the per-customer list.

    ``assigned``: at least one new owner; ``alreadyAssigned``: every owner was one already;
    ``skipped``: the device does not exist and the item may not create it (404);
    ``failed``: the item is invalid (400). Fields that do not apply are left out.
    """

    status: ItemStatus
    status_code: int
    device_identifier: str | None = None
    device_id: int | None = None
    device_created: bool | None = None
    customers_assigned: int | None = None  # owners this item added
    customers_created: int | None = None  # customers this item created
    skipped_emails: list[str] | None = None  # invalid addresses, as given
    error_code: str | None = None
    error_messages: list[str] | None = None


class BulkSummary(WireModel):
    assigned: int = 0
    already_assigned: int = 0
    skipped: int = 0
    failed: int = 0


class AssignDevicesResult(WireModel):
    """The command was processed (``success``); each item says how it went, in item order."""

    success: Literal[True] = True
    status_code: int = 200
    message: str
    summary: BulkSummary
    items: list[ItemResult]

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json", exclude_none=True)
