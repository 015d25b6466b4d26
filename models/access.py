"""The domain of access grants: levels, weekday masks, schedules, who may grant what.

Pure Python: no framework, no I/O. A ``Schedule`` answers "may this access be used at
instant T?"; weekdays and the daily window are wall-clock rules in the schedule's time
zone, the date range is a pair of UTC instants.
"""

from __future__ import annotations

import enum
import functools
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import ClassVar

from models.constants import ACCESS_GRANTED, ACCESS_REVOKED, ACCESS_UPDATED
from models.domain import DomainEvent
from models.errors import Rejected


class AccessLevel(enum.IntEnum):
    """What a user may do with a device. Owners come from assignment, never from a grant."""

    GUEST = 0
    ADMIN = 1
    OWNER = 2


ALL_WEEK_DAYS = 127  # the weekDays mask of every day


class WeekDays(enum.IntFlag):
    """The weekday mask of a schedule, as on the wire: Monday = 1 … Sunday = 64."""

    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 4
    THURSDAY = 8
    FRIDAY = 16
    SATURDAY = 32
    SUNDAY = 64

    @classmethod
    def of(cls, day: date) -> WeekDays:
        return cls(1 << day.weekday())

    @classmethod
    def parse(cls, text: str) -> int:
        """``"31"``, ``"mon,tue"`` or ``"Monday, Tuesday"`` → the mask as an int.

        Raises ``ValueError`` naming what it did not understand.
        """
        text = text.strip()
        if re.fullmatch(r"\d{1,3}", text):
            return int(text)
        mask = 0
        for part in filter(None, (p.strip().lower() for p in text.split(","))):
            matches = [d for d in cls if d.name and part in (d.name.lower(), d.name.lower()[:3])]
            if not matches:
                raise ValueError(f"unknown weekday {part!r} (use mon … sun, or a number 1-127)")
            mask |= matches[0]
        if not mask:
            raise ValueError("no weekday given")
        return mask

    @classmethod
    def describe(cls, mask: int | None) -> str:
        if mask is None or mask == ALL_WEEK_DAYS:
            return "every day"
        return ", ".join(d.name.title()[:3] for d in cls if d.name and mask & d)


class ScheduleError(ValueError):
    """Raised when schedule fields contradict each other or one is out of range.

    ``field`` is the name of the offending field as it is spelled on the wire."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones() | {"UTC"})


@functools.cache
def _zone(name: str) -> tzinfo:
    return UTC if name == "UTC" else zoneinfo.ZoneInfo(name)


def week_days_problem(mask: int | None) -> str | None:
    if mask is not None and not 1 <= mask <= ALL_WEEK_DAYS:
        return (
            f"must be a weekday mask from 1 (Monday) to 127 (every day), got {mask}; "
            "null means every day"
        )
    return None


def time_zone_problem(name: str) -> str | None:
    if name not in _time_zones():
        return f"{name!r} is not an IANA time zone name (e.g. 'Europe/Berlin', 'UTC')"
    return None


def date_range_problem(start: datetime | None, end: datetime | None) -> str | None:
    if start is not None and end is not None and end <= start:
        return f"must be after startDate ({_iso(start)}), got {_iso(end)}"
    return None


def window_problem(day_start: time | None, day_end: time | None) -> tuple[str, str] | None:
    """``(field, reason)`` when the daily window is half given or empty."""
    if day_start is not None and day_end is None:
        return "dayEndTime", "required when dayStartTime is given (both or neither)"
    if day_start is None and day_end is not None:
        return "dayStartTime", "required when dayEndTime is given (both or neither)"
    if day_start is not None and day_start == day_end:
        return "dayEndTime", "must differ from dayStartTime (leave both null for the whole day)"
    return None


@dataclass(frozen=True)
class Verdict:
    """The answer to "may it be used at T?", with the reason a person can read."""

    allowed: bool
    reason: str


@dataclass(frozen=True)
class Schedule:
    """When an access may be used. Every field ``None`` (and UTC) = always.

    - ``start``/``end``: UTC instants, ``start`` included, ``end`` excluded.
    - ``week_days``: mask of the local weekdays on which the access (or its daily
      window) starts; ``None`` = every day.
    - ``day_start``/``day_end``: a wall-clock window in ``time_zone``, start included,
      end excluded. An end before the start crosses midnight; such a window belongs to
      the day it starts on, so Sunday 22:00-06:00 with only Sunday allowed includes
      Monday 03:00 and not Sunday 03:00.
    """

    week_days: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    day_start: time | None = None
    day_end: time | None = None
    time_zone: str = "UTC"

    def __post_init__(self) -> None:
        for name, value in (("startDate", self.start), ("endDate", self.end)):
            if value is not None and value.tzinfo is None:
                raise ScheduleError(name, "must carry a time zone (UTC)")
        for name, clock in (("dayStartTime", self.day_start), ("dayEndTime", self.day_end)):
            if clock is not None and clock.tzinfo is not None:
                raise ScheduleError(name, "must be a wall-clock time without UTC offset")
        if problem := week_days_problem(self.week_days):
            raise ScheduleError("weekDays", problem)
        if problem := date_range_problem(self.start, self.end):
            raise ScheduleError("endDate", problem)
        if window := window_problem(self.day_start, self.day_end):
            raise ScheduleError(*window)
        if problem := time_zone_problem(self.time_zone):
            raise ScheduleError("timeZone", problem)

    @property
    def permanent(self) -> bool:
        return self == Schedule()

    def allows(self, at: datetime) -> bool:
        return self.explain(at).allowed

    def explain(self, at: datetime) -> Verdict:
        """Whether the schedule allows instant ``at`` (timezone-aware), and why."""
        if at.tzinfo is None:
            raise ValueError("at must be timezone-aware")
        if self.permanent:
            return Verdict(True, "permanent access (no schedule)")
        if self.start is not None and at < self.start:
            return Verdict(False, f"before startDate {_iso(self.start)}")
        if self.end is not None and at >= self.end:
            return Verdict(False, f"endDate {_iso(self.end)} has passed")
        local = at.astimezone(_zone(self.time_zone))
        where = f"{_weekday(local.date())} {local:%H:%M} {self.time_zone}"
        if self.day_start is None or self.day_end is None:
            if not self._on(local.date()):
                return Verdict(False, f"{where}: not in weekDays ({self.days})")
            return Verdict(True, f"{where}: within the schedule ({self.days})")
        return self._in_window(local, where)

    def _in_window(self, local: datetime, where: str) -> Verdict:
        assert self.day_start is not None and self.day_end is not None
        clock, today = local.time().replace(fold=0), local.date()
        window = f"daily window {self.day_start:%H:%M}-{self.day_end:%H:%M}"
        if self.day_start < self.day_end:
            if not self.day_start <= clock < self.day_end:
                return Verdict(False, f"{where}: outside the {window}")
            if not self._on(today):
                return Verdict(False, f"{where}: not in weekDays ({self.days})")
            return Verdict(True, f"{where}: inside the {window} ({self.days})")
        # Across midnight: the evening part belongs to today, the morning part to yesterday.
        if clock >= self.day_start:
            opened = today
        elif clock < self.day_end:
            opened = today - timedelta(days=1)
        else:
            return Verdict(False, f"{where}: outside the {window}")
        if not self._on(opened):
            return Verdict(
                False,
                f"{where}: inside the {window}, but that window opens on "
                f"{_weekday(opened)}, not in weekDays ({self.days})",
            )
        return Verdict(
            True, f"{where}: inside the {window} opened on {_weekday(opened)} ({self.days})"
        )

    def _on(self, day: date) -> bool:
        return self.week_days is None or bool(self.week_days & WeekDays.of(day))

    @property
    def days(self) -> str:
        return WeekDays.describe(self.week_days)


@dataclass(frozen=True)
class AccessTerms:
    """What a grant says: compared whole to tell "the same grant again" from another one."""

    level: AccessLevel
    remote_access_disabled: bool
    schedule: Schedule


@dataclass(frozen=True)
class Access:
    """One user's access to one device, as stored."""

    id: int
    organization_id: str
    device_id: int
    customer_id: int
    user_email: str
    user_name: str
    terms: AccessTerms
    granted_by_customer_id: int | None
    created_at: datetime
    updated_at: datetime
    revoked_at: datetime | None = None
    closed_at: datetime | None = None  # revoked, or expired and replaced by a new grant

    def active(self, now: datetime) -> bool:
        """Counts as the user's access: neither ended by revocation or replacement nor expired."""
        end = self.terms.schedule.end
        return self.closed_at is None and self.revoked_at is None and (end is None or now < end)

    def in_force(self, now: datetime) -> bool:
        """Active and started: only such an admin access confers the right to administer."""
        start = self.terms.schedule.start
        return self.active(now) and (start is None or start <= now)


def authorize(
    *,
    actor: str,
    actor_level: AccessLevel | None,
    levels: list[AccessLevel],
    device_identifier: str,
) -> None:
    """Only an owner or an administrator in force acts on a device's accesses, and never
    above their own level. Raises ``Rejected`` (403) otherwise."""
    if actor_level is None or actor_level < AccessLevel.ADMIN:
        raise Rejected.forbidden(
            f"{actor} is neither an owner nor an administrator of device {device_identifier!r}"
        )
    above = [level for level in levels if level > actor_level]
    if above:
        raise Rejected.forbidden(
            f"{actor} cannot grant access greater than theirs "
            f"({above[0].name.lower()} above {actor_level.name.lower()})"
        )


# Facts: what changed. The pipeline turns them into CloudEvents in the outbox.


@dataclass(frozen=True)
class AccessGranted(DomainEvent):
    access: Access
    device_id: int
    granted_by: str
    replaced_access_id: int | None = None  # an expired access this grant closed

    type: ClassVar[str] = ACCESS_GRANTED


@dataclass(frozen=True)
class AccessUpdated(DomainEvent):
    access: Access
    device_id: int
    updated_by: str
    changed: list[str]

    type: ClassVar[str] = ACCESS_UPDATED


@dataclass(frozen=True)
class AccessRevoked(DomainEvent):
    access: Access
    device_id: int
    revoked_by: str

    type: ClassVar[str] = ACCESS_REVOKED


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _weekday(day: date) -> str:
    return f"{day:%A}"
