"""Quiet hours: is an instant inside a configured window? (spec 000 ``disable_during_quiet_hours``)

A window runs from ``start`` to ``end`` local time in its own timezone, on the
days it *starts* on; ``end`` at or before ``start`` crosses midnight into the
next day (``22:00``-``02:00`` on ``FRI`` covers Friday night until Saturday
02:00), and ``start == end`` covers the whole day. Wall times are compared, so a
window follows its zone's DST.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import lru_cache

from cronwarden.cron.fields import DAY_OF_WEEK, field_bits
from cronwarden.cron.zones import resolve_zone
from cronwarden.manifest.model import QuietHours


def quiet_window(instant: datetime, windows: Iterable[QuietHours]) -> QuietHours | None:
    """The first window that ``instant`` (aware) falls in, or ``None``."""
    for window in windows:
        if _inside(instant.astimezone(resolve_zone(window.timezone)), window):
            return window
    return None


def _inside(local: datetime, window: QuietHours) -> bool:
    now = local.time().replace(tzinfo=None)
    days = _weekdays(window.days)
    today = _starts_on(local, days)
    if window.start == window.end:
        return today
    if window.start < window.end:
        return today and window.start <= now < window.end
    yesterday = _starts_on(local - timedelta(days=1), days)
    return (today and now >= window.start) or (yesterday and now < window.end)


def _starts_on(local: datetime, days: int) -> bool:
    return bool(days >> ((local.weekday() + 1) % 7) & 1)  # cron weekday: 0 = Sunday


@lru_cache(maxsize=256)
def _weekdays(days: tuple[str, ...]) -> int:
    """Bitmask of cron weekdays (0 = Sunday) named by day-of-week expressions."""
    bits = 0
    for text in days:
        bits |= field_bits(text.upper(), DAY_OF_WEEK, None)
    return (bits | bits >> 7) & 0x7F


__all__ = ["quiet_window"]
