"""Offset-change discovery (`cronwarden.cron.zones`) against a brute-force scan."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

import pytest

from cronwarden.cron.zones import (
    fixed_offset,
    offset_at,
    resolve_zone,
    segment_at,
    transitions,
    year_start,
)
from cronwarden.errors import CronError

ZONES = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Sao_Paulo",
    "Africa/Casablanca",
    "Asia/Tehran",
    "America/Santiago",
    "Europe/Moscow",
    "Asia/Gaza",
]


def _brute_force(zone: ZoneInfo, year: int) -> list[tuple[int, int, int]]:
    """Every offset change in (start of year, start of next year], found hour by hour."""
    found = []
    hour = year_start(year)
    offset = offset_at(zone, hour)
    while hour < year_start(year + 1):
        nxt = hour + 3600
        nxt_offset = offset_at(zone, nxt)
        if nxt_offset != offset:
            second = next(t for t in range(hour + 1, nxt + 1) if offset_at(zone, t) != offset)
            found.append((second, offset, nxt_offset))
        hour, offset = nxt, nxt_offset
    return found


@pytest.mark.parametrize("name", ZONES)
@pytest.mark.parametrize("year", [1975, 2000, 2026, 2040, 2731])
def test_it_finds_every_offset_change(name: str, year: int) -> None:
    zone = ZoneInfo(name)
    assert list(transitions(zone, year)) == _brute_force(zone, year)


def test_it_finds_the_closest_changes_on_record() -> None:
    # Brazil's 2000 DST start moved by a week: two changes seven days apart.
    zone = ZoneInfo("America/Noronha")
    assert list(transitions(zone, 2000)) == _brute_force(zone, 2000)


def test_it_knows_fixed_offset_zones() -> None:
    assert fixed_offset(ZoneInfo("UTC")) == 0
    assert fixed_offset(ZoneInfo("Etc/GMT+5")) == -5 * 3600
    assert fixed_offset(UTC) == 0
    assert fixed_offset(ZoneInfo("America/New_York")) is None


def test_it_puts_an_instant_in_its_segment() -> None:
    zone = ZoneInfo("America/New_York")
    spring = int(datetime(2026, 3, 8, 7, tzinfo=UTC).timestamp())
    seg = segment_at(zone, spring)
    assert (seg.start, seg.offset, seg.prev_offset) == (spring, -4 * 3600, -5 * 3600)
    assert seg.opens_gap and not seg.opens_fold
    before = segment_at(zone, spring - 1)
    assert before.end == spring and before.offset == -5 * 3600


@pytest.mark.parametrize(
    "bad",
    ["Mars/Base", "", "../etc/passwd", "America", "\x00", "localtime", "right/UTC", "posix/UTC"],
)
def test_it_rejects_unknown_zone_names(bad: str) -> None:
    with pytest.raises(CronError, match="timezone:"):
        resolve_zone(bad)


class _NoOffset(tzinfo):
    def utcoffset(self, dt: datetime | None) -> None:
        return None


def test_it_rejects_a_tzinfo_without_an_offset() -> None:
    with pytest.raises(CronError, match="gives no UTC offset"):
        resolve_zone(_NoOffset())
