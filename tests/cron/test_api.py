"""The public API of `cronwarden.cron`: types in and out, errors, caching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import islice
from zoneinfo import ZoneInfo

import pytest

import cronwarden
from cronwarden.cron import CronSchedule, parse
from cronwarden.errors import CronError, CronwardenError

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_it_returns_aware_datetimes_in_the_schedule_zone() -> None:
    fire = parse("0 9 * * *", "Asia/Kolkata").next_after(START)
    assert fire is not None
    assert fire.tzinfo == ZoneInfo("Asia/Kolkata")
    assert fire.isoformat() == "2026-01-01T09:00:00+05:30"


def test_it_accepts_zoneinfo_and_fixed_offsets() -> None:
    by_object = parse("0 9 * * *", ZoneInfo("Europe/Berlin")).next_after(START)
    by_name = parse("0 9 * * *", "Europe/Berlin").next_after(START)
    assert by_object == by_name
    fixed = parse("0 9 * * *", timezone(timedelta(hours=-3))).next_after(START)
    assert fixed is not None and fixed.isoformat() == "2026-01-01T09:00:00-03:00"


def test_it_is_strictly_after_even_with_microseconds() -> None:
    schedule = parse("* * * * *")
    assert schedule.next_after(START) == START + timedelta(minutes=1)
    assert schedule.next_after(START - timedelta(microseconds=1)) == START
    assert schedule.prev_before(START) == START - timedelta(minutes=1)
    assert schedule.prev_before(START + timedelta(microseconds=1)) == START


def test_it_takes_any_aware_input_zone() -> None:
    tokyo = datetime(2026, 1, 1, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # 00:00 UTC
    assert parse("0 1 * * *").next_after(tokyo) == datetime(2026, 1, 1, 1, tzinfo=UTC)


def test_it_rejects_naive_datetimes_clearly() -> None:
    schedule = parse("* * * * *")
    for call in (schedule.next_after, schedule.prev_before):
        with pytest.raises(CronError, match="naive"):
            call(datetime(2026, 1, 1))
    with pytest.raises(CronError, match="naive"):
        next(schedule.iter_after(datetime(2026, 1, 1)))


def test_it_iterates_in_order_without_repeats() -> None:
    fires = list(islice(parse("*/7 * * * *").iter_after(START), 100))
    stamps = [fire.timestamp() for fire in fires]
    assert stamps == sorted(set(stamps))
    assert all(fire.minute % 7 == 0 for fire in fires)


def test_it_offers_unix_time_entry_points() -> None:
    schedule = parse("0 0 * * *")
    now = START.timestamp()
    assert schedule.next_instant(now) == now + 86400
    assert schedule.prev_instant(now) == now - 86400


def test_it_ends_iteration_past_year_9999() -> None:
    schedule = parse("0 0 1 1 *")
    late = datetime(9999, 6, 1, tzinfo=UTC)
    assert schedule.next_after(late) is None
    assert list(schedule.iter_after(late)) == []
    assert parse("0 0 1 1 *").prev_before(datetime(1, 1, 1, tzinfo=UTC)) is None


def test_it_caches_compiled_schedules() -> None:
    first = parse("5 4 * * *", "Europe/Paris")
    assert parse("5 4 * * *", "Europe/Paris") is first
    assert parse("5 4 * * *", "Europe/Rome") is not first
    assert isinstance(first, CronSchedule)
    assert "5 4 * * *" in repr(first)


def test_its_errors_share_one_root_with_a_code() -> None:
    with pytest.raises(CronwardenError) as caught:
        parse("61 * * * *")
    assert caught.value.code == "CRON_RUNNER_INVALID_EXPRESSION"
    with pytest.raises(CronError, match="expected a string"):
        parse(5)  # type: ignore[arg-type]


def test_it_reexports_the_small_public_surface() -> None:
    assert cronwarden.parse is parse
    assert cronwarden.CronError is CronError
    assert cronwarden.describe("0 9 * * MON-FRI")


def test_it_returns_local_fires_whose_utc_instant_leaves_year_9999() -> None:
    new_york = ZoneInfo("America/New_York")
    schedule = parse("59 23 31 12 *", new_york)
    fire = schedule.next_after(datetime(9999, 12, 31, 12, tzinfo=new_york))
    assert fire is not None and fire.isoformat() == "9999-12-31T23:59:00-05:00"
    assert list(schedule.iter_after(datetime(9999, 12, 31, 12, tzinfo=new_york))) == [fire]


def test_it_returns_local_fires_whose_utc_instant_precedes_year_1() -> None:
    first = parse("0 0 * * *", "Asia/Kolkata").prev_before(datetime(1, 1, 1, 3, tzinfo=UTC))
    assert first is not None and (first.year, first.month, first.day, first.hour) == (1, 1, 1, 0)
