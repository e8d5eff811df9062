"""Properties of the cron engine against an independent brute-force model (ARCHITECTURE §3).

Expressions are generated as *structure*: every field is a list of items whose values
are computed here with ``range``, then rendered to text (numbers, zero padding, names in
any case, ``*``, ``?``, steps, ranges, lists, ``L``/``LW``/``nW``/``nL``/``n#k``, an
optional seconds field, macros) and handed to ``parse``. The model never parses text.

The brute force walks UTC minutes, turns each into wall time with ``zoneinfo`` and
applies the contract:

* day rule (Debian/Vixie): when both day fields are restricted a day matching either
  fires; when either starts with ``*`` or ``?`` both must match;
* DST: a *fixed-time* expression (minute and hour do not start with ``*``) whose wall
  time falls in a spring-forward gap fires once, at the first instant after the gap,
  and fires only at the first occurrence of a repeated wall time; every other
  expression fires at each instant whose wall time matches (nothing in the gap, both
  copies of the repeated hour).

Every zone below has whole-minute offsets and minute-aligned transitions from 1970 to
2100 (asserted while walking), so one UTC minute is one wall minute and wall seconds
are UTC seconds. Python compares datetimes sharing a tzinfo by wall time, ignoring
``fold``: everything here compares ``.timestamp()`` values.
"""

from __future__ import annotations

import calendar
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import cache
from itertools import islice, pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from cronwarden.cron import clear_cache, parse
from cronwarden.errors import CronError

ZONES = (
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "America/Sao_Paulo",
    "Africa/Casablanca",
    "Asia/Tehran",
    "Europe/Berlin",
    "Asia/Kathmandu",
    "Etc/GMT+5",
)
DAY = 86_400
FIRST = int(datetime(1970, 1, 1, tzinfo=UTC).timestamp())
LAST = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp())
LATEST = int(datetime(9999, 12, 30, tzinfo=UTC).timestamp())
#: How far the brute force walks from the queried instant.
HORIZON = 2 * DAY
WALL_EPOCH = datetime(1970, 1, 1)

MONTH_NAMES = {i: calendar.month_abbr[i].upper() for i in range(1, 13)}
DAY_NAMES = dict(enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")))

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# -- the model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DayOfMonth:
    text: str
    plain: frozenset[int]
    last: bool = False
    last_weekday: bool = False
    nearest: frozenset[int] = frozenset()

    def matches(self, day: date, length: int) -> bool:
        if day.day in self.plain:
            return True
        if self.last and day.day == length:
            return True
        if self.last_weekday and day.day == last_weekday(day.year, day.month):
            return True
        return any(nearest_weekday(day.year, day.month, n) == day.day for n in self.nearest)


@dataclass(frozen=True)
class DayOfWeek:
    text: str
    plain: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    last: frozenset[int] = frozenset()
    nth: frozenset[tuple[int, int]] = frozenset()

    def matches(self, day: date, length: int) -> bool:
        weekday = (day.weekday() + 1) % 7
        if weekday in self.plain:
            return True
        if weekday in self.last and day.day + 7 > length:
            return True
        return (weekday, (day.day - 1) // 7 + 1) in self.nth


@dataclass(frozen=True)
class Cron:
    text: str = field(repr=True)
    seconds: frozenset[int] = field(repr=False)
    minutes: frozenset[int] = field(repr=False)
    hours: frozenset[int] = field(repr=False)
    months: frozenset[int] = field(repr=False)
    dom: DayOfMonth = field(repr=False)
    dow: DayOfWeek = field(repr=False)
    fixed_time: bool = field(repr=False)
    day_and: bool = field(repr=False)


def last_weekday(year: int, month: int) -> int:
    day = calendar.monthrange(year, month)[1]
    while date(year, month, day).weekday() >= 5:
        day -= 1
    return day


def nearest_weekday(year: int, month: int, n: int) -> int | None:
    """Quartz ``nW``: the weekday nearest the ``n``th, never leaving the month."""
    length = calendar.monthrange(year, month)[1]
    if n > length:
        return None
    weekday = date(year, month, n).weekday()  # Monday = 0
    if weekday == 5:  # Saturday: the Friday before, or Monday the 3rd
        return n - 1 if n > 1 else n + 2
    if weekday == 6:  # Sunday: the Monday after, or the Friday before the month's end
        return n + 1 if n < length else n - 2
    return n


def day_fires(cron: Cron, day: date) -> bool:
    if day.month not in cron.months:
        return False
    length = calendar.monthrange(day.year, day.month)[1]
    dom = cron.dom.matches(day, length)
    dow = cron.dow.matches(day, length)
    return (dom and dow) if cron.day_and else (dom or dow)


def wall_fires(cron: Cron, wall: datetime) -> bool:
    """Whether the wall *minute* matches (seconds are checked by the caller)."""
    return wall.minute in cron.minutes and wall.hour in cron.hours and day_fires(cron, wall.date())


def ever_fires(cron: Cron) -> bool:
    """Any fire in 1970-1997: a 28-year span holds every (month, leap, weekday) pattern."""
    return any(
        day_fires(cron, date(year, month, day))
        for year in range(1970, 1998)
        for month in sorted(cron.months)
        for day in range(1, calendar.monthrange(year, month)[1] + 1)
    )


def offset_at(tz: tzinfo, instant: int) -> int:
    offset = datetime.fromtimestamp(instant, tz).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


def fires_in_minute(cron: Cron, tz: tzinfo, minute: int) -> list[int]:
    """Every fire instant in ``[minute, minute + 60)`` (``minute`` is a UTC minute start)."""
    local = datetime.fromtimestamp(minute, tz)
    offset = offset_at(tz, minute)
    assert offset % 60 == 0, "model precondition: whole-minute offsets"
    assert offset_at(tz, minute + 59) == offset, "model precondition: minute-aligned changes"
    fires: set[int] = set()
    if cron.fixed_time:
        before = offset_at(tz, minute - 1)
        skipped = range(minute + before, minute + offset, 60)  # wall times of a gap
        if any(wall_fires(cron, WALL_EPOCH + timedelta(seconds=wall)) for wall in skipped):
            fires.add(minute)  # the first instant after the gap
        if local.fold:  # a repeated wall time: fixed-time fired at the first occurrence
            return sorted(fires)
    if wall_fires(cron, local.replace(tzinfo=None)):
        fires.update(minute + second for second in cron.seconds)
    return sorted(fires)


def is_fire(cron: Cron, tz: tzinfo, instant: float) -> bool:
    whole = int(instant)
    return whole == instant and whole in fires_in_minute(cron, tz, whole - whole % 60)


def brute_next(cron: Cron, tz: tzinfo, after: float, horizon: int) -> int | None:
    """The first fire strictly after ``after``, walking at most ``horizon`` seconds."""
    minute = int(after) // 60 * 60
    while minute <= after + horizon:
        for fire in fires_in_minute(cron, tz, minute):
            if fire > after:
                return fire
        minute += 60
    return None


def brute_prev(cron: Cron, tz: tzinfo, before: float, horizon: int) -> int | None:
    """The last fire strictly before ``before``, walking back at most ``horizon`` seconds."""
    minute = int(before) // 60 * 60
    while minute >= before - horizon - 60:
        earlier = [fire for fire in fires_in_minute(cron, tz, minute) if fire < before]
        if earlier:
            return earlier[-1]
        minute -= 60
    return None


def brute_fires(cron: Cron, tz: tzinfo, start: int, end: int) -> list[int]:
    """Every fire in ``[start, end)``."""
    first = start - start % 60
    return [
        fire
        for minute in range(first, end, 60)
        for fire in fires_in_minute(cron, tz, minute)
        if start <= fire < end
    ]


def show(instant: float | None, tz: tzinfo) -> str:
    if instant is None:
        return "None"
    return f"{datetime.fromtimestamp(instant, tz).isoformat()} ({instant})"


# -- expressions as structure ------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    lo: int
    hi: int
    names: dict[int, str]
    star_weight: int  # out of 10: how often the whole field is `*`


SECOND = Kind(0, 59, {}, 4)
MINUTE = Kind(0, 59, {}, 3)
HOUR = Kind(0, 23, {}, 3)
DOM = Kind(1, 31, {}, 6)
MONTH = Kind(1, 12, MONTH_NAMES, 7)
DOW = Kind(0, 7, DAY_NAMES, 6)

Draw = Callable[[st.SearchStrategy[Any]], Any]


@dataclass(frozen=True)
class Plain:
    """A field of numbers: its text, its values, whether it starts with ``*`` or ``?``."""

    text: str
    values: frozenset[int]

    @property
    def star(self) -> bool:
        return self.text.startswith(("*", "?"))


def mixed_case(draw: Draw, word: str) -> str:
    mask = draw(st.integers(0, 2 ** len(word) - 1))
    return "".join(c.lower() if mask >> i & 1 else c for i, c in enumerate(word))


def spell(draw: Draw, value: int, kind: Kind) -> str:
    how = draw(st.integers(0, 2))
    if how == 1 and value < 10:
        return f"{value:02d}"
    if how == 2 and value in kind.names:
        return mixed_case(draw, kind.names[value])
    return str(value)


def spell_range_end(draw: Draw, start: int, end: int, kind: Kind) -> str:
    if kind is DOW and end == 7 and start > 0 and draw(st.booleans()):
        return mixed_case(draw, "SUN")  # `MON-SUN`: a named Sunday ending a range is 7
    if kind is DOW and end == 0:
        return "0"  # `SUN-SUN`, `0-SUN`: Sunday alone or 0-7? §3 does not say; left out
    return spell(draw, end, kind)


def step_text(draw: Draw, kind: Kind) -> tuple[str, int]:
    step = draw(st.integers(1, kind.hi - kind.lo + 2))
    return draw(st.sampled_from([str(step), f"0{step}"])), step


def numeric_item(draw: Draw, kind: Kind) -> tuple[str, Iterable[int]]:
    shape = draw(st.sampled_from(["a", "a-b", "a-b/s", "a/s", "*/s", "*"]))
    if shape == "*":
        return "*", range(kind.lo, kind.hi + 1)
    if shape == "*/s":
        text, step = step_text(draw, kind)
        return f"*/{text}", range(kind.lo, kind.hi + 1, step)
    start = draw(st.integers(kind.lo, kind.hi))
    if shape == "a":
        return spell(draw, start, kind), [start]
    if shape == "a/s":
        text, step = step_text(draw, kind)
        return f"{spell(draw, start, kind)}/{text}", range(start, kind.hi + 1, step)
    end = draw(st.integers(start, kind.hi))
    span = f"{spell(draw, start, kind)}-{spell_range_end(draw, start, end, kind)}"
    if shape == "a-b":
        return span, range(start, end + 1)
    text, step = step_text(draw, kind)
    return f"{span}/{text}", range(start, end + 1, step)


def numeric_field(draw: Draw, kind: Kind) -> Plain:
    if draw(st.integers(0, 9)) < kind.star_weight:
        return Plain("*", frozenset(range(kind.lo, kind.hi + 1)))
    items = [numeric_item(draw, kind) for _ in range(draw(st.integers(1, 3)))]
    values = frozenset(value for _, item in items for value in item)
    return Plain(",".join(text for text, _ in items), values)


def dom_field(draw: Draw) -> DayOfMonth:
    choice = draw(st.integers(0, 9))
    if choice < DOM.star_weight:
        return DayOfMonth(draw(st.sampled_from(["*", "*", "?"])), frozenset(range(1, 32)))
    texts: list[str] = []
    plain: set[int] = set()
    last = last_weekday_ = False
    nearest: set[int] = set()
    for _ in range(draw(st.integers(1, 3))):
        special = draw(st.integers(0, 5))
        if special == 0:
            texts.append(draw(st.sampled_from(["L", "l"])))
            last = True
        elif special == 1:
            texts.append(draw(st.sampled_from(["LW", "lw", "Lw"])))
            last_weekday_ = True
        elif special == 2:
            n = draw(st.integers(1, 31))
            texts.append(spell(draw, n, DOM) + draw(st.sampled_from(["W", "w"])))
            nearest.add(n)
        else:
            text, values = numeric_item(draw, DOM)
            texts.append(text)
            plain.update(values)
    return DayOfMonth(",".join(texts), frozenset(plain), last, last_weekday_, frozenset(nearest))


def dow_field(draw: Draw) -> DayOfWeek:
    if draw(st.integers(0, 9)) < DOW.star_weight:
        return DayOfWeek(draw(st.sampled_from(["*", "*", "?"])), frozenset(range(7)))
    texts: list[str] = []
    plain: set[int] = set()
    lasts: set[int] = set()
    nth: set[tuple[int, int]] = set()
    for _ in range(draw(st.integers(1, 3))):
        special = draw(st.integers(0, 4))
        weekday = draw(st.integers(0, 7))
        if special == 0:
            texts.append(spell(draw, weekday, DOW) + draw(st.sampled_from(["L", "l"])))
            lasts.add(weekday % 7)
        elif special == 1:
            k = draw(st.integers(1, 5))
            texts.append(f"{spell(draw, weekday, DOW)}#{k}")
            nth.add((weekday % 7, k))
        else:
            text, values = numeric_item(draw, DOW)
            texts.append(text)
            plain.update(value % 7 for value in values)
    return DayOfWeek(",".join(texts), frozenset(plain), frozenset(lasts), frozenset(nth))


EVERY_DAY = DayOfMonth("*", frozenset(range(1, 32)))
EVERY_WEEKDAY = DayOfWeek("*", frozenset(range(7)))


def simple(
    text: str,
    *,
    fixed_time: bool | None = None,
    seconds: Iterable[int] = (0,),
    minutes: Iterable[int] = range(60),
    hours: Iterable[int] = range(24),
    months: Iterable[int] = range(1, 13),
    dom: DayOfMonth = EVERY_DAY,
    dow: DayOfWeek = EVERY_WEEKDAY,
) -> Cron:
    """A hand-written model; the text is only read to decide which fields start with ``*``."""
    if fixed_time is None:
        minute, hour = text.split()[-5:-3]
        fixed_time = not minute.startswith("*") and not hour.startswith("*")
    return Cron(
        text,
        frozenset(seconds),
        frozenset(minutes),
        frozenset(hours),
        frozenset(months),
        dom,
        dow,
        fixed_time=fixed_time,
        day_and=dom.text.startswith(("*", "?")) or dow.text.startswith(("*", "?")),
    )


FIRST_DAY = DayOfMonth("1", frozenset({1}))
MACROS = (
    simple("@yearly", fixed_time=True, minutes=[0], hours=[0], months=[1], dom=FIRST_DAY),
    simple("@annually", fixed_time=True, minutes=[0], hours=[0], months=[1], dom=FIRST_DAY),
    simple("@monthly", fixed_time=True, minutes=[0], hours=[0], dom=FIRST_DAY),
    simple("@weekly", fixed_time=True, minutes=[0], hours=[0], dow=DayOfWeek("0", frozenset({0}))),
    simple("@daily", fixed_time=True, minutes=[0], hours=[0]),
    simple("@midnight", fixed_time=True, minutes=[0], hours=[0]),
    simple("@hourly", fixed_time=False, minutes=[0]),
)


@st.composite
def crons(draw: Draw) -> Cron:
    if draw(st.integers(0, 19)) == 0:
        macro: Cron = draw(st.sampled_from(MACROS))
        pad = draw(st.sampled_from(["", " ", "\t"]))
        return replace(macro, text=pad + mixed_case(draw, macro.text) + pad)
    seconds = numeric_field(draw, SECOND) if draw(st.integers(0, 3)) == 0 else None
    minute = numeric_field(draw, MINUTE)
    hour = numeric_field(draw, HOUR)
    dom = dom_field(draw)
    month = numeric_field(draw, MONTH)
    dow = dow_field(draw)
    texts = [seconds.text] if seconds else []
    texts += [minute.text, hour.text, dom.text, month.text, dow.text]
    text = texts[0]
    for part in texts[1:]:
        text += draw(st.sampled_from([" ", " ", "  ", "\t"])) + part
    return Cron(
        text,
        seconds.values if seconds else frozenset({0}),
        minute.values,
        hour.values,
        month.values,
        dom,
        dow,
        fixed_time=not minute.star and not hour.star,
        day_and=dom.text.startswith(("*", "?")) or dow.text.startswith(("*", "?")),
    )


@st.composite
def rare_crons(draw: Draw) -> Cron:
    """Days 29-31 in short months: some never fire, some fire once in years."""
    days = draw(st.lists(st.integers(28, 31), min_size=1, max_size=2, unique=True))
    nearest = draw(st.booleans())
    dom_text = ",".join(f"{d}W" if nearest else str(d) for d in days)
    months = draw(st.lists(st.sampled_from([2, 4, 6, 9, 11]), min_size=1, max_size=2))
    dow = draw(st.sampled_from([EVERY_WEEKDAY, DayOfWeek("?", frozenset(range(7))), None]))
    if dow is None:
        weekday = draw(st.integers(0, 6))
        dow = DayOfWeek(DAY_NAMES[weekday], frozenset({weekday}))
    dom = DayOfMonth(
        dom_text,
        frozenset() if nearest else frozenset(days),
        nearest=frozenset(days) if nearest else frozenset(),
    )
    return simple(
        f"0 0 {dom_text} {','.join(map(str, months))} {dow.text}",
        minutes=[0],
        hours=[0],
        months=months,
        dom=dom,
        dow=dow,
    )


@st.composite
def dst_crons(draw: Draw) -> Cron:
    """Expressions firing in the small hours, where DST transitions happen; days all ``*``."""
    seconds = numeric_field(draw, SECOND) if draw(st.integers(0, 3)) == 0 else None
    minute = numeric_field(draw, MINUTE)
    hour = numeric_field(draw, HOUR)
    if draw(st.integers(0, 3)) > 0:
        start = draw(st.sampled_from([0, 1, 2, 3, 22, 23]))
        end = draw(st.integers(start, min(start + 2, 23)))
        text = f"{start}-{end}" if end > start else str(start)
        hour = Plain(text, frozenset(range(start, end + 1)))
    texts = [seconds.text] if seconds else []
    texts += [minute.text, hour.text, "*", "*", "*"]
    return simple(
        " ".join(texts),
        seconds=seconds.values if seconds else (0,),
        minutes=minute.values,
        hours=hour.values,
    )


@cache
def transitions(zone: str, year: int) -> tuple[int, ...]:
    """UTC-offset changes of ``zone`` in ``year`` (daily probes; changes are >= 7 days apart)."""
    tz = ZoneInfo(zone)
    start = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
    # the next New Year, or earlier in 9999 so that no local time reaches year 10000
    end = min(int(datetime(year, 12, 31, tzinfo=UTC).timestamp()) + DAY, LATEST)
    found = []
    previous = offset_at(tz, start)
    for probe in [*range(start + DAY, end, DAY), end - 1]:
        offset = offset_at(tz, probe)
        if offset != previous:
            lo, hi = probe - DAY, probe
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset_at(tz, mid) == previous else (lo, mid)
            found.append(hi)
        previous = offset
    return tuple(found)


@st.composite
def moments(
    draw: Draw, zone: str, *, near: bool = False, years: tuple[int, int] = (1970, 2099)
) -> datetime:
    """An aware datetime in ``years``, often (``near``: always) close to a transition."""
    fraction = draw(st.sampled_from([0.0, 0.0, 0.5, 0.999999]))
    first = int(datetime(years[0], 1, 1, tzinfo=UTC).timestamp())
    last = int(datetime(years[1], 12, 31, tzinfo=UTC).timestamp())
    instant = draw(st.integers(first + 3 * DAY, last - 3 * DAY))
    if near or draw(st.integers(0, 2)) > 0:
        changes = transitions(zone, draw(st.integers(*years)))
        if changes:
            spread = draw(st.sampled_from([3600, 3 * 3600, 2 * DAY]))
            instant = draw(st.sampled_from(changes)) + draw(st.integers(-spread, spread))
    view = draw(
        st.sampled_from(
            [UTC, ZoneInfo(zone), ZoneInfo("Pacific/Chatham"), timezone(timedelta(hours=-3.5))]
        )
    )
    return datetime.fromtimestamp(instant + fraction, view)


DST_ZONES = tuple(zone for zone in ZONES if transitions(zone, 2018))


@st.composite
def cases(draw: Draw) -> tuple[Any, ...]:
    cron = draw(crons())
    zone = draw(st.sampled_from(ZONES))
    return cron, zone, draw(moments(zone))


@st.composite
def far_cases(draw: Draw) -> tuple[Any, ...]:
    cron = draw(st.one_of(crons(), dst_crons()))
    zone = draw(st.sampled_from(ZONES))
    return cron, zone, draw(moments(zone, years=(2100, 9999)))


@st.composite
def dst_cases(draw: Draw) -> tuple[Any, ...]:
    zone = draw(st.sampled_from(DST_ZONES))
    return draw(dst_crons()), zone, draw(moments(zone, near=True))


def schedule_for(cron: Cron, zone: str) -> Any:
    try:
        return parse(cron.text, zone)
    except CronError:
        assert not ever_fires(cron), f"{cron.text!r} fires, yet parse rejected it"
        reject()


def assert_in_zone(found: datetime, tz: tzinfo) -> None:
    """``found`` is the canonical aware datetime in the schedule's zone (fold included)."""
    local = datetime.fromtimestamp(found.timestamp(), tz)
    assert found.tzinfo == tz
    assert (found.replace(tzinfo=None), found.fold) == (local.replace(tzinfo=None), local.fold)


# -- properties --------------------------------------------------------------------------


@SETTINGS
@given(case=cases())
def test_it_finds_the_first_fire_strictly_after_any_instant(case: tuple[Any, ...]) -> None:
    cron, zone, moment = case
    tz = ZoneInfo(zone)
    after = moment.timestamp()
    found = schedule_for(cron, zone).next_after(moment)
    assert found is not None
    got = found.timestamp()
    assert got > after
    assert_in_zone(found, tz)
    assert is_fire(cron, tz, got), f"{show(got, tz)} is not a fire"
    expected = brute_next(cron, tz, after, HORIZON)
    if expected is None:
        assert got > after + HORIZON, f"{show(got, tz)} but nothing fires in the brute window"
    else:
        assert got == expected, f"engine {show(got, tz)}, brute force {show(expected, tz)}"


@SETTINGS
@given(case=cases())
def test_it_finds_the_last_fire_strictly_before_any_instant(case: tuple[Any, ...]) -> None:
    cron, zone, moment = case
    tz = ZoneInfo(zone)
    before = moment.timestamp()
    found = schedule_for(cron, zone).prev_before(moment)
    assert found is not None
    got = found.timestamp()
    assert got < before
    assert_in_zone(found, tz)
    assert is_fire(cron, tz, got), f"{show(got, tz)} is not a fire"
    expected = brute_prev(cron, tz, before, HORIZON)
    if expected is None:
        assert got < before - HORIZON, f"{show(got, tz)} but nothing fires in the brute window"
    else:
        assert got == expected, f"engine {show(got, tz)}, brute force {show(expected, tz)}"


@SETTINGS
@given(case=dst_cases())
def test_it_follows_the_dst_rules_next_to_transitions(case: tuple[Any, ...]) -> None:
    cron, zone, moment = case
    tz = ZoneInfo(zone)
    schedule = schedule_for(cron, zone)
    for query, brute, sign in (
        (schedule.next_after, brute_next, 1),
        (schedule.prev_before, brute_prev, -1),
    ):
        found = query(moment)
        assert found is not None
        got = found.timestamp()
        assert (got - moment.timestamp()) * sign > 0
        assert_in_zone(found, tz)
        expected = brute(cron, tz, moment.timestamp(), HORIZON)
        assert expected is not None, "every expression here fires daily"
        assert got == expected, f"engine {show(got, tz)}, brute force {show(expected, tz)}"


@SETTINGS
@given(case=far_cases())
def test_it_finds_fires_as_the_brute_force_does_up_to_year_9999(case: tuple[Any, ...]) -> None:
    cron, zone, moment = case
    tz = ZoneInfo(zone)
    schedule = schedule_for(cron, zone)
    for query, brute, sign in (
        (schedule.next_after, brute_next, 1),
        (schedule.prev_before, brute_prev, -1),
    ):
        found = query(moment)
        expected = brute(cron, tz, moment.timestamp(), HORIZON)
        if found is None:  # only when no fire is left before the end of year 9999
            assert sign == 1 and moment.year == 9999 and expected is None
            continue
        got = found.timestamp()
        assert (got - moment.timestamp()) * sign > 0
        assert_in_zone(found, tz)
        assert is_fire(cron, tz, got), f"{show(got, tz)} is not a fire"
        if expected is None:
            assert (got - moment.timestamp()) * sign > HORIZON, f"engine {show(got, tz)}"
        else:
            assert got == expected, f"engine {show(got, tz)}, brute force {show(expected, tz)}"


@SETTINGS
@given(case=cases())
def test_it_iterates_fires_in_strictly_increasing_order(case: tuple[Any, ...]) -> None:
    cron, zone, moment = case
    tz = ZoneInfo(zone)
    schedule = schedule_for(cron, zone)
    fires = list(islice(schedule.iter_after(moment), 20))
    assert len(fires) == 20
    stamps = [fire.timestamp() for fire in fires]
    assert all(a < b for a, b in pairwise([moment.timestamp(), *stamps]))
    for fire in fires:
        assert_in_zone(fire, tz)
        assert is_fire(cron, tz, fire.timestamp()), f"{fire.isoformat()} is not a fire"
    for fire, following in pairwise(fires):
        step = schedule.next_after(fire)  # a datetime in a repeated hour keeps its fold
        assert step is not None and step.timestamp() == following.timestamp()


@SETTINGS
@given(case=cases())
def test_it_round_trips_between_next_and_prev(case: tuple[Any, ...]) -> None:
    cron, zone, moment = case
    schedule = schedule_for(cron, zone)
    t = moment.timestamp()
    after = schedule.next_after(moment)
    before = schedule.prev_before(moment)
    assert after is not None and before is not None
    back = schedule.prev_before(after)
    forth = schedule.next_after(before)
    assert back is not None and forth is not None
    # no fire lies strictly between `before` and `after` other than `t` itself
    assert back.timestamp() in (before.timestamp(), t)
    assert forth.timestamp() in (after.timestamp(), t)


@SETTINGS
@given(case=cases(), warm=st.integers(FIRST, LAST))
def test_it_answers_the_same_whatever_was_asked_before(case: tuple[Any, ...], warm: int) -> None:
    cron, zone, moment = case
    schedule = schedule_for(cron, zone)
    warm_at = datetime.fromtimestamp(warm, UTC)
    schedule.next_after(warm_at)
    schedule.prev_before(warm_at)
    warmed = (schedule.next_after(moment), schedule.prev_before(moment))
    clear_cache()
    fresh = parse(cron.text, zone)
    cold = (fresh.next_after(moment), fresh.prev_before(moment))
    assert [d and d.timestamp() for d in warmed] == [d and d.timestamp() for d in cold]


@SETTINGS
@given(cron=st.one_of(crons(), rare_crons()))
def test_it_rejects_exactly_the_expressions_that_never_fire(cron: Cron) -> None:
    try:
        parse(cron.text)
    except CronError as error:
        assert not ever_fires(cron), f"{cron.text!r} fires, yet parse rejected it: {error}"
    else:
        assert ever_fires(cron), f"{cron.text!r} never fires, yet parse accepted it"


# -- Jenkins H ---------------------------------------------------------------------------

#: field → (6-field template, hash bounds, natural bounds, cycle start, cycle length)
H_FIELDS: dict[str, tuple[str, tuple[int, int], tuple[int, int], datetime, int]] = {
    "second": ("H * * * * *", (0, 59), (0, 59), datetime(2026, 1, 4, tzinfo=UTC), 60),
    "minute": ("0 H * * * *", (0, 59), (0, 59), datetime(2026, 1, 4, tzinfo=UTC), 3600),
    "hour": ("0 0 H * * *", (0, 23), (0, 23), datetime(2026, 1, 4, tzinfo=UTC), DAY),
    # Jenkins hashes days over 1-28, so that every month has the day; January has all 31
    "day-of-month": ("0 0 0 H 1 *", (1, 28), (1, 31), datetime(2026, 1, 1, tzinfo=UTC), 31 * DAY),
    "month": ("0 0 0 1 H *", (1, 12), (1, 12), datetime(2026, 1, 1, tzinfo=UTC), 365 * DAY),
    "day-of-week": ("0 0 0 * * H", (0, 6), (0, 7), datetime(2026, 1, 4, tzinfo=UTC), 7 * DAY),
}


def h_value(name: str, fire: datetime) -> int:
    return {
        "second": fire.second,
        "minute": fire.minute,
        "hour": fire.hour,
        "day-of-month": fire.day,
        "month": fire.month,
        "day-of-week": (fire.weekday() + 1) % 7,
    }[name]


@st.composite
def hashed(draw: Draw) -> tuple[str, str, range, int | None, str]:
    """(expression, field, range H picks from, step, key): one H field, the rest fixed."""
    name = draw(st.sampled_from(sorted(H_FIELDS)))
    template, (hash_lo, hash_hi), (lo, hi), _, _ = H_FIELDS[name]
    h = draw(st.sampled_from(["H", "h"]))
    if draw(st.booleans()):
        start = draw(st.integers(lo, hi))
        end = draw(st.integers(start, hi))
        h, hash_lo, hash_hi = f"{h}({start}-{end})", start, end
    step = draw(st.one_of(st.none(), st.integers(1, hash_hi - hash_lo + 2)))
    if step is not None:
        h += f"/{step}"
    key = draw(st.text(max_size=20))
    return template.replace("H", h), name, range(hash_lo, hash_hi + 1), step, key


def allowed_patterns(name: str, span: range, step: int | None) -> list[set[int]]:
    """Jenkins: ``H`` is one value of the span; ``H/s`` starts within the first step."""
    fold = 7 if name == "day-of-week" else 10**6  # day-of-week 7 is Sunday
    if step is None:
        return [{value % fold} for value in span]
    firsts = range(span.start, span.start + min(step, len(span)))
    return [{value % fold for value in range(first, span.stop, step)} for first in firsts]


@SETTINGS
@given(case=hashed())
def test_it_hashes_H_stably_within_its_range(case: tuple[str, str, range, int | None, str]) -> None:
    expr, name, span, step, key = case
    _, _, _, start, cycle = H_FIELDS[name]
    seen = set()
    for fire in parse(expr, hash_key=key).iter_after(start - timedelta(seconds=1)):
        if fire.timestamp() >= start.timestamp() + cycle:
            break
        seen.add(h_value(name, fire))
    assert seen in allowed_patterns(name, span, step), (expr, key, sorted(seen))
    first = parse(expr, hash_key=key).next_after(start)
    clear_cache()
    again = parse(expr, hash_key=key).next_after(start)
    assert first is not None and again is not None
    assert first.timestamp() == again.timestamp()


def test_it_spreads_H_over_a_fleet_of_task_ids() -> None:
    minutes = {
        parse("H * * * *", hash_key=f"task-{i}").next_after(datetime(2026, 1, 1, tzinfo=UTC)).minute
        for i in range(100)
    }
    assert len(minutes) >= 20


def test_it_hashes_the_same_in_a_fresh_process() -> None:
    code = (
        "from datetime import datetime, UTC\n"
        "from cronwarden.cron import parse\n"
        "s = parse('H H H(1-28) * H', hash_key='billing-nightly')\n"
        "print(s.next_after(datetime(2026, 1, 1, tzinfo=UTC)).isoformat())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    here = parse("H H H(1-28) * H", hash_key="billing-nightly")
    assert out == here.next_after(datetime(2026, 1, 1, tzinfo=UTC)).isoformat()


# -- DST transitions, exhaustively around each ---------------------------------------------

DST_EXPRESSIONS = (
    simple("30 2 * * *", minutes=[30], hours=[2]),
    simple("0 2 * * *", minutes=[0], hours=[2]),
    simple("0,30 1-3 * * *", minutes=[0, 30], hours=[1, 2, 3]),
    simple("45 1 * * *", minutes=[45], hours=[1]),
    simple("15 3 * * *", minutes=[15], hours=[3]),
    simple("0 0 * * *", minutes=[0], hours=[0]),
    simple("30 23 * * *", minutes=[30], hours=[23]),
    simple("*/15 * * * *", minutes=range(0, 60, 15)),
    simple("*/20 0-3 * * *", minutes=range(0, 60, 20), hours=range(4)),
    simple("0 * * * *", minutes=[0]),
    simple("7 */2 * * *", minutes=[7], hours=range(0, 24, 2)),
    simple("30 30 2 * * *", seconds=[30], minutes=[30], hours=[2]),
    simple("*/20 * 2 * * *", seconds=range(0, 60, 20), hours=[2]),
    simple("10 30 1 * * *", seconds=[10], minutes=[30], hours=[1]),
)
DST_TRANSITIONS = [
    (zone, change)
    for zone, year in (
        ("America/New_York", 2026),
        ("Europe/London", 2026),
        ("Europe/Berlin", 2026),
        ("Australia/Lord_Howe", 2026),
        ("Pacific/Chatham", 2026),
        ("Africa/Casablanca", 2026),
        ("America/Sao_Paulo", 2018),  # gap at midnight
        ("America/Sao_Paulo", 2019),  # repeated 23:00 hour
        ("Asia/Tehran", 2021),  # both at midnight
    )
    for change in transitions(zone, year)
]


@pytest.mark.parametrize(
    ("zone", "change"),
    DST_TRANSITIONS,
    ids=[f"{z}-{datetime.fromtimestamp(c, UTC):%Y-%m-%d}" for z, c in DST_TRANSITIONS],
)
@pytest.mark.parametrize("cron", DST_EXPRESSIONS, ids=[c.text for c in DST_EXPRESSIONS])
def test_it_fires_around_each_transition_as_the_brute_force_does(
    zone: str, change: int, cron: Cron
) -> None:
    tz = ZoneInfo(zone)
    start, end = change - 6 * 3600, change + 6 * 3600
    expected = brute_fires(cron, tz, start, end)
    got = []
    for fire in parse(cron.text, zone).iter_after(datetime.fromtimestamp(start - 1, UTC)):
        if fire.timestamp() >= end:
            break
        got.append(int(fire.timestamp()))
    assert [show(i, tz) for i in got] == [show(i, tz) for i in expected]
    for instant in expected:  # and backwards
        found = parse(cron.text, zone).prev_before(datetime.fromtimestamp(instant + 1, UTC))
        assert found is not None and found.timestamp() == instant


ODD_TRANSITIONS = [
    # Pacific/Apia skipped 2011-12-30 entirely (-10:00 -> +14:00): a fixed time on that
    # day fires once, at the first instant after the gap; elapsed-time expressions skip it.
    ("apia-fixed-noon", "0 12 * * *", "Pacific/Apia", "2011-12-29T12:00:00-10:00",
     ["2011-12-31T00:00:00+14:00", "2011-12-31T12:00:00+14:00"]),
    ("apia-three-fixed-times-fire-once", "0 9,12,15 * * *", "Pacific/Apia",
     "2011-12-29T12:00:00-10:00",
     ["2011-12-29T15:00:00-10:00", "2011-12-31T00:00:00+14:00", "2011-12-31T09:00:00+14:00"]),
    ("apia-elapsed-time-skips-the-day", "*/30 12 * * *", "Pacific/Apia",
     "2011-12-29T12:00:00-10:00",
     ["2011-12-29T12:30:00-10:00", "2011-12-31T12:00:00+14:00"]),
    ("apia-the-skipped-date", "0 0 30 12 *", "Pacific/Apia", "2011-12-29T12:00:00-10:00",
     ["2011-12-31T00:00:00+14:00", "2012-12-30T00:00:00+14:00"]),
    # Africa/Monrovia moved from -00:44:30 to +00:00 at 1972-01-07 00:44:30 UTC: the gap
    # ends on an odd second, and a fixed time in it fires exactly then.
    ("monrovia-fixed-midnight", "0 0 * * *", "Africa/Monrovia", "1972-01-06T12:00:00+00:00",
     ["1972-01-07T00:44:30+00:00", "1972-01-08T00:00:00+00:00"]),
    ("monrovia-six-field-fixed", "15 30 0 * * *", "Africa/Monrovia",
     "1972-01-06T12:00:00+00:00", ["1972-01-07T00:44:30+00:00", "1972-01-08T00:30:15+00:00"]),
    ("monrovia-elapsed-time", "*/10 0 * * *", "Africa/Monrovia", "1972-01-07T00:40:00+00:00",
     ["1972-01-07T00:50:00+00:00", "1972-01-08T00:00:00+00:00"]),
    ("monrovia-before-the-change", "*/20 * * * *", "Africa/Monrovia",
     "1972-01-07T00:20:00+00:00",
     ["1972-01-06T23:40:00-00:44:30", "1972-01-07T01:00:00+00:00"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("expr", "zone", "start", "expected"),
    [case[1:] for case in ODD_TRANSITIONS],
    ids=[case[0] for case in ODD_TRANSITIONS],
)
def test_it_handles_a_skipped_day_and_a_gap_ending_on_an_odd_second(
    expr: str, zone: str, start: str, expected: list[str]
) -> None:
    schedule = parse(expr, zone)
    fires = list(islice(schedule.iter_after(datetime.fromisoformat(start)), len(expected)))
    assert [fire.isoformat() for fire in fires] == expected
    for fire in fires:
        back = schedule.prev_before(fire + timedelta(seconds=1))
        assert back is not None and back.timestamp() == fire.timestamp()


# -- the last years datetime can hold ----------------------------------------------------


@pytest.mark.parametrize("year", [9997, 9998, 9999], ids=lambda y: f"year-{y}")
@pytest.mark.parametrize(
    "zone", ["America/New_York", "Europe/London", "Australia/Lord_Howe"], ids=str
)
def test_it_keeps_wall_time_in_the_last_years(zone: str, year: int) -> None:
    found = parse("0 12 * * *", zone).next_after(datetime(year, 7, 1, tzinfo=UTC))
    assert found is not None
    local = datetime.fromtimestamp(found.timestamp(), ZoneInfo(zone))
    assert (local.hour, local.minute) == (12, 0), f"{found.isoformat()} is not 12:00 {zone}"
