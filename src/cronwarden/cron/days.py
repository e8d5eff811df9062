"""Which days of a month an expression fires on.

The day-of-month and day-of-week fields are compiled into a :class:`DaySpec`;
:func:`day_mask` turns it into a bitmask of matching days (bit ``d`` set means
day ``d`` fires) for a month described only by its length and the weekday of
its first day. That pair is all that matters, so the same function answers
both "which days fire in March 2027" and, at parse time, "does this expression
ever fire at all" (:func:`ever_fires`).

Weekdays use cron's numbering: 0 = Sunday ... 6 = Saturday.

Day rule (Debian/Vixie cron, ``cron.c``: ``(dom && dow) || (dom_star || dow_star)
? (dom && dow) : (dom || dow)``): when both fields are restricted a day that
matches either fires; when either field starts with ``*`` both must match.
"""

from __future__ import annotations

from typing import NamedTuple

#: ``rot * _WEEKS`` repeats a 7-bit weekday pattern over five weeks (35 bits).
_WEEKS = sum(1 << (7 * week) for week in range(5))

#: Month lengths outside leap years, indexed by month number.
MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

ALL_DAYS = ((1 << 32) - 1) & ~1  # bits 1..31
ALL_WEEKDAYS = 0x7F
_FIRST_28 = ((1 << 29) - 1) & ~1  # bits 1..28: days every month has


class DaySpec(NamedTuple):
    """The compiled day-of-month and day-of-week fields.

    ``dom`` and ``dow`` are bitmasks of plain values; the other fields hold the
    special forms: ``L``, ``LW``, ``15W`` in day-of-month and ``5L``, ``5#3`` in
    day-of-week.
    """

    dom: int
    dow: int
    dom_last: bool = False
    dom_last_weekday: bool = False
    dom_nearest: int = 0  # bitmask of n for every ``nW``
    dow_last: int = 0  # bitmask of weekdays for every ``wL``
    dow_nth: tuple[tuple[int, int], ...] = ()  # (weekday, n) for every ``w#n``
    and_rule: bool = True

    @property
    def dom_restricted(self) -> bool:
        return (
            self.dom != ALL_DAYS or self.dom_last or self.dom_last_weekday or bool(self.dom_nearest)
        )

    @property
    def dow_everyday(self) -> bool:
        return self.dow == ALL_WEEKDAYS and not self.dow_last and not self.dow_nth


def _nearest_weekday(day: int, length: int, first: int) -> int:
    """Quartz ``W``: the weekday nearest to ``day``, never leaving the month."""
    weekday = (first + day - 1) % 7
    if weekday == 6:  # Saturday: Friday before, or Monday after the 1st
        return day + 2 if day == 1 else day - 1
    if weekday == 0:  # Sunday: Monday after, or Friday before the last day
        return day - 2 if day == length else day + 1
    return day


def _dom_mask(spec: DaySpec, length: int, first: int) -> int:
    bits = spec.dom & ((2 << length) - 1)
    if spec.dom_last:
        bits |= 1 << length
    if spec.dom_last_weekday:
        last_weekday = (first + length - 1) % 7
        back = 1 if last_weekday == 6 else 2 if last_weekday == 0 else 0
        bits |= 1 << (length - back)
    nearest = spec.dom_nearest & ((2 << length) - 1)
    while nearest:
        low = nearest & -nearest
        bits |= 1 << _nearest_weekday(low.bit_length() - 1, length, first)
        nearest ^= low
    return bits


def _dow_mask(spec: DaySpec, length: int, first: int) -> int:
    month = (2 << length) - 2
    dow = spec.dow
    # bit k of `rot` says whether day k+1 (weekday first+k) matches
    rot = ((dow >> first) | (dow << (7 - first))) & 0x7F
    bits = ((rot * _WEEKS) << 1) & month
    last_weekday = (first + length - 1) % 7
    lasts = spec.dow_last
    while lasts:
        low = lasts & -lasts
        bits |= 1 << (length - (last_weekday - (low.bit_length() - 1)) % 7)
        lasts ^= low
    for weekday, nth in spec.dow_nth:
        day = 1 + (weekday - first) % 7 + 7 * (nth - 1)
        if day <= length:
            bits |= 1 << day
    return bits


def day_mask(spec: DaySpec, length: int, first: int) -> int:
    """Bitmask of the days that fire in a month of ``length`` days whose 1st is ``first``."""
    if spec.and_rule:
        dom = _dom_mask(spec, length, first) if spec.dom_restricted else (2 << length) - 2
        if spec.dow_everyday:
            return dom
        return dom & _dow_mask(spec, length, first)
    return _dom_mask(spec, length, first) | _dow_mask(spec, length, first)


def month_lengths(month: int) -> tuple[int, ...]:
    return (28, 29) if month == 2 else (MONTH_DAYS[month],)


def ever_fires(spec: DaySpec, months: int) -> bool:
    """Whether any day of any allowed month ever matches.

    Every (month length, weekday of the 1st) pair occurs in the Gregorian
    calendar for every month (February has both 28 and 29 days), so checking
    those pairs is exact.
    """
    if not spec.and_rule or not spec.dom_restricted:
        # A restricted day-of-week alone always finds a day: even ``w#5`` has a
        # month of 29 or more days whose 1st is ``w``.
        return True
    if spec.dow_everyday:
        if spec.dom_last or spec.dom_last_weekday or (spec.dom | spec.dom_nearest) & _FIRST_28:
            return True  # every month has these days
        month_numbers = [m for m in range(1, 13) if months >> m & 1]
        longest = max(max(month_lengths(m)) for m in month_numbers)
        return bool((spec.dom | spec.dom_nearest) & ((2 << longest) - 1))
    month_numbers = [m for m in range(1, 13) if months >> m & 1]
    return any(
        day_mask(spec, length, first)
        for month in month_numbers
        for length in month_lengths(month)
        for first in range(7)
    )
