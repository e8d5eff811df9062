"""Differential tests: the engine against cronsim and croniter where the contract agrees.

ARCHITECTURE §3 follows Debian/Vixie cron, and so does cronsim for the syntax both
share (5 or 6 fields, names, steps, ``L``, ``LW``, ``nL``, ``n#k``): random expressions
of that subset must give the same 10 successive fires (as timestamps) in UTC, and, for
5-field expressions, in America/New_York and Europe/London, where cronsim applies the
same DST rule (a fixed-time expression fires once at the first instant after a gap
and once at the first occurrence of a repeated hour). croniter only agrees on plain
syntax in UTC, with day fields either exactly ``*`` or not starting with ``*``, and no
day-of-week ``a/s`` steps.

Where a peer departs from the contract the case is pinned in ``KNOWN_DISAGREEMENTS``:
each row asserts what *our* contract says; the comment records what the peer does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from cronsim import CronSim
from hypothesis import HealthCheck, assume, given, reject, settings
from hypothesis import strategies as st

from cronwarden.cron import parse
from cronwarden.errors import CronError

DAY = 86_400
FIRST = int(datetime(1970, 1, 1, tzinfo=UTC).timestamp())
LAST = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp())
FIRES = 10
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Draw = Callable[[st.SearchStrategy[Any]], Any]


# -- expressions both peers understand ---------------------------------------------------


def spell(draw: Draw, value: int, names: tuple[str, ...], offset: int) -> str:
    """``value`` as a number, zero-padded, or (when it has one) a name in some case."""
    how = draw(st.integers(0, 2))
    if how == 1 and value < 10:
        return f"{value:02d}"
    if how == 2 and 0 <= value - offset < len(names):
        name = names[value - offset]
        return draw(st.sampled_from([name, name.lower(), name.capitalize()]))
    return str(value)


def item(
    draw: Draw, lo: int, hi: int, names: tuple[str, ...] = (), *, dow_steps: bool = True
) -> str:
    shape = draw(st.sampled_from(["a", "a-b", "a-b/s", "a/s", "*/s"]))
    step = draw(st.integers(1, hi - lo + 1))
    if shape == "*/s":
        return f"*/{step}"
    start = draw(st.integers(lo, hi))
    first = spell(draw, start, names, 1 if names is MONTHS else 0)
    if shape == "a" or (shape == "a/s" and not dow_steps):
        return first
    if shape == "a/s":
        return f"{first}/{step}"
    if start == hi:
        return first
    end = draw(st.integers(start + 1, hi))  # both peers misread `a-a` (KNOWN_DISAGREEMENTS)
    # a named Sunday ending a range is read differently (see KNOWN_DISAGREEMENTS): numbers
    last = str(end) if names is DAYS else spell(draw, end, names, 1)
    return f"{first}-{last}" + (f"/{step}" if shape == "a-b/s" else "")


def field(draw: Draw, lo: int, hi: int, names: tuple[str, ...] = (), **kw: Any) -> str:
    if draw(st.integers(0, 9)) < 4:
        return "*"
    return ",".join(item(draw, lo, hi, names, **kw) for _ in range(draw(st.integers(1, 3))))


def dom_field(draw: Draw, *, specials: bool) -> str:
    if draw(st.integers(0, 9)) < 6:
        return "*"
    items = []
    for _ in range(draw(st.integers(1, 2))):
        kind = draw(st.integers(0, 4)) if specials else 4
        items.append({0: "L", 1: "LW"}.get(kind) or item(draw, 1, 31))
    return ",".join(items)


def dow_field(draw: Draw, *, specials: bool, dow_steps: bool = True) -> str:
    if draw(st.integers(0, 9)) < 6:
        return "*"
    items = []
    for _ in range(draw(st.integers(1, 2))):
        kind = draw(st.integers(0, 4)) if specials else 4
        weekday = draw(st.integers(0, 7))
        if kind == 0:
            items.append(f"{weekday}L")  # cronsim: digits only before L
        elif kind == 1:
            items.append(f"{spell(draw, weekday, DAYS, 0)}#{draw(st.integers(1, 5))}")
        else:
            items.append(item(draw, 0, 7, DAYS, dow_steps=dow_steps))
    return ",".join(items)


@st.composite
def cronsim_expressions(draw: Draw, *, seconds: bool) -> str:
    parts = [field(draw, 0, 59)] if seconds else []
    parts += [
        field(draw, 0, 59),
        field(draw, 0, 23),
        dom_field(draw, specials=True),
        field(draw, 1, 12, MONTHS),
        dow_field(draw, specials=True),
    ]
    return " ".join(parts)


@st.composite
def croniter_expressions(draw: Draw) -> str:
    parts = [field(draw, 0, 59)] if draw(st.integers(0, 3)) == 0 else []
    dom = dom_field(draw, specials=False)
    dow = dow_field(draw, specials=False, dow_steps=False)
    # croniter ORs a day field starting with `*/n` (see KNOWN_DISAGREEMENTS)
    dom = "*" if dom.startswith("*/") else dom
    dow = "*" if dow.startswith("*/") else dow
    parts += [field(draw, 0, 59), field(draw, 0, 23), dom, field(draw, 1, 12, MONTHS), dow]
    return " ".join(parts)


def transitions_near(zone: str, year: int) -> list[int]:
    tz = ZoneInfo(zone)
    start = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
    found, previous = [], datetime.fromtimestamp(start, tz).utcoffset()
    for probe in range(start, start + 366 * DAY, DAY):
        offset = datetime.fromtimestamp(probe, tz).utcoffset()
        if offset != previous:
            found.append(probe)
        previous = offset
    return found


@st.composite
def instants(draw: Draw, zone: str) -> int:
    """Whole seconds in 1970-2100, half the time within two days of a DST change."""
    if zone != "UTC" and draw(st.booleans()):
        changes = transitions_near(zone, draw(st.integers(1971, 2098)))
        if changes:
            return int(draw(st.sampled_from(changes)) + draw(st.integers(-2 * DAY, DAY)))
    return int(draw(st.integers(FIRST, LAST)))


def ours(expr: str, zone: str, start: datetime) -> list[float]:
    try:
        schedule = parse(expr, zone)
    except CronError:
        reject()  # never fires: the peers' checks are weaker, nothing to compare
    return [fire.timestamp() for fire in islice(schedule.iter_after(start), FIRES)]


def show(stamps: list[float], tz: tzinfo) -> list[str]:
    return [datetime.fromtimestamp(stamp, tz).isoformat() for stamp in stamps]


def is_fixed_time(expr: str) -> bool:
    minute, hour = expr.split()[-5:-3]
    return not minute.startswith("*") and not hour.startswith("*")


# -- agreement ---------------------------------------------------------------------------


def compare_with_cronsim(expr: str, zone: str, instant: int) -> None:
    tz = ZoneInfo(zone)
    peer_tz = UTC if zone == "UTC" else tz
    start = datetime.fromtimestamp(instant, peer_tz)
    expected = ours(expr, zone, start)
    got = [fire.timestamp() for fire in islice(CronSim(expr, start), FIRES)]
    if len(got) < FIRES:  # cronsim gives up after 50 years without a fire
        last = datetime.fromtimestamp(got[-1], tz) if got else start
        assert datetime.fromtimestamp(expected[len(got)], tz).year > last.year + 50
        expected = expected[: len(got)]
    assert show(expected, tz) == show(got, tz)


@SETTINGS
@given(data=st.data(), seconds=st.booleans())
def test_it_agrees_with_cronsim_in_utc(data: st.DataObject, seconds: bool) -> None:
    expr = data.draw(cronsim_expressions(seconds=seconds), label="expr")
    compare_with_cronsim(expr, "UTC", data.draw(instants("UTC"), label="instant"))


@SETTINGS
@given(data=st.data(), zone=st.sampled_from(["America/New_York", "Europe/London"]))
def test_it_agrees_with_cronsim_across_dst_for_five_fields(data: st.DataObject, zone: str) -> None:
    expr = data.draw(cronsim_expressions(seconds=False), label="expr")
    instant = data.draw(instants(zone), label="instant")
    if is_fixed_time(expr):
        # cronsim restarts a fixed-time search from the wall time, losing `fold`
        assume(not datetime.fromtimestamp(instant, ZoneInfo(zone)).fold)
    compare_with_cronsim(expr, zone, instant)


@SETTINGS
@given(data=st.data(), zone=st.sampled_from(["America/New_York", "Europe/London"]))
def test_it_agrees_with_cronsim_on_six_fields_that_follow_elapsed_time(
    data: st.DataObject, zone: str
) -> None:
    expr = data.draw(cronsim_expressions(seconds=True), label="expr")
    assume(not is_fixed_time(expr))  # cronsim applies no DST rule to 6 fields
    compare_with_cronsim(expr, zone, data.draw(instants(zone), label="instant"))


@SETTINGS
@given(expr=croniter_expressions(), instant=instants("UTC"))
def test_it_agrees_with_croniter_in_utc(expr: str, instant: int) -> None:
    start = datetime.fromtimestamp(instant, UTC)
    expected = ours(expr, "UTC", start)
    peer = croniter(expr, start, day_or=True, second_at_beginning=len(expr.split()) == 6)
    got = [peer.get_next(datetime).timestamp() for _ in range(FIRES)]
    assert show(expected, UTC) == show(got, UTC)


# -- known disagreements -----------------------------------------------------------------

NY = "America/New_York"

KNOWN_DISAGREEMENTS = [
    (
        # cronsim applies no DST rule to 6-field expressions: it skips the gap day
        # entirely -> 2026-03-09T02:30-04:00, 2026-03-10T02:30-04:00.
        "cronsim-six-field-fixed-time-in-gap",
        "0 30 2 * * *",
        NY,
        "2026-03-07T12:00:00+00:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    (
        # cronsim fires both copies of the repeated hour for 6 fields:
        # -> 2026-11-01T01:30-04:00, 2026-11-01T01:30-05:00, 2026-11-02T01:30-05:00.
        "cronsim-six-field-fixed-time-in-repeated-hour",
        "0 30 1 * * *",
        NY,
        "2026-10-31T12:00:00+00:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    ),
    (
        # cronsim restarts a fixed-time search from the naive wall time, so from inside
        # the second copy of the repeated hour (01:10 EST) it answers 01:30 EDT, which is
        # *before* the start (06:30 vs 05:30 UTC); the contract says strictly after.
        "cronsim-fixed-time-starting-in-second-copy-of-repeated-hour",
        "30 1 * * *",
        NY,
        "2026-11-01T01:10:00-05:00",
        ["2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00"],
    ),
    (
        # cronsim rejects `MON-SUN` ("Bad day-of-week": SUN is 0, so the range runs
        # backwards); we read a named Sunday ending a range as 7: Monday through Sunday.
        "cronsim-rejects-mon-sun",
        "0 0 * * MON-SUN",
        "UTC",
        "2026-03-06T12:00:00+00:00",
        ["2026-03-07T00:00:00+00:00", "2026-03-08T00:00:00+00:00", "2026-03-09T00:00:00+00:00"],
    ),
    (
        # cronsim: `SAT-SUN` is also a backwards range for it; for us Saturday and Sunday.
        "cronsim-rejects-sat-sun",
        "0 0 * * SAT-SUN",
        "UTC",
        "2026-03-06T12:00:00+00:00",
        ["2026-03-07T00:00:00+00:00", "2026-03-08T00:00:00+00:00", "2026-03-14T00:00:00+00:00"],
    ),
    (
        # croniter ORs a day-of-month starting with `*` (`*/2`) with a restricted
        # day-of-week: every odd day plus every Monday (03-07, 03-09, 03-11, ...). Debian
        # (and cronsim) AND them: odd days that are Mondays.
        "croniter-ors-a-star-step-day-of-month",
        "0 0 */2 * MON",
        "UTC",
        "2026-03-05T12:00:00+00:00",
        ["2026-03-09T00:00:00+00:00", "2026-03-23T00:00:00+00:00", "2026-04-13T00:00:00+00:00"],
    ),
    (
        # croniter: `0 0 1 * */2` fires on the 1st OR Sun/Tue/Thu/Sat (03-07, 03-08,
        # 03-10, ...); Debian ANDs: a 1st that falls on one of those days.
        "croniter-ors-a-star-step-day-of-week",
        "0 0 1 * */2",
        "UTC",
        "2026-03-05T12:00:00+00:00",
        ["2026-08-01T00:00:00+00:00", "2026-09-01T00:00:00+00:00", "2026-10-01T00:00:00+00:00"],
    ),
    (
        # croniter runs day-of-week steps over 0-6, so `MON/2` is Mon, Wed, Fri (03-09,
        # 03-11, 03-13, 03-16); the contract runs them over 0-7: Mon, Wed, Fri, Sun.
        "croniter-dow-steps-stop-at-saturday",
        "0 0 * * MON/2",
        "UTC",
        "2026-03-08T12:00:00+00:00",
        [
            "2026-03-09T00:00:00+00:00",
            "2026-03-11T00:00:00+00:00",
            "2026-03-13T00:00:00+00:00",
            "2026-03-15T00:00:00+00:00",
        ],
    ),
    (
        # cronsim reads a one-value range with a step as `a/s`: `5-5/10` fires at
        # :05, :15, :25, ...; croniter reads it as `*/10` (:10, :20, ...). A range is
        # its values: 5 only.
        "peers-misread-a-one-value-range-with-a-step",
        "5-5/10 * * * *",
        "UTC",
        "2026-03-05T12:00:00+00:00",
        ["2026-03-05T12:05:00+00:00", "2026-03-05T13:05:00+00:00"],
    ),
    (
        # croniter reads a one-value range `a-a` as `*`: `0 3-3 * * *` fires hourly
        # (13:00, 14:00, ...) and `1-1 * * * *` every minute; cronsim agrees with us.
        "croniter-reads-a-one-value-range-as-star",
        "0 3-3 * * *",
        "UTC",
        "2026-03-05T12:00:00+00:00",
        ["2026-03-06T03:00:00+00:00", "2026-03-07T03:00:00+00:00"],
    ),
    (
        # croniter reads a 6th field as *seconds last* unless second_at_beginning=True:
        # `*/7 * * * * *` is then every second of every 7th minute; ours is seconds first.
        "croniter-six-fields-put-seconds-last",
        "*/7 * * * * *",
        "UTC",
        "2026-03-05T12:00:00+00:00",
        ["2026-03-05T12:00:07+00:00", "2026-03-05T12:00:14+00:00", "2026-03-05T12:00:21+00:00"],
    ),
]


@pytest.mark.parametrize(
    ("expr", "zone", "start", "expected"),
    [case[1:] for case in KNOWN_DISAGREEMENTS],
    ids=[case[0] for case in KNOWN_DISAGREEMENTS],
)
def test_it_keeps_the_contract_where_a_peer_disagrees(
    expr: str, zone: str, start: str, expected: list[str]
) -> None:
    moment = datetime.fromisoformat(start)
    if moment.utcoffset() != timedelta(0):  # a wall time in `zone`; keep its fold
        local = datetime.fromtimestamp(moment.timestamp(), ZoneInfo(zone))
        assert local.utcoffset() == moment.utcoffset()
        moment = local
    fires = list(islice(parse(expr, zone).iter_after(moment), len(expected)))
    assert [fire.isoformat() for fire in fires] == expected
    assert [f.timestamp() for f in fires] == [
        datetime.fromisoformat(e).timestamp() for e in expected
    ]
