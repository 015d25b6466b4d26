"""The access commands as they travel on the wire: grant, update and revoke.

Field types follow the "Create device access" API: ``accessLevel`` 0 or 1, ``weekDays`` a
Monday=1 … Sunday=64 mask (or day names), dates as ISO 8601 instants stored in UTC, times
of day as ``HH:MM``, ``HH:MM:SS`` or a full date-time whose date is ignored.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from models import constants as c
from models.access import (
    AccessLevel,
    WeekDays,
    date_range_problem,
    time_zone_problem,
    week_days_problem,
    window_problem,
)
from models.commands import Command, DeviceIdentifier
from models.domain import normalize_email


def _email(value: str) -> str:
    email = normalize_email(value)
    if email is None:
        raise ValueError(f"{value!r} is not a valid e-mail address")
    return email


def _level(value: int) -> int:
    if value == AccessLevel.OWNER:
        raise ValueError(
            "cannot grant the owner level (2): owners come from assign_device; "
            "use 0 (guest) or 1 (admin)"
        )
    if value not in (AccessLevel.GUEST, AccessLevel.ADMIN):  # the levels a grant can carry
        raise ValueError(f"must be 0 (guest) or 1 (admin), got {value}")
    return value


def _text(value: str, limit: int) -> str:
    if len(value) > limit:
        raise ValueError(f"at most {limit} characters, got {len(value)}")
    return value.strip()


def _week_days(value: Any) -> Any:
    """Day names ("Monday, Tuesday", "mon,tue") become the mask; numbers pass on."""
    if isinstance(value, str):
        return WeekDays.parse(_text(value, c.MAX_WEEK_DAYS_CHARS))
    return value


def _week_days_in_range(value: int) -> int:
    if problem := week_days_problem(value):
        raise ValueError(problem)
    return value


def parse_instant(value: Any) -> datetime:
    """An ISO 8601 date-time, kept in UTC; one without an offset is taken as UTC."""
    if isinstance(value, str):
        text = _text(value, c.MAX_DATETIME_CHARS)
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{text!r} is not an ISO 8601 date-time (e.g. 2020-12-14T08:09:57Z)"
            ) from None
    if not isinstance(value, datetime):
        raise ValueError("must be an ISO 8601 date-time string")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_CLOCK = re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?")


def _time_of_day(value: Any) -> time:
    """``HH:MM``, ``HH:MM:SS`` or a full date-time: the clock reading as written, the date
    and any UTC offset ignored (the window is read in the schedule's ``timeZone``)."""
    if isinstance(value, str):
        text = _text(value, c.MAX_DATETIME_CHARS)
        try:
            value = (
                time.fromisoformat(text) if _CLOCK.fullmatch(text) else datetime.fromisoformat(text)
            )
        except ValueError:
            raise ValueError(
                f"{text!r} is not a time of day (HH:MM, HH:MM:SS, or a date-time whose "
                "date is ignored)"
            ) from None
    if isinstance(value, datetime):
        return value.time()
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    raise ValueError("must be a time of day as a string (HH:MM or HH:MM:SS)")


def _time_zone(value: str) -> str:
    if problem := time_zone_problem(value):
        raise ValueError(problem)
    return value


Email = Annotated[str, StringConstraints(max_length=c.MAX_EMAIL_CHARS), AfterValidator(_email)]
Level = Annotated[int, AfterValidator(_level)]
WeekDayMask = Annotated[int, BeforeValidator(_week_days), AfterValidator(_week_days_in_range)]
Instant = Annotated[datetime, BeforeValidator(parse_instant)]
TimeOfDay = Annotated[time, BeforeValidator(_time_of_day)]
TimeZoneName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=c.MAX_TIME_ZONE_CHARS),
    AfterValidator(_time_zone),
]
AccessId = Annotated[int, Field(ge=1, le=c.MAX_ACCESS_ID)]

# Fields that update_access may change; the schedule's wire names in domain order.
CHANGEABLE = (
    "access_level",
    "remote_access_disabled",
    "week_days",
    "start_date",
    "end_date",
    "day_start_time",
    "day_end_time",
    "time_zone",
)


class GrantAccess(Command):
    """Grant a user access to a device, with a schedule (all schedule fields null = always)."""

    task_name: ClassVar[str] = c.GRANT_ACCESS

    device_identifier: DeviceIdentifier
    granted_by: Email
    user_email: Email
    access_level: Level
    remote_access_disabled: bool = False
    week_days: WeekDayMask | None = None
    start_date: Instant | None = None
    end_date: Instant | None = None
    day_start_time: TimeOfDay | None = None
    day_end_time: TimeOfDay | None = None
    time_zone: TimeZoneName = "UTC"

    @field_validator("end_date")
    @classmethod
    def _end_after_start(cls, end: datetime | None, info: ValidationInfo) -> datetime | None:
        if problem := date_range_problem(info.data.get("start_date"), end):
            raise ValueError(problem)
        return end

    @model_validator(mode="after")
    def _whole_window(self) -> GrantAccess:
        if problem := window_problem(self.day_start_time, self.day_end_time):
            raise ValueError(" ".join(problem))
        return self


class UpdateAccess(Command):
    """Change an access: a field left out stays as it is, an explicit ``null`` clears it."""

    task_name: ClassVar[str] = c.UPDATE_ACCESS

    device_identifier: DeviceIdentifier
    access_id: AccessId
    updated_by: Email
    access_level: Level | None = None
    remote_access_disabled: bool | None = None
    week_days: WeekDayMask | None = None
    start_date: Instant | None = None
    end_date: Instant | None = None
    day_start_time: TimeOfDay | None = None
    day_end_time: TimeOfDay | None = None
    time_zone: TimeZoneName | None = None  # null: back to UTC

    @field_validator("access_level", "remote_access_disabled", mode="before")
    @classmethod
    def _not_clearable(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be cleared (null); leave the field out to keep it")
        return value

    @model_validator(mode="after")
    def _changes_something(self) -> UpdateAccess:
        if not self.changes():
            raise ValueError(
                "nothing to change: give at least one of accessLevel, remoteAccessDisabled, "
                "weekDays, startDate, endDate, dayStartTime, dayEndTime, timeZone"
            )
        return self

    def changes(self) -> dict[str, Any]:
        """The fields this command sets (``None`` = clear), by Python name."""
        return {name: getattr(self, name) for name in CHANGEABLE if name in self.model_fields_set}


class RevokeAccess(Command):
    """End an access; it is kept, marked revoked."""

    task_name: ClassVar[str] = c.REVOKE_ACCESS

    device_identifier: DeviceIdentifier
    access_id: AccessId
    revoked_by: Email
