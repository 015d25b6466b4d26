"""Schedules answer "may this access be used at instant T?": date range, weekdays and a
daily wall-clock window in the schedule's time zone, across midnight and clock changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.access import (
    Access,
    AccessLevel,
    AccessTerms,
    Schedule,
    ScheduleError,
    WeekDays,
    authorize,
)
from models.errors import Rejected

BERLIN = "Europe/Berlin"
MON, TUE, WED, SUN = 1, 2, 4, 64


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def allowed_minutes(schedule: Schedule, start: datetime, end: datetime) -> int:
    """How many minutes of real time between two instants the schedule allows."""
    minutes = int((end - start).total_seconds() // 60)
    return sum(schedule.allows(start + timedelta(minutes=m)) for m in range(minutes))


# -- the independent evaluator the property test compares against -------------------------


def brute_force(schedule: Schedule, at: datetime) -> bool:
    """Enumerate the window occurrences that could contain ``at`` as naive wall-clock
    intervals [opening, opening + length) and test membership; no time-of-day comparisons."""
    if schedule.start is not None and at.timestamp() < schedule.start.timestamp():
        return False
    if schedule.end is not None and at.timestamp() >= schedule.end.timestamp():
        return False
    wall = at.astimezone(ZoneInfo(schedule.time_zone)).replace(tzinfo=None)

    def on(day: date) -> bool:
        return schedule.week_days is None or bool(schedule.week_days >> day.weekday() & 1)

    if schedule.day_start is None or schedule.day_end is None:
        return on(wall.date())
    someday = date(2000, 1, 1)
    length = (
        datetime.combine(someday, schedule.day_end) - datetime.combine(someday, schedule.day_start)
    ) % timedelta(days=1)
    for back in (1, 0):
        day = wall.date() - timedelta(days=back)
        opening = datetime.combine(day, schedule.day_start)
        if on(day) and opening <= wall < opening + length:
            return True
    return False


ZONES = [
    "UTC",
    BERLIN,
    "America/New_York",
    "Australia/Lord_Howe",  # a 30-minute daylight-saving shift
    "Asia/Kathmandu",  # a +05:45 offset
    "Pacific/Apia",  # skipped 30 December 2011 entirely
]
instants = st.datetimes(
    min_value=datetime(2009, 1, 1), max_value=datetime(2032, 12, 31), timezones=st.just(UTC)
)
# Quarter hours most of the time, so that minute probes land on window edges.
clocks = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45])) | st.times()


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    window = draw(st.none() | st.tuples(clocks, clocks).filter(lambda w: w[0] != w[1]))
    bounds = draw(st.tuples(st.none() | instants, st.none() | instants))
    start, end = bounds
    if start is not None and end is not None and end <= start:
        start, end = end, (start if start != end else None)
    return Schedule(
        week_days=draw(st.none() | st.integers(1, 127)),
        start=start,
        end=end,
        day_start=window[0] if window else None,
        day_end=window[1] if window else None,
        time_zone=draw(st.sampled_from(ZONES)),
    )


@settings(max_examples=600, deadline=None)
@given(schedule=schedules(), at=instants)
def test_allows_agrees_with_a_brute_force_evaluation(schedule, at):
    assert schedule.allows(at) == brute_force(schedule, at)


@settings(max_examples=200, deadline=None)
@given(schedule=schedules(), at=instants, zone=st.sampled_from(ZONES))
def test_the_answer_depends_on_the_instant_not_on_how_it_is_written(schedule, at, zone):
    assert schedule.allows(at) == schedule.allows(at.astimezone(ZoneInfo(zone)))


@settings(max_examples=300, deadline=None)
@given(schedule=schedules(), at=instants, edge=st.sampled_from(["day_start", "day_end"]))
def test_window_edges_agree_with_the_brute_force_to_the_microsecond(schedule, at, edge):
    # Given the wall-clock instant a window opens or closes on some local day
    clock = getattr(schedule, edge)
    if clock is None:
        clock = time(0)
    zone = ZoneInfo(schedule.time_zone)
    edge_at = datetime.combine(at.astimezone(zone).date(), clock, tzinfo=zone).astimezone(UTC)
    # Then the edge itself and the instants right around it agree
    for delta in (timedelta(0), timedelta(microseconds=1), timedelta(minutes=1)):
        for probe in (edge_at - delta, edge_at + delta):
            assert schedule.allows(probe) == brute_force(schedule, probe)


# -- the rules, spelled out --------------------------------------------------------------


def test_no_schedule_is_permanent_access():
    assert Schedule().permanent
    assert Schedule().allows(utc(1999, 1, 1)) and Schedule().allows(utc(2099, 1, 1))
    assert Schedule().explain(utc(2024, 1, 1)).reason == "permanent access (no schedule)"


def test_the_date_range_includes_its_start_and_excludes_its_end():
    # Given the time-restricted guest access of the API's example
    schedule = Schedule(start=utc(2020, 12, 14, 8, 9, 57), end=utc(2020, 12, 31, 8, 10, 57))
    # Then the start instant is allowed, the end instant is not
    assert not schedule.allows(utc(2020, 12, 14, 8, 9, 56))
    assert schedule.allows(utc(2020, 12, 14, 8, 9, 57))
    assert schedule.allows(utc(2020, 12, 31, 8, 10, 56))
    verdict = schedule.explain(utc(2020, 12, 31, 8, 10, 57))
    assert not verdict.allowed and verdict.reason == "endDate 2020-12-31T08:10:57Z has passed"
    assert schedule.explain(utc(2020, 1, 1)).reason == "before startDate 2020-12-14T08:09:57Z"


def test_the_custom_guest_example_allows_monday_to_wednesday_from_8_to_20():
    # Given weekDays 7 (Mon, Tue, Wed) and a daily window 08:00-20:00 in December 2020
    schedule = Schedule(
        week_days=7,
        start=utc(2020, 12, 1, 8, 9, 57),
        end=utc(2020, 12, 31, 23, 10, 57),
        day_start=time(8),
        day_end=time(20),
    )
    # Then Wednesday 2 December at 09:00 is allowed, 20:00 is not, Saturday is not
    assert schedule.allows(utc(2020, 12, 2, 9))
    assert schedule.explain(utc(2020, 12, 2, 20)).reason == (
        "Wednesday 20:00 UTC: outside the daily window 08:00-20:00"
    )
    assert schedule.explain(utc(2020, 12, 5, 9)).reason == (
        "Saturday 09:00 UTC: not in weekDays (Mon, Tue, Wed)"
    )


class TestWindowAcrossMidnight:
    """Sunday 22:00-06:00 with only Sunday set: the window belongs to the day it starts."""

    schedule = Schedule(week_days=SUN, day_start=time(22), day_end=time(6))

    def test_monday_3am_is_inside_the_window_that_opened_on_sunday(self):
        verdict = self.schedule.explain(utc(2024, 1, 8, 3))  # Monday
        assert verdict.allowed
        assert verdict.reason == (
            "Monday 03:00 UTC: inside the daily window 22:00-06:00 opened on Sunday (Sun)"
        )

    def test_sunday_late_evening_is_inside(self):
        assert self.schedule.allows(utc(2024, 1, 7, 23, 59))

    def test_sunday_3am_belongs_to_saturdays_window_and_is_denied(self):
        verdict = self.schedule.explain(utc(2024, 1, 7, 3))  # Sunday
        assert not verdict.allowed
        assert "that window opens on Saturday, not in weekDays (Sun)" in verdict.reason

    def test_the_window_ends_at_monday_6am_exactly(self):
        assert self.schedule.allows(utc(2024, 1, 8, 5, 59, 59))
        assert not self.schedule.allows(utc(2024, 1, 8, 6))

    def test_monday_evening_opens_no_window(self):
        assert not self.schedule.allows(utc(2024, 1, 8, 22, 30))

    def test_the_week_boundary_is_crossed_the_other_way_too(self):
        # Saturday-only 23:00-02:00 reaches into Sunday
        saturday = Schedule(week_days=32, day_start=time(23), day_end=time(2))
        assert saturday.allows(utc(2024, 1, 7, 1, 30))  # Sunday
        assert not saturday.allows(utc(2024, 1, 8, 1, 30))  # Monday


class TestBerlinClockChanges:
    """Weekdays and windows are wall-clock rules in the time zone. 2024-03-31 02:00 CET
    jumps to 03:00 CEST (01:00 UTC); 2024-10-27 03:00 CEST falls back to 02:00 CET."""

    spring_day = (utc(2024, 3, 30, 23), utc(2024, 3, 31, 22))  # local 31 March, 23 hours
    autumn_day = (utc(2024, 10, 26, 22), utc(2024, 10, 27, 23))  # local 27 October, 25 hours

    def window(self, start: time, end: time) -> Schedule:
        return Schedule(day_start=start, day_end=end, time_zone=BERLIN)

    def test_a_window_inside_the_skipped_hour_never_opens_that_night(self):
        schedule = self.window(time(2), time(2, 30))
        assert allowed_minutes(schedule, *self.spring_day) == 0
        # the local times that do not exist are not allowed either side of the jump
        assert not schedule.allows(utc(2024, 3, 31, 0, 59))  # 01:59 CET
        assert not schedule.allows(utc(2024, 3, 31, 1, 0))  # 03:00 CEST
        # and the next night it is open again for 30 minutes
        assert allowed_minutes(schedule, utc(2024, 3, 31, 22), utc(2024, 4, 1, 22)) == 30

    def test_a_window_over_the_jump_is_an_hour_shorter(self):
        schedule = self.window(time(1, 30), time(3, 30))
        assert allowed_minutes(schedule, *self.spring_day) == 60
        assert schedule.allows(utc(2024, 3, 31, 0, 30))  # 01:30 CET
        assert schedule.allows(utc(2024, 3, 31, 1, 29))  # 03:29 CEST
        assert not schedule.allows(utc(2024, 3, 31, 1, 30))  # 03:30 CEST

    def test_a_window_that_starts_at_a_nonexistent_time_opens_when_the_clock_passes_it(self):
        schedule = self.window(time(2, 30), time(4))
        assert not schedule.allows(utc(2024, 3, 31, 0, 59))  # 01:59 CET
        assert schedule.allows(utc(2024, 3, 31, 1, 0))  # 03:00 CEST, past 02:30 on the wall
        assert allowed_minutes(schedule, *self.spring_day) == 60

    def test_the_repeated_hour_counts_twice_on_the_autumn_night(self):
        schedule = self.window(time(2), time(3))
        assert allowed_minutes(schedule, *self.autumn_day) == 120
        assert schedule.allows(utc(2024, 10, 27, 0, 15))  # 02:15 CEST, first pass
        assert schedule.allows(utc(2024, 10, 27, 1, 15))  # 02:15 CET, second pass
        assert not schedule.allows(utc(2024, 10, 27, 2, 0))  # 03:00 CET

    def test_an_ambiguous_window_is_open_during_both_passes(self):
        assert allowed_minutes(self.window(time(2, 30), time(2, 45)), *self.autumn_day) == 30

    def test_an_overnight_window_follows_the_wall_clock_through_both_changes(self):
        overnight = self.window(time(22), time(6))
        # Saturday 22:00 CET to Sunday 06:00 CEST: 7 real hours
        assert allowed_minutes(overnight, utc(2024, 3, 30, 20), utc(2024, 3, 31, 6)) == 7 * 60
        # Saturday 22:00 CEST to Sunday 06:00 CET: 9 real hours
        assert allowed_minutes(overnight, utc(2024, 10, 26, 19), utc(2024, 10, 27, 7)) == 9 * 60

    def test_the_weekday_is_the_local_one(self):
        # Sunday 23:30 UTC is already Monday 00:30 in Berlin
        monday_only = Schedule(week_days=MON, time_zone=BERLIN)
        assert monday_only.allows(utc(2024, 1, 7, 23, 30))
        assert not Schedule(week_days=MON).allows(utc(2024, 1, 7, 23, 30))
        reason = monday_only.explain(utc(2024, 1, 7, 22, 30)).reason
        assert reason == "Sunday 23:30 Europe/Berlin: not in weekDays (Mon)"


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"week_days": 0}, "weekDays"),
        ({"week_days": 128}, "weekDays"),
        ({"start": utc(2024, 1, 2), "end": utc(2024, 1, 2)}, "endDate"),
        ({"start": utc(2024, 1, 2), "end": utc(2024, 1, 1)}, "endDate"),
        ({"start": datetime(2024, 1, 1)}, "startDate"),
        ({"day_start": time(8)}, "dayEndTime"),
        ({"day_end": time(8)}, "dayStartTime"),
        ({"day_start": time(8), "day_end": time(8)}, "dayEndTime"),
        ({"time_zone": "Mars/Olympus_Mons"}, "timeZone"),
        ({"time_zone": "europe/berlin"}, "timeZone"),
    ],
)
def test_a_contradictory_or_out_of_range_schedule_names_its_field(fields, field):
    with pytest.raises(ScheduleError) as caught:
        Schedule(**fields)
    assert caught.value.field == field
    assert str(caught.value).startswith(field)


def test_a_naive_instant_cannot_be_asked_about():
    with pytest.raises(ValueError, match="timezone-aware"):
        Schedule(week_days=MON).allows(datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("text", "mask"),
    [
        ("31", 31),
        ("mon,tue", 3),
        ("Monday, Tuesday, Wednesday", 7),
        (" SAT , sun ", 96),
        ("mon,mon", 1),
    ],
)
def test_weekdays_read_as_numbers_or_names(text, mask):
    assert WeekDays.parse(text) == mask


@pytest.mark.parametrize("text", ["", "funday", "mon,xyz", ","])
def test_unknown_weekday_names_are_refused(text):
    with pytest.raises(ValueError):
        WeekDays.parse(text)


def test_weekday_masks_read_back_as_names():
    assert WeekDays.describe(31) == "Mon, Tue, Wed, Thu, Fri"
    assert WeekDays.describe(None) == WeekDays.describe(127) == "every day"


# -- accesses and authority -----------------------------------------------------------------


def an_access(schedule: Schedule, **fields) -> Access:
    return Access(
        id=1,
        organization_id="o",
        device_id=1,
        customer_id=2,
        user_email="u@example.com",
        user_name="u",
        terms=AccessTerms(AccessLevel.ADMIN, False, schedule),
        granted_by_customer_id=None,
        created_at=utc(2024, 1, 1),
        updated_at=utc(2024, 1, 1),
        **fields,
    )


def test_an_access_is_active_until_its_end_date_or_revocation():
    access = an_access(Schedule(start=utc(2024, 2, 1), end=utc(2024, 3, 1)))
    assert access.active(utc(2024, 1, 15)) and not access.in_force(utc(2024, 1, 15))
    assert access.active(utc(2024, 2, 15)) and access.in_force(utc(2024, 2, 15))
    assert not access.active(utc(2024, 3, 1))
    revoked = an_access(Schedule(), revoked_at=utc(2024, 1, 2), closed_at=utc(2024, 1, 2))
    assert not revoked.active(utc(2024, 1, 3))


@pytest.mark.parametrize(
    ("actor", "grants", "allowed"),
    [
        (AccessLevel.OWNER, AccessLevel.ADMIN, True),
        (AccessLevel.OWNER, AccessLevel.GUEST, True),
        (AccessLevel.ADMIN, AccessLevel.ADMIN, True),
        (AccessLevel.ADMIN, AccessLevel.GUEST, True),
        (AccessLevel.ADMIN, AccessLevel.OWNER, False),
        (AccessLevel.GUEST, AccessLevel.GUEST, False),
        (None, AccessLevel.GUEST, False),
    ],
)
def test_only_owners_and_admins_grant_and_never_above_their_level(actor, grants, allowed):
    def attempt() -> None:
        authorize(actor="a@x.org", actor_level=actor, levels=[grants], device_identifier="D")

    if allowed:
        attempt()
    else:
        with pytest.raises(Rejected) as caught:
            attempt()
        assert caught.value.status_code == 403 and caught.value.error_code == "FORBIDDEN"
        expected = "greater than theirs" if actor == AccessLevel.ADMIN else "neither an owner"
        assert expected in caught.value.messages[0]
