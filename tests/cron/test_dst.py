"""DST behaviour, per the ARCHITECTURE §3 contract (Debian/Vixie cron).

Transitions used below (2026, from the IANA database):

* America/New_York: Mar 8 02:00 EST -> 03:00 EDT (07:00 UTC);
  Nov 1 02:00 EDT -> 01:00 EST (06:00 UTC).
* Europe/London: Mar 29 01:00 GMT -> 02:00 BST (01:00 UTC);
  Oct 25 02:00 BST -> 01:00 GMT (01:00 UTC).
* Australia/Lord_Howe (30-minute DST): Apr 5 02:00 +11:00 -> 01:30 +10:30
  (Apr 4 15:00 UTC); Oct 4 02:00 +10:30 -> 02:30 +11:00 (Oct 3 15:30 UTC).
* Pacific/Chatham (+12:45/+13:45): Apr 5 03:45 +13:45 -> 02:45 +12:45
  (Apr 4 14:00 UTC); Sep 27 02:45 +12:45 -> 03:45 +13:45 (Sep 26 14:00 UTC).

A fixed-time expression (minute and hour do not start with ``*``) in the gap
fires once at the first instant after it, and once, at the first occurrence,
in a repeated hour; any other expression follows elapsed time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import islice

import pytest

from cronwarden.cron import parse

CASES = [
    # --- America/New_York, spring forward -----------------------------------------
    (
        "ny-gap-fixed-moves-to-0300",
        "30 2 * * *",
        "America/New_York",
        "2026-03-07T17:00:00+00:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    (
        "ny-gap-fixed-on-the-hour",
        "0 2 * * *",
        "America/New_York",
        "2026-03-07T17:00:00+00:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"],
    ),
    (
        "ny-gap-two-fixed-times-fire-once",
        "0,30 2 * * *",
        "America/New_York",
        "2026-03-07T17:00:00+00:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"],
    ),
    (
        "ny-gap-fixed-and-0300-coincide",
        "0 2,3 * * *",
        "America/New_York",
        "2026-03-07T17:00:00+00:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"],
    ),
    (
        "ny-gap-six-field-fixed",
        "15 30 2 * * *",
        "America/New_York",
        "2026-03-07T17:00:00+00:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:15-04:00"],
    ),
    (
        "ny-gap-wildcard-skips",
        "*/30 * * * *",
        "America/New_York",
        "2026-03-08T06:00:00+00:00",
        ["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"],
    ),
    (
        "ny-gap-hour-star-is-not-fixed",
        "30 * * * *",
        "America/New_York",
        "2026-03-08T06:00:00+00:00",
        ["2026-03-08T01:30:00-05:00", "2026-03-08T03:30:00-04:00"],
    ),
    (
        "ny-gap-weekly-fixed",
        "30 2 * * SUN",
        "America/New_York",
        "2026-03-01T12:00:00+00:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-15T02:30:00-04:00"],
    ),
    # --- America/New_York, fall back ----------------------------------------------
    (
        "ny-fold-fixed-fires-first-copy",
        "30 1 * * *",
        "America/New_York",
        "2026-10-31T16:00:00+00:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    ),
    (
        "ny-fold-wildcard-fires-both",
        "*/30 1 * * *",
        "America/New_York",
        "2026-11-01T04:45:00+00:00",
        [
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:30:00-05:00",
            "2026-11-02T01:00:00-05:00",
        ],
    ),
    (
        "ny-fold-hourly-fires-both",
        "0 * * * *",
        "America/New_York",
        "2026-11-01T04:30:00+00:00",
        ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"],
    ),
    (
        "ny-fold-after-first-copy-fixed-waits-a-day",
        "30 1 * * *",
        "America/New_York",
        "2026-11-01T06:15:00+00:00",  # 01:15 EST, the second copy
        ["2026-11-02T01:30:00-05:00"],
    ),
    (
        "ny-fold-strictly-after-inside-repeat",
        "*/30 1 * * *",
        "America/New_York",
        "2026-11-01T05:30:00+00:00",  # exactly 01:30 EDT
        ["2026-11-01T01:00:00-05:00", "2026-11-01T01:30:00-05:00"],
    ),
    (
        "ny-fold-strictly-after-second-copy",
        "*/30 1 * * *",
        "America/New_York",
        "2026-11-01T06:30:00+00:00",  # exactly 01:30 EST
        ["2026-11-02T01:00:00-05:00"],
    ),
    (
        "ny-fold-every-minute-crosses",
        "* * * * *",
        "America/New_York",
        "2026-11-01T05:58:30+00:00",  # 01:58:30 EDT
        ["2026-11-01T01:59:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T01:01:00-05:00"],
    ),
    # --- Europe/London ------------------------------------------------------------
    (
        "london-gap-fixed",
        "30 1 * * *",
        "Europe/London",
        "2026-03-28T12:00:00+00:00",
        ["2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00"],
    ),
    (
        "london-gap-wildcard-hour",
        "15 * * * *",
        "Europe/London",
        "2026-03-29T00:30:00+00:00",
        ["2026-03-29T02:15:00+01:00"],
    ),
    (
        "london-fold-fixed",
        "30 1 * * *",
        "Europe/London",
        "2026-10-24T12:00:00+00:00",
        ["2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"],
    ),
    (
        "london-fold-wildcard",
        "*/20 1 * * *",
        "Europe/London",
        "2026-10-24T23:59:00+00:00",
        [
            "2026-10-25T01:00:00+01:00",
            "2026-10-25T01:20:00+01:00",
            "2026-10-25T01:40:00+01:00",
            "2026-10-25T01:00:00+00:00",
            "2026-10-25T01:20:00+00:00",
            "2026-10-25T01:40:00+00:00",
        ],
    ),
    # --- Australia/Lord_Howe: 30-minute shifts -----------------------------------
    (
        "lordhowe-gap-fixed",
        "15 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-03T00:00:00+00:00",
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"],
    ),
    (
        "lordhowe-gap-wildcard",
        "*/15 * * * *",
        "Australia/Lord_Howe",
        "2026-10-03T15:20:00+00:00",  # 01:50 +10:30
        ["2026-10-04T02:30:00+11:00", "2026-10-04T02:45:00+11:00"],
    ),
    (
        "lordhowe-fold-fixed",
        "45 1 * * *",
        "Australia/Lord_Howe",
        "2026-04-04T00:00:00+00:00",
        ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"],
    ),
    (
        "lordhowe-fold-wildcard",
        "*/15 1 * * *",
        "Australia/Lord_Howe",
        "2026-04-04T14:20:00+00:00",  # 01:20 +11:00
        [
            "2026-04-05T01:30:00+11:00",
            "2026-04-05T01:45:00+11:00",
            "2026-04-05T01:30:00+10:30",
            "2026-04-05T01:45:00+10:30",
            "2026-04-06T01:00:00+10:30",
        ],
    ),
    # --- Pacific/Chatham: +12:45 / +13:45 -----------------------------------------
    (
        "chatham-gap-fixed",
        "0 3 * * *",
        "Pacific/Chatham",
        "2026-09-26T00:00:00+00:00",
        ["2026-09-27T03:45:00+13:45", "2026-09-28T03:00:00+13:45"],
    ),
    (
        "chatham-gap-wildcard-hour",
        "30 * * * *",
        "Pacific/Chatham",
        "2026-09-26T13:15:00+00:00",  # 02:00 +12:45
        ["2026-09-27T02:30:00+12:45", "2026-09-27T04:30:00+13:45"],
    ),
    (
        "chatham-fold-fixed",
        "0 3 * * *",
        "Pacific/Chatham",
        "2026-04-04T00:00:00+00:00",
        ["2026-04-05T03:00:00+13:45", "2026-04-06T03:00:00+12:45"],
    ),
    (
        "chatham-fold-hourly",
        "0 * * * *",
        "Pacific/Chatham",
        "2026-04-04T12:45:00+00:00",  # 02:30 +13:45
        ["2026-04-05T03:00:00+13:45", "2026-04-05T03:00:00+12:45", "2026-04-05T04:00:00+12:45"],
    ),
]


@pytest.mark.parametrize(
    ("expr", "tz", "after", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_it_follows_vixie_dst_rules(expr: str, tz: str, after: str, expected: list[str]) -> None:
    fires = islice(parse(expr, tz).iter_after(datetime.fromisoformat(after)), len(expected))
    assert [fire.isoformat() for fire in fires] == expected


@pytest.mark.parametrize(
    ("expr", "tz", "after", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_it_walks_back_over_the_same_fires(
    expr: str, tz: str, after: str, expected: list[str]
) -> None:
    schedule = parse(expr, tz)
    last = datetime.fromisoformat(expected[-1])
    back = []
    cursor: datetime | None = last
    for _ in expected[:-1]:
        assert cursor is not None
        cursor = schedule.prev_before(cursor)
        assert cursor is not None
        back.append(cursor.isoformat())
    assert back[::-1] == expected[:-1]


def test_it_fires_first_copy_when_walking_back_from_the_second() -> None:
    schedule = parse("30 1 * * *", "America/New_York")
    before = datetime.fromisoformat("2026-11-01T06:45:00+00:00")  # 01:45 EST
    previous = schedule.prev_before(before)
    assert previous is not None
    assert previous.isoformat() == "2026-11-01T01:30:00-04:00"


def test_it_returns_fold_aware_datetimes_in_the_repeated_hour() -> None:
    schedule = parse("0 * * * *", "America/New_York")
    first = schedule.next_after(datetime.fromisoformat("2026-11-01T04:30:00+00:00"))
    second = schedule.next_after(datetime.fromisoformat("2026-11-01T05:30:00+00:00"))
    assert first is not None and second is not None
    assert (first.hour, first.fold, first.utcoffset()) == (1, 0, timedelta(hours=-4))
    assert (second.hour, second.fold, second.utcoffset()) == (1, 1, timedelta(hours=-5))
    assert second.timestamp() - first.timestamp() == 3600
