"""Commands as they travel on the wire: pydantic models, camelCase, unknown fields rejected.

A command is an order ("assign this device"); its name on the queue is its task name.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from models import constants as c

RequestId = Annotated[str, StringConstraints(min_length=1, max_length=c.MAX_REQUEST_ID_CHARS)]
OrganizationId = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=c.MAX_ORGANIZATION_ID_CHARS,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
    ),
]
DeviceIdentifier = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=c.MAX_DEVICE_IDENTIFIER_CHARS
    ),
]
DeviceType = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=c.MAX_DEVICE_TYPE_CHARS)
]
RawEmail = Annotated[str, StringConstraints(max_length=c.MAX_EMAIL_CHARS)]


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python, strict types, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
        frozen=True,
    )

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json", exclude_none=False)


class Signature(WireModel):
    """HMAC-SHA256 of the canonical JSON of the command without this field."""

    key_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    value: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Command(WireModel):
    """Fields every command carries."""

    task_name: ClassVar[str]

    def to_wire(self) -> dict[str, Any]:
        """Only the fields that were given: an absent field and an explicit null differ."""
        return self.model_dump(by_alias=True, mode="json", exclude_unset=True)

    request_id: RequestId
    organization_id: OrganizationId
    signature: Signature | None = None


class AssignDevice(Command):
    """Map a device to one or more owner customers."""

    task_name: ClassVar[str] = c.ASSIGN_DEVICE

    device_identifier: DeviceIdentifier
    customer_emails: Annotated[
        list[RawEmail], Field(min_length=1, max_length=c.MAX_EMAILS_PER_COMMAND)
    ]
    auto_create_device: bool = False
    device_type: DeviceType | None = None

    @model_validator(mode="after")
    def _device_type_when_auto_creating(self) -> AssignDevice:
        if self.auto_create_device and self.device_type is None:
            raise ValueError("deviceType is required when autoCreateDevice is true")
        return self


class UnassignDevice(Command):
    """Remove owner mappings of a device; the customers themselves stay."""

    task_name: ClassVar[str] = c.UNASSIGN_DEVICE

    device_identifier: DeviceIdentifier
    customer_emails: Annotated[
        list[RawEmail], Field(min_length=1, max_length=c.MAX_EMAILS_PER_COMMAND)
    ]


def wire_problems(
    exc: ValidationError, *, whole: str | None = "command", limit: int | None = None
) -> list[str]:
    """One line per problem, naming the field as it is spelled on the wire; a problem of
    the object as a whole is prefixed with ``whole`` (or with nothing). At most ``limit``
    lines, then a count of the rest."""
    errors = exc.errors(include_url=False)
    lines = []
    for error in errors if limit is None else errors[:limit]:
        where = ".".join(str(part) for part in error["loc"]) or whole
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        lines.append(f"{where}: {message}" if where else message)
    if limit is not None and len(errors) > limit:
        lines.append(f"… and {len(errors) - limit} more problems")
    return lines
