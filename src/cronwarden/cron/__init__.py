"""The cron engine: parse expressions, find fires in any timezone, describe them in English.

>>> from cronwarden.cron import parse
>>> from datetime import datetime, UTC
>>> parse("0 9 * * MON-FRI", "America/New_York").next_after(datetime(2026, 3, 6, tzinfo=UTC))
datetime.datetime(2026, 3, 6, 9, 0, tzinfo=zoneinfo.ZoneInfo(key='America/New_York'))

Compiled schedules are cached by ``(expr, tz, hash_key)``; a :class:`CronSchedule`
is immutable in what it answers and may be shared freely.
"""

from __future__ import annotations

from datetime import tzinfo
from functools import lru_cache

from cronwarden.cron.describe import describe
from cronwarden.cron.fields import compile_fields
from cronwarden.cron.schedule import CronSchedule
from cronwarden.cron.zones import resolve_zone
from cronwarden.errors import CronError


def parse(expr: str, tz: str | tzinfo = "UTC", *, hash_key: str | None = None) -> CronSchedule:
    """Compile ``expr`` for the timezone ``tz`` (an IANA name or a ``tzinfo``).

    ``hash_key`` (the task id) seeds Jenkins-style ``H`` fields; without it ``H``
    is rejected. Raises :class:`CronError` (``.code == "CRON_RUNNER_INVALID_EXPRESSION"``)
    for any invalid or never-firing expression, and for an unknown timezone.
    """
    if not isinstance(expr, str):
        raise CronError(f"expression: expected a string, got {type(expr).__name__}")
    if hash_key is not None and not isinstance(hash_key, str):
        raise CronError(f"hash_key: expected a string, got {type(hash_key).__name__}")
    if hash_key is not None and "h" not in expr.lower():
        hash_key = None  # no H field: one schedule serves every task with this expression
    return _compile(expr, resolve_zone(tz), hash_key)


@lru_cache(maxsize=8192)
def _compile(expr: str, tz: tzinfo, hash_key: str | None) -> CronSchedule:
    return CronSchedule(expr, compile_fields(expr, hash_key), tz, hash_key)


def clear_cache() -> None:
    """Forget every compiled schedule (benchmarks measure parsing from scratch with this)."""
    _compile.cache_clear()


__all__ = ["CronError", "CronSchedule", "clear_cache", "describe", "parse"]
