"""Quiet hours windows: days, midnight crossing, own timezone, DST."""

from __future__ import annotations

from datetime import datetime

import pytest

from cronwarden.core.quiet_hours import quiet_window
from cronwarden.manifest.model import QuietHours

US_OPEN = QuietHours.model_validate(
    {"name": "us-open", "start": "09:30", "end": "10:00", "days": ["MON-FRI"],
     "timezone": "America/New_York"}
)  # fmt: skip
NIGHT = QuietHours.model_validate(
    {"name": "night", "start": "22:00", "end": "02:00", "days": ["FRI"], "timezone": "UTC"}
)
ALL_DAY = QuietHours.model_validate({"name": "sunday", "start": "00:00", "end": "00:00",
                                     "days": ["SUN"]})  # fmt: skip


@pytest.mark.parametrize(
    ("instant", "window", "quiet"),
    [
        # 2026-03-06 is a Friday; New York is on EST (-05:00) until 2026-03-08
        ("2026-03-06T14:30:00+00:00", US_OPEN, True),  # 09:30 EST: start is inside
        ("2026-03-06T14:59:59+00:00", US_OPEN, True),
        ("2026-03-06T15:00:00+00:00", US_OPEN, False),  # 10:00 EST: end is outside
        ("2026-03-06T14:29:59+00:00", US_OPEN, False),
        ("2026-03-07T14:45:00+00:00", US_OPEN, False),  # Saturday
        ("2026-03-09T13:45:00+00:00", US_OPEN, True),  # Monday 09:45 EDT (-04:00)
        ("2026-03-09T14:45:00+00:00", US_OPEN, False),  # 10:45 EDT
        ("2026-03-06T22:00:00+00:00", NIGHT, True),  # Friday 22:00
        ("2026-03-07T01:59:00+00:00", NIGHT, True),  # crosses into Saturday
        ("2026-03-07T02:00:00+00:00", NIGHT, False),
        ("2026-03-07T23:00:00+00:00", NIGHT, False),  # Saturday night is not a start day
        ("2026-03-06T01:00:00+00:00", NIGHT, False),  # Friday 01:00: Thursday did not start
        ("2026-03-08T12:00:00+00:00", ALL_DAY, True),  # start == end: the whole Sunday
        ("2026-03-09T00:00:00+00:00", ALL_DAY, False),
    ],
    ids=[
        "start-inside", "last-second", "end-outside", "before", "weekend", "follows-dst",
        "after-dst-shift", "night-start", "night-crosses-midnight", "night-end",
        "not-a-start-day", "previous-day-not-started", "all-day", "next-day",
    ],
)  # fmt: skip
def test_it_finds_the_window_an_instant_falls_in(
    instant: str, window: QuietHours, quiet: bool
) -> None:
    found = quiet_window(datetime.fromisoformat(instant), [window])
    assert (found is window) is quiet


def test_it_returns_the_first_matching_window() -> None:
    instant = datetime.fromisoformat("2026-03-06T23:00:00+00:00")
    assert quiet_window(instant, [US_OPEN, NIGHT, ALL_DAY]) is NIGHT
    assert quiet_window(instant, []) is None
