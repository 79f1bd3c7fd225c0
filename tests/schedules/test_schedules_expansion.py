"""RRULE expansion in the beneficiary's time zone: DST, exceptions, edits, merging. Pure."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest

from control_plane.schedules.expansion import (
    RecurrenceError,
    Series,
    Skip,
    expand,
    first_on_or_after,
    localize,
    merge,
    normalize_rrule,
    occurrences,
    parse_rrule,
)

ROME = ZoneInfo("Europe/Rome")
UTC = dt.UTC
MIN30 = dt.timedelta(minutes=30)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def rome(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=ROME)  # type: ignore[misc]


def mwf(start: dt.datetime = dt.datetime(2024, 3, 18, 10), **kw: object) -> Series:
    return Series("mwf", start, MIN30, "FREQ=WEEKLY;BYDAY=MO,WE,FR", **kw)  # type: ignore[arg-type]


def local_times(occs: list[object]) -> list[str]:
    return [o.local_start.strftime("%a %d %H:%M") for o in occs]  # type: ignore[attr-defined]


def test_spring_forward_keeps_10_local() -> None:
    occs = occurrences([mwf()], ROME, utc(2024, 3, 27), utc(2024, 4, 4))
    assert local_times(occs) == ["Wed 27 10:00", "Fri 29 10:00", "Mon 01 10:00", "Wed 03 10:00"]
    # Before 31 March Rome is UTC+1, after it UTC+2: the UTC time moves, the local one not.
    assert [o.start.hour for o in occs] == [9, 9, 8, 8]
    assert all(o.start.astimezone(ROME).hour == 10 for o in occs)
    assert all(o.end - o.start == MIN30 for o in occs)


def test_fall_back_keeps_10_local() -> None:
    occs = occurrences([mwf()], ROME, utc(2024, 10, 23), utc(2024, 11, 1))
    assert local_times(occs) == ["Wed 23 10:00", "Fri 25 10:00", "Mon 28 10:00", "Wed 30 10:00"]
    assert [o.start.hour for o in occs] == [8, 8, 9, 9]


def test_daily_across_both_changes_is_always_10_local() -> None:
    daily = Series("d", dt.datetime(2024, 1, 1, 10), MIN30, "FREQ=DAILY")
    occs = occurrences([daily], ROME, utc(2024, 1, 1), utc(2025, 1, 1))
    assert len(occs) == 366
    assert {o.start.astimezone(ROME).strftime("%H:%M") for o in occs} == {"10:00"}
    offsets = {o.start.astimezone(ROME).utcoffset() for o in occs}
    assert offsets == {dt.timedelta(hours=1), dt.timedelta(hours=2)}


def test_skipped_and_repeated_hours() -> None:
    # 02:30 does not exist on 31 March in Rome: it moves forward by the gap, to 03:30 CEST.
    night = Series("n", dt.datetime(2024, 3, 30, 2, 30), MIN30, "FREQ=DAILY;COUNT=2")
    spring = occurrences([night], ROME, utc(2024, 3, 29), utc(2024, 4, 2))
    assert [o.start for o in spring] == [utc(2024, 3, 30, 1, 30), utc(2024, 3, 31, 1, 30)]
    assert spring[1].start.astimezone(ROME).strftime("%H:%M %Z") == "03:30 CEST"
    # 02:30 happens twice on 27 October: the first one (still summer time) is taken.
    autumn = localize(dt.datetime(2024, 10, 27, 2, 30), ROME)
    assert autumn == utc(2024, 10, 27, 0, 30)


def test_one_off_and_overlap_at_range_edges() -> None:
    one = Series("one", dt.datetime(2024, 5, 6, 10), dt.timedelta(hours=1))
    # An appointment under way at the start of the range is included; one after it is not.
    assert (
        occurrences([one], ROME, utc(2024, 5, 6, 8, 30), utc(2024, 5, 7))[0].appointment_id == "one"
    )
    assert occurrences([one], ROME, utc(2024, 5, 6, 9, 0), utc(2024, 5, 7)) == []
    assert occurrences([one], ROME, utc(2024, 5, 1), utc(2024, 5, 6, 8)) == []


def test_exceptions_holiday_and_stay() -> None:
    morning = mwf()
    evening = Series("eve", dt.datetime(2024, 4, 1, 18), MIN30, "FREQ=DAILY")
    skips = [
        Skip(dt.date(2024, 4, 3), dt.date(2024, 4, 3)),  # a holiday: nothing that day
        Skip(dt.date(2024, 4, 5), dt.date(2024, 4, 7), appointment_id="eve"),  # one series
    ]
    occs = occurrences([morning, evening], ROME, rome(2024, 4, 1), rome(2024, 4, 9), skips)
    assert local_times(occs) == [
        "Mon 01 10:00",
        "Mon 01 18:00",
        "Tue 02 18:00",
        "Thu 04 18:00",
        "Fri 05 10:00",
        "Mon 08 10:00",
        "Mon 08 18:00",
    ]


def test_edit_from_a_date_stitches_two_series() -> None:
    old = Series("1", dt.datetime(2024, 5, 6, 10), MIN30, "FREQ=DAILY", until=dt.date(2024, 5, 8))
    new = Series("2", dt.datetime(2024, 5, 9, 11, 30), MIN30, "FREQ=DAILY")
    occs = occurrences([old, new], ROME, rome(2024, 5, 6), rome(2024, 5, 11))
    assert [(o.appointment_id, o.local_start.strftime("%d %H:%M")) for o in occs] == [
        ("1", "06 10:00"),
        ("1", "07 10:00"),
        ("1", "08 10:00"),
        ("2", "09 11:30"),
        ("2", "10 11:30"),
    ]
    assert first_on_or_after(mwf(), dt.date(2024, 3, 23)) == dt.datetime(2024, 3, 25, 10)
    assert first_on_or_after(old, dt.date(2024, 5, 9)) is None
    assert (
        first_on_or_after(Series("x", dt.datetime(2024, 1, 1, 9), MIN30), dt.date(2024, 2, 1))
        is None
    )


def test_overlaps_merge_into_one_wake() -> None:
    a = Series("a", dt.datetime(2024, 5, 6, 10), MIN30)
    b = Series("b", dt.datetime(2024, 5, 6, 10, 15), MIN30)
    c = Series("c", dt.datetime(2024, 5, 6, 10, 50), MIN30)  # 5 min after b ends
    d = Series("d", dt.datetime(2024, 5, 6, 16), MIN30)
    windows = expand([a, b, c, d], ROME, rome(2024, 5, 6), rome(2024, 5, 7))
    assert [(w.start.astimezone(ROME).strftime("%H:%M"), w.appointment_ids) for w in windows] == [
        ("10:00", ("a", "b")),
        ("10:50", ("c",)),
        ("16:00", ("d",)),
    ]
    assert windows[0].end - windows[0].start == dt.timedelta(minutes=45)
    # Windows closer than the gap (the alarm lead) are one wake: the PC stays on between them.
    gap = expand(
        [a, b, c, d], ROME, rome(2024, 5, 6), rome(2024, 5, 7), gap=dt.timedelta(minutes=10)
    )
    assert [w.appointment_ids for w in gap] == [("a", "b", "c"), ("d",)]
    assert merge([]) == []


def test_rrule_normalization_and_refusals() -> None:
    assert normalize_rrule("rrule:freq=weekly;byday=MO,FR;interval=2", ROME) == (
        "FREQ=WEEKLY;BYDAY=MO,FR;INTERVAL=2"
    )
    # RFC 5545 wants a UTC UNTIL when DTSTART has a zone: it becomes the local time it means.
    assert normalize_rrule("FREQ=DAILY;UNTIL=20240701T075959Z", ROME) == (
        "FREQ=DAILY;UNTIL=20240701T095959"
    )
    assert normalize_rrule("FREQ=DAILY;UNTIL=20240701", ROME) == "FREQ=DAILY;UNTIL=20240701T235959"
    for text, reason in [
        ("FREQ=HOURLY", "too frequent"),
        ("BYDAY=MO", "FREQ is required"),
        ("FREQ=DAILY;COUNT=3;UNTIL=20240701", "COUNT and UNTIL"),
        ("FREQ=DAILY;DTSTART=20240101T100000", "DTSTART is not supported"),
        ("FREQ=DAILY;BYHOUR=1,2,3;BYMINUTE=0,20,40", "too many"),
        ("FREQ=DAILY;FREQ=WEEKLY", "given twice"),
        ("FREQ=DAILY;UNTIL=tomorrow", "UNTIL=TOMORROW"),
        ("FREQ=DAILY\nFREQ=WEEKLY", "one RRULE line"),
        ("", "empty rule"),
    ]:
        with pytest.raises(RecurrenceError, match=reason) as info:
            normalize_rrule(text, ROME)
        assert info.value.field == "rrule"


def test_a_rule_that_never_occurs_is_refused_quickly() -> None:
    start = dt.datetime(2024, 1, 1, 10)
    began = time.monotonic()
    with pytest.raises(RecurrenceError, match="never occurs"):
        parse_rrule("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", start)
    # dateutil alone walks such a rule to the year 9999: seconds. Here it is bounded.
    assert time.monotonic() - began < 2.0
    with pytest.raises(RecurrenceError, match="before the first occurrence"):
        parse_rrule("FREQ=WEEKLY;UNTIL=20231231T000000", start)
    with pytest.raises(RecurrenceError, match="not a valid RRULE"):
        parse_rrule("FREQ=WEEKLY;BYDAY=XX", start)
    # 29 February: every four years is still a rule.
    assert parse_rrule("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", start)


def test_count_and_until_bound_the_series() -> None:
    counted = Series("c", dt.datetime(2024, 5, 6, 10), MIN30, "FREQ=DAILY;COUNT=3")
    until = Series("u", dt.datetime(2024, 5, 6, 12), MIN30, "FREQ=DAILY;UNTIL=20240507T235959")
    occs = occurrences([counted, until], ROME, rome(2024, 5, 1), rome(2024, 6, 1))
    assert [(o.appointment_id, o.local_start.day) for o in occs] == [
        ("c", 6),
        ("u", 6),
        ("c", 7),
        ("u", 7),
        ("c", 8),
    ]
