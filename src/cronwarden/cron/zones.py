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
from dataclasses import dataclass
from datetime import date, datetime, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronwarden.errors import CronError

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
DAY = 86_400
#: Distance between offset probes; see :func:`transitions`.
PROBE_DAYS = 2

# Probing stays inside the years every platform's datetime can represent.
_FIRST_YEAR, _LAST_YEAR = 2, 9997
_MIN_PROBE = (date(_FIRST_YEAR, 1, 1).toordinal() - EPOCH_ORDINAL) * DAY
_MAX_PROBE = (date(_LAST_YEAR + 1, 1, 1).toordinal() - EPOCH_ORDINAL) * DAY
_FOREVER = 2**62

_FIXED_KEYS = frozenset(
    {"UTC", "UCT", "GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich", "Universal", "Zulu"}
)


def resolve_zone(tz: str | tzinfo) -> tzinfo:
    """An IANA name or a ``tzinfo`` → ``tzinfo``; unknown names raise :class:`CronError`."""
    if isinstance(tz, tzinfo):
        return tz
    if not isinstance(tz, str):
        raise CronError(f"timezone: expected an IANA name or tzinfo, got {type(tz).__name__}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        raise CronError(f"timezone: {tz[:60]!r} is not a known IANA timezone") from None


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
    """Unix time of January 1st, 00:00 UTC, of ``year``."""
    return (date(year, 1, 1).toordinal() - EPOCH_ORDINAL) * DAY


def year_of(instant: int) -> int:
    clamped = min(max(instant, _MIN_PROBE), _MAX_PROBE - 1)
    return date.fromordinal(clamped // DAY + EPOCH_ORDINAL).year


def offset_at(tz: tzinfo, instant: int) -> int:
    """UTC offset in seconds in force at the Unix time ``instant``."""
    clamped = min(max(instant, _MIN_PROBE), _MAX_PROBE - 1)
    offset = datetime.fromtimestamp(clamped, tz).utcoffset()
    return 0 if offset is None else int(offset.total_seconds())


Transition = tuple[int, int, int]  # (instant, offset before, offset after)


@lru_cache(maxsize=4096)
def transitions(tz: tzinfo, year: int) -> tuple[Transition, ...]:
    """Offset changes at instants ``T`` with ``year_start(year) < T <= year_start(year + 1)``.

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


@dataclass(frozen=True, slots=True)
class Segment:
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
    changes = transitions(tz, year - 1) + transitions(tz, year) + transitions(tz, year + 1)
    index = bisect_right(changes, instant, key=lambda change: change[0])
    end = changes[index][0] if index < len(changes) else min(year_start(year + 2), _MAX_PROBE)
    if index:
        start, before, after = changes[index - 1]
        return Segment(start, end, after, before)
    offset = offset_at(tz, instant)
    return Segment(max(year_start(year - 1), _MIN_PROBE), end, offset, offset)
