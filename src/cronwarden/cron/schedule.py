"""`CronSchedule`: the next and previous fire of a compiled expression in a timezone.

The search runs field by field on bitmasks (never minute by minute) in *wall
seconds*, then maps wall time to instants through the zone's constant-offset
segments (:mod:`cronwarden.cron.zones`). Time is always an argument: nothing here
reads a clock.

DST follows Debian/Vixie cron (ARCHITECTURE §3):

* a *fixed-time* expression (minute and hour fields do not start with ``*``)
  whose wall time falls in a spring-forward gap fires once, at the first
  instant after the gap; in a repeated hour it fires once, at the first
  occurrence;
* every other expression follows elapsed time: nothing fires in the gap, and
  both copies of a repeated hour fire.

Within a segment opened by a gap, the gap's wall times map to the segment's
first instant (fixed-time only); within a segment opened by a fold, the
repeated wall times are skipped (fixed-time only). Everything else is
``instant = wall - offset``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, tzinfo
from math import ceil, floor

from cronwarden.cron.days import MONTH_DAYS, day_mask
from cronwarden.cron.fields import Fields
from cronwarden.cron.zones import (
    DAY,
    EMPTY_SEGMENT,
    EPOCH_ORDINAL,
    Segment,
    fixed_offset,
    offset_at,
    segment_at,
)
from cronwarden.errors import CronError

_MAX_YEAR = 9999
_WALL_EPOCH = datetime(1970, 1, 1)


def _low(bits: int) -> int:
    """Index of the lowest set bit."""
    return (bits & -bits).bit_length() - 1


def _month_length(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return MONTH_DAYS[month]


class CronSchedule:
    """A parsed cron expression bound to a timezone; immutable and thread-safe to share.

    Build it with :func:`cronwarden.cron.parse`. All methods take and return
    timezone-aware datetimes; results are in the schedule's timezone.

    Note: Python compares two datetimes that share a ``tzinfo`` by wall time,
    ignoring ``fold``; compare ``.timestamp()`` values around repeated hours.
    """

    __slots__ = (
        "_days",
        "_fixed",
        "_fire_day",
        "_fixed_time",
        "_hours",
        "_min_hi",
        "_min_lo",
        "_minutes",
        "_month_cache",
        "_months",
        "_sec_hi",
        "_sec_lo",
        "_seconds",
        "_segment",
        "expression",
        "hash_key",
        "tz",
    )

    def __init__(self, expression: str, fields: Fields, tz: tzinfo, hash_key: str | None) -> None:
        self.expression = expression
        self.tz = tz
        self.hash_key = hash_key
        self._seconds = fields.seconds
        self._minutes = fields.minutes
        self._hours = fields.hours
        self._months = fields.months
        self._days = fields.days
        self._fixed_time = fields.fixed_time
        self._sec_lo = _low(fields.seconds)
        self._sec_hi = fields.seconds.bit_length() - 1
        self._min_lo = _low(fields.minutes)
        self._min_hi = fields.minutes.bit_length() - 1
        self._fixed = fixed_offset(tz)
        # (year * 16 + month, day bitmask) of the month searched last
        self._month_cache = (0, 0)
        self._segment = EMPTY_SEGMENT
        # a day (days since 1970-01-01, wall time) known to have fires
        self._fire_day = -(10**9)

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r}, tz={self.tz!s})"

    # -- public API ---------------------------------------------------------------

    def next_after(self, dt: datetime) -> datetime | None:
        """The first fire strictly after ``dt``; ``None`` only past year 9999."""
        instant = self.next_instant(_timestamp(dt))
        return None if instant is None else self._datetime(instant)

    def prev_before(self, dt: datetime) -> datetime | None:
        """The last fire strictly before ``dt``; ``None`` only before year 1."""
        instant = self.prev_instant(_timestamp(dt))
        return None if instant is None else self._datetime(instant)

    def iter_after(self, dt: datetime) -> Iterator[datetime]:
        """Every fire strictly after ``dt``, in order."""
        instant = self.next_instant(_timestamp(dt))
        while instant is not None:
            yield self._datetime(instant)
            instant = self.next_instant(instant)

    def next_instant(self, after: float) -> int | None:
        """Unix time of the first fire strictly after the Unix time ``after``."""
        start = floor(after) + 1
        if self._fixed is not None:
            wall = self._next_wall(start + self._fixed)
            return None if wall is None else wall - self._fixed
        return self._next_zoned(start)

    def prev_instant(self, before: float) -> int | None:
        """Unix time of the last fire strictly before the Unix time ``before``."""
        end = ceil(before) - 1
        if self._fixed is not None:
            wall = self._prev_wall(end + self._fixed)
            return None if wall is None else wall - self._fixed
        return self._prev_zoned(end)

    def _datetime(self, instant: int) -> datetime:
        try:
            return datetime.fromtimestamp(instant, self.tz)
        except (OverflowError, ValueError, OSError):
            # a local time in year 1 or 9999 whose UTC instant lies outside them
            wall = instant + offset_at(self.tz, instant)
            return (_WALL_EPOCH + timedelta(seconds=wall)).replace(tzinfo=self.tz)

    # -- instants in a zone with offset changes -----------------------------------

    def _segment_at(self, instant: int) -> Segment:
        segment = self._segment
        if not segment.start <= instant < segment.end:
            segment = self._segment = segment_at(self.tz, instant)
        return segment

    def _next_zoned(self, start: int) -> int | None:
        """Smallest fire instant ``>= start``."""
        searched_from, wall = 0, -1  # `wall` is the first match at or after `searched_from`
        while True:
            seg = self._segment_at(start)
            wall_min = start + seg.offset
            if self._fixed_time:
                if seg.opens_fold:  # the repeated wall times already fired
                    wall_min = max(wall_min, seg.start + seg.prev_offset)
                elif seg.opens_gap and start == seg.start:  # skipped wall times fire now
                    wall_min = seg.start + seg.prev_offset
            if not searched_from <= wall_min <= wall:  # else the last search still answers
                found = self._next_wall(wall_min)
                if found is None:
                    return None
                searched_from, wall = wall_min, found
            instant = max(wall - seg.offset, seg.start)
            if instant < seg.end:
                return instant
            start = seg.end

    def _prev_zoned(self, end: int) -> int | None:
        """Largest fire instant ``<= end``."""
        while True:
            seg = self._segment_at(end)
            wall = self._prev_wall(end + seg.offset)
            if wall is None:
                return None
            lowest = seg.start + seg.offset
            if self._fixed_time and seg.prev_offset != seg.offset:
                lowest = seg.start + seg.prev_offset
            if wall >= lowest:
                return max(wall - seg.offset, seg.start)
            end = seg.start - 1

    # -- wall-time search, field by field -----------------------------------------

    def _day_bits(self, year: int, month: int) -> int:
        key = year * 16 + month
        cached_key, bits = self._month_cache
        if cached_key != key:
            first = (date(year, month, 1).weekday() + 1) % 7  # cron weekday: 0 = Sunday
            bits = day_mask(self._days, _month_length(year, month), first)
            self._month_cache = (key, bits)
        return bits

    def _next_wall(self, wall: int) -> int | None:
        """Smallest matching wall time ``>= wall``."""
        days, sod = divmod(wall, DAY)
        if days == self._fire_day:  # the day of the last answer: only the time can move
            found = self._next_time(sod)
            if found >= 0:
                return wall - sod + found
            days, sod = days + 1, 0
        return self._next_wall_from_day(days, sod)

    def _next_wall_from_day(self, days: int, sod: int) -> int | None:
        if not 0 < days + EPOCH_ORDINAL <= date.max.toordinal():
            return None
        day = date.fromordinal(days + EPOCH_ORDINAL)
        year, month, mday = day.year, day.month, day.day
        moved = False
        while True:
            if not self._months >> month & 1:
                later = self._months >> month
                if later:
                    month += _low(later)
                else:
                    year, month = year + 1, _low(self._months)
                    if year > _MAX_YEAR:
                        return None
                mday, sod, moved = 1, 0, True
            remaining = self._day_bits(year, month) >> mday
            if not remaining:
                month += 1
                if month > 12:
                    year, month = year + 1, 1
                    if year > _MAX_YEAR:
                        return None
                mday, sod, moved = 1, 0, True
                continue
            if not remaining & 1:
                mday += _low(remaining)
                sod, moved = 0, True
            found = self._next_time(sod)
            if found >= 0:
                if moved:
                    days = date(year, month, mday).toordinal() - EPOCH_ORDINAL
                self._fire_day = days
                return days * DAY + found
            mday, sod, moved = mday + 1, 0, True

    def _next_time(self, sod: int) -> int:
        """Smallest matching second of the day ``>= sod``, or -1."""
        hour, rest = divmod(sod, 3600)
        minute, second = divmod(rest, 60)
        hours = self._hours >> hour
        if not hours:
            return -1
        if hours & 1:
            minutes = self._minutes >> minute
            if minutes & 1:
                seconds = self._seconds >> second
                if seconds:
                    return sod + _low(seconds)
                minutes >>= 1
                minute += 1
            if minutes:
                return hour * 3600 + (minute + _low(minutes)) * 60 + self._sec_lo
            hours >>= 1
            hour += 1
            if not hours:
                return -1
        return (hour + _low(hours)) * 3600 + self._min_lo * 60 + self._sec_lo

    def _prev_wall(self, wall: int) -> int | None:
        """Largest matching wall time ``<= wall``."""
        days, sod = divmod(wall, DAY)
        if not 0 < days + EPOCH_ORDINAL <= date.max.toordinal():
            return None
        day = date.fromordinal(days + EPOCH_ORDINAL)
        year, month, mday = day.year, day.month, day.day
        moved = False
        end_of_day = DAY - 1
        while True:
            if not self._months >> month & 1:
                earlier = self._months & ((1 << month) - 1)
                if earlier:
                    month = earlier.bit_length() - 1
                else:
                    year, month = year - 1, self._months.bit_length() - 1
                    if year < 1:
                        return None
                mday, sod, moved = 31, end_of_day, True
            allowed = self._day_bits(year, month) & ((2 << mday) - 1)
            if not allowed:
                month -= 1
                if month < 1:
                    year, month = year - 1, 12
                    if year < 1:
                        return None
                mday, sod, moved = 31, end_of_day, True
                continue
            if not allowed >> mday & 1:
                mday = allowed.bit_length() - 1
                sod, moved = end_of_day, True
            found = self._prev_time(sod)
            if found >= 0:
                if moved:
                    days = date(year, month, mday).toordinal() - EPOCH_ORDINAL
                return days * DAY + found
            mday, sod, moved = mday - 1, end_of_day, True

    def _prev_time(self, sod: int) -> int:
        """Largest matching second of the day ``<= sod``, or -1."""
        hour, rest = divmod(sod, 3600)
        minute, second = divmod(rest, 60)
        hours = self._hours & ((2 << hour) - 1)
        if not hours:
            return -1
        if hours >> hour & 1:
            minutes = self._minutes & ((2 << minute) - 1)
            if minutes >> minute & 1:
                seconds = self._seconds & ((2 << second) - 1)
                if seconds:
                    return sod - second + seconds.bit_length() - 1
                minutes &= (1 << minute) - 1
            if minutes:
                return hour * 3600 + (minutes.bit_length() - 1) * 60 + self._sec_hi
            hours &= (1 << hour) - 1
            if not hours:
                return -1
        return (hours.bit_length() - 1) * 3600 + self._min_hi * 60 + self._sec_hi


def _timestamp(dt: datetime) -> float:
    if not isinstance(dt, datetime):
        raise CronError(f"datetime: expected an aware datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise CronError(
            f"datetime: {dt.isoformat()} is naive; pass an aware datetime "
            "(e.g. dt.replace(tzinfo=ZoneInfo('UTC')))"
        )
    return dt.timestamp()
