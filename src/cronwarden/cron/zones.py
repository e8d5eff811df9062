"""Timezones for the cron engine: resolving names and finding UTC-offset changes.

The engine works in *wall seconds* (local date and time counted like a Unix
timestamp) inside a :class:`Segment`, a stretch of time with one UTC offset.
Offset changes (DST, or a zone changing its standard time) are found once per
zone and year by probing the offset at every UTC midnight and bisecting to the
second where it changed; the result is cached, so the arithmetic per fire is a
subtraction.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import date, datetime, timezone, tzinfo
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronwarden.errors import CronError

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
DAY = 86_400
#: Distance between offset probes; see :func:`transitions`.
PROBE_DAYS = 2

# Probing stays two days inside the years a datetime can hold, so that local
# times of every zone stay representable.
_FIRST_YEAR, _LAST_YEAR = 1, 9999
_FOREVER = 2**62

_FIXED_KEYS = frozenset(
    {"UTC", "UCT", "GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich", "Universal", "Zulu"}
)


#: Files of the zone database that are not zones a schedule should name: the host's
#: own setting, POSIX defaults, leap-second ("right/") variants and the placeholder.
_NOT_ZONES = ("localtime", "posixrules", "Factory", "posix/", "right/")


def resolve_zone(tz: str | tzinfo) -> tzinfo:
    """An IANA name or a ``tzinfo`` → ``tzinfo``; anything else raises :class:`CronError`."""
    if isinstance(tz, str):
        return _zone_named(tz)
    if isinstance(tz, tzinfo):
        return _zone_checked(tz)
    raise CronError(f"timezone: expected an IANA name or tzinfo, got {type(tz).__name__}")


@lru_cache(maxsize=1024)
def _zone_checked(tz: tzinfo) -> tzinfo:
    try:
        offset = tz.utcoffset(datetime(2000, 1, 1))
    except Exception as err:  # a broken tzinfo is bad input, like a bad name
        raise CronError(f"timezone: {tz!r} failed: {err}") from None
    if offset is None:
        raise CronError(f"timezone: {tz!r} gives no UTC offset")
    return tz


@lru_cache(maxsize=1024)
def _zone_named(name: str) -> tzinfo:
    if name.startswith(_NOT_ZONES):
        raise CronError(f"timezone: {name[:60]!r} is not an IANA timezone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        raise CronError(f"timezone: {name[:60]!r} is not a known IANA timezone") from None


@lru_cache(maxsize=1024)
def fixed_offset(tz: tzinfo) -> int | None:
    """The zone's UTC offset in seconds when it never changes, else ``None``."""
    if isinstance(tz, timezone):
        return offset_at(tz, 0)
    key = getattr(tz, "key", None)
    if isinstance(tz, ZoneInfo) and isinstance(key, str):
        name = key.removeprefix("Etc/")
        if name in _FIXED_KEYS or name.startswith(("GMT+", "GMT-")):
            return offset_at(tz, 0)
    return None


def year_start(year: int) -> int:
    """Unix time of January 1st, 00:00 UTC, of ``year`` (proleptic Gregorian, any year)."""
    before = year - 1
    ordinal = 365 * before + before // 4 - before // 100 + before // 400 + 1
    return (ordinal - EPOCH_ORDINAL) * DAY


_MIN_PROBE = year_start(_FIRST_YEAR) + 2 * DAY
_MAX_PROBE = year_start(_LAST_YEAR + 1) - 2 * DAY


def year_of(instant: int) -> int:
    clamped = min(max(instant, _MIN_PROBE), _MAX_PROBE - 1)
    return date.fromordinal(clamped // DAY + EPOCH_ORDINAL).year


def offset_at(tz: tzinfo, instant: int) -> int:
    """UTC offset in seconds in force at the Unix time ``instant``."""
    clamped = min(max(instant, _MIN_PROBE), _MAX_PROBE - 1)
    offset = datetime.fromtimestamp(clamped, tz).utcoffset()
    return 0 if offset is None else int(offset.total_seconds())


Transition = tuple[int, int, int]  # (instant, offset before, offset after)


#: The Gregorian calendar repeats every 400 years, to the second.
_CYCLE_YEARS = 400
_CYCLE_SECONDS = 146_097 * DAY
#: From this year on every IANA zone follows its standing rule (the database lists
#: explicit changes only up to the 2080s); checked per zone by :func:`_follows_rule`.
_RULE_YEAR = 2200


@lru_cache(maxsize=4096)
def transitions(tz: tzinfo, year: int) -> tuple[Transition, ...]:
    """Offset changes at instants ``T`` with ``year_start(year) < T <= year_start(year + 1)``.

    Years past :data:`_RULE_YEAR` + 400 are copied from the same year of the
    first 400-year cycle after it, shifted by whole cycles, when the zone's
    changes there repeat with the calendar.
    """
    if _RULE_YEAR + _CYCLE_YEARS <= year <= _LAST_YEAR and _follows_rule(tz):
        cycles = (year - _RULE_YEAR) // _CYCLE_YEARS
        shift = cycles * _CYCLE_SECONDS
        base = transitions(tz, year - cycles * _CYCLE_YEARS)
        return tuple((instant + shift, before, after) for instant, before, after in base)
    return _probe_year(tz, year)


@lru_cache(maxsize=1024)
def _follows_rule(tz: tzinfo) -> bool:
    """Whether the zone's changes repeat with the 400-year calendar cycle after 2200."""
    first = _probe_year(tz, _RULE_YEAR)
    later = _probe_year(tz, _RULE_YEAR + _CYCLE_YEARS)
    return later == tuple((t + _CYCLE_SECONDS, a, b) for t, a, b in first)


@lru_cache(maxsize=16_384)  # about 870 bytes a year; years past 2600 are shifted copies
def _probe_year(tz: tzinfo, year: int) -> tuple[Transition, ...]:
    """Offset changes in ``year`` (see :func:`transitions`), found by probing.

    Probes every :data:`PROBE_DAYS` days and bisects where the offset moved.
    That finds every change as long as no two changes are closer together than
    the probe step; the closest pair in the IANA database since 1900 is four
    days apart (Africa/Freetown, 1939), and since 1970 nearly seven.
    """
    if not _FIRST_YEAR <= year <= _LAST_YEAR:
        return ()
    found: list[Transition] = []
    lo = year_start(year)
    lo_offset = offset_at(tz, lo)
    end = year_start(year + 1)
    for hi in [*range(lo + PROBE_DAYS * DAY, end, PROBE_DAYS * DAY), end]:
        hi_offset = offset_at(tz, hi)
        if hi_offset != lo_offset:
            found.append((_bisect_change(tz, lo, hi, lo_offset), lo_offset, hi_offset))
        lo, lo_offset = hi, hi_offset
    return tuple(found)


def _bisect_change(tz: tzinfo, lo: int, hi: int, lo_offset: int) -> int:
    """First second in ``(lo, hi]`` whose offset differs from ``lo_offset``."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if offset_at(tz, mid) == lo_offset:
            lo = mid
        else:
            hi = mid
    return hi


class Segment(NamedTuple):
    """``[start, end)``: instants with one UTC ``offset``.

    ``prev_offset`` is the offset just before ``start``; it equals ``offset``
    when ``start`` is only the edge of the window that was searched.
    """

    start: int
    end: int
    offset: int
    prev_offset: int

    @property
    def opens_gap(self) -> bool:
        """Clocks jumped forward at ``start``: wall times were skipped."""
        return self.offset > self.prev_offset

    @property
    def opens_fold(self) -> bool:
        """Clocks jumped back at ``start``: wall times repeat."""
        return self.offset < self.prev_offset


@lru_cache(maxsize=4096)
def _window(tz: tzinfo, year: int) -> tuple[tuple[int, ...], tuple[Transition, ...]]:
    """The changes of ``year`` and the years either side, and their instants."""
    changes = transitions(tz, year - 1) + transitions(tz, year) + transitions(tz, year + 1)
    return tuple(change[0] for change in changes), changes


#: A segment that contains no instant: the starting point of every search cache.
EMPTY_SEGMENT = Segment(0, 0, 0, 0)


def segment_at(tz: tzinfo, instant: int) -> Segment:
    """The stretch of constant offset that contains ``instant``."""
    if instant >= _MAX_PROBE:  # beyond the probed years: the last offset, forever
        offset = offset_at(tz, _MAX_PROBE - 1)
        return Segment(_MAX_PROBE, _FOREVER, offset, offset)
    if instant < _MIN_PROBE:
        offset = offset_at(tz, _MIN_PROBE)
        return Segment(-_FOREVER, _MIN_PROBE, offset, offset)
    year = year_of(instant)
    instants, changes = _window(tz, year)
    index = bisect_right(instants, instant)
    end = changes[index][0] if index < len(changes) else min(year_start(year + 2), _MAX_PROBE)
    if index:
        start, before, after = changes[index - 1]
        return Segment(start, end, after, before)
    offset = offset_at(tz, instant)
    return Segment(max(year_start(year - 1), _MIN_PROBE), end, offset, offset)
