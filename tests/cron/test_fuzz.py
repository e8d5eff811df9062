"""Fuzzing the cron engine's inputs: only ``CronError`` ever comes out (ARCHITECTURE §3).

Whatever string reaches ``parse`` as the expression, the timezone or the hash key, the
engine either compiles it or raises :class:`~cronwarden.errors.CronError` (a
``ValueError``) with ``.code == "CRON_RUNNER_INVALID_EXPRESSION"`` and a message that
starts by naming the field at fault (``minute: 99 is outside 0-59``). A schedule that
compiles answers ``next_after``/``prev_before`` without raising. Naive datetimes, and
anything that is not a datetime, are refused with ``CronError`` too.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import islice, pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cronwarden.cron import parse
from cronwarden.errors import CronError

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CODE = "CRON_RUNNER_INVALID_EXPRESSION"
FIELD_PREFIX = re.compile(
    r"(second|minute|hour|day-of-month|month|day-of-week( #n)?|expression|timezone): \S"
)
START = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)
EARLY = datetime(5, 1, 1, tzinfo=UTC).timestamp()
LATE = datetime(9995, 1, 1, tzinfo=UTC).timestamp()

#: characters of cron syntax, names' letters in both cases, and some whitespace
CRON_ALPHABET = "0123456789*/,-#LWH?@ ()\tADEFGIJMNORSTUVYBCadefgijmnorstuvybclwh"
TOKENS = (
    "*", "?", "/", "-", ",", "#", "L", "W", "LW", "H", "H(", ")", "(", "@", "0", "00", "1",
    "5", "7", "8", "12", "13", "23", "24", "28", "29", "30", "31", "32", "59", "60", "99",
    "0007", "99999999", "1" * 30, "MON", "sun", "Sat", "JAN", "dec", "FEB", "X", "MONDAY",
    "5L", "L-3", "15W", "5#3", "5#6", "0#0", "H(0-29)", "H(5-1)", "H(a-b)", "@daily",
    "@reboot", "-1", "+1", "1.5", "\u0661", "\uff15", "\u00b2", "\u017fun", "\u0131",
    "\u1e96", "\ud800", "\x00",
)  # fmt: skip
TRICKY_ZONES = (
    "", ".", "..", "/", "UTC", "utc", " UTC", "UTC\x00", "Etc/GMT+15", "GMT+5", "Etc/GMT-14",
    "America/New_York", "America/", "America", "America//New_York", "../zoneinfo/UTC",
    "/usr/share/zoneinfo/UTC", "__init__.py", "America/__init__.py", "zone.tab", "tzdata.zi",
    "leapseconds", "posixrules", "localtime", "right/UTC", "Factory", "EST5EDT", "\ud800",
    "a" * 300,
)  # fmt: skip
ZONES = ("UTC", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham", "Asia/Kolkata")

#: characters that have broken parsers: surrogates, NUL, non-ASCII digits, letters whose
#: upper case is ASCII (long s, dotless i) or grows (h with line below, sharp s, ligature)
NASTY = "\ud800\udfff\x00\x1c\u3000\u0661\uff15\u00b2\u017f\u0131\u1e96\u00df\ufb01\u212a"
#: every character, lone surrogates and control characters included
ANY_TEXT = st.text(
    st.one_of(st.characters(blacklist_categories=()), st.sampled_from(NASTY)), max_size=60
)
CRON_TEXT = st.text(CRON_ALPHABET, max_size=40)
FIELD = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6).map("".join)
FIELDS = st.lists(
    st.one_of(FIELD, st.text(CRON_ALPHABET, min_size=1, max_size=8)), min_size=5, max_size=6
).map(" ".join)
EXPRESSIONS = st.one_of(ANY_TEXT, CRON_TEXT, FIELDS)
ZONE_NAMES = st.one_of(st.sampled_from(TRICKY_ZONES), st.text(max_size=30), ANY_TEXT)
HASH_KEYS = st.one_of(st.none(), st.text(max_size=12), ANY_TEXT)


def assert_cron_error(error: CronError) -> None:
    assert isinstance(error, ValueError)
    assert error.code == CODE
    message = str(error)
    assert message.strip(), "the message is empty"
    assert FIELD_PREFIX.match(message), f"{message!r} does not start by naming a field"


def parse_or_error(expr: Any, tz: Any = "UTC", hash_key: Any = None) -> Any:
    """``parse``'s schedule, or ``None`` after checking the ``CronError`` it raised."""
    try:
        return parse(expr, tz, hash_key=hash_key)
    except CronError as error:
        assert_cron_error(error)
        return None


def assert_answers(schedule: Any) -> None:
    after = schedule.next_after(START)
    before = schedule.prev_before(START)
    assert after is not None and after.timestamp() > START.timestamp()
    assert before is not None and before.timestamp() < START.timestamp()


@SETTINGS
@given(expr=EXPRESSIONS)
def test_it_raises_only_cron_errors_for_any_expression(expr: str) -> None:
    schedule = parse_or_error(expr)
    if schedule is not None:
        assert_answers(schedule)


@SETTINGS
@given(expr=FIELDS, hash_key=HASH_KEYS)
def test_it_raises_only_cron_errors_for_any_field_text_and_hash_key(
    expr: str, hash_key: str | None
) -> None:
    schedule = parse_or_error(expr, hash_key=hash_key)
    if schedule is not None:
        assert_answers(schedule)


@SETTINGS
@given(expr=st.one_of(st.sampled_from(["30 2 * * *", "*/7 * * * * *"]), FIELDS), tz=ZONE_NAMES)
def test_it_raises_only_cron_errors_for_any_timezone_name(expr: str, tz: str) -> None:
    schedule = parse_or_error(expr, tz)
    if schedule is not None:
        assert_answers(schedule)


@SETTINGS
@given(hash_key=ANY_TEXT, expr=st.sampled_from(["H * * * *", "H(0-29)/10 H * * H", "@daily"]))
def test_it_takes_any_string_as_a_hash_key(hash_key: str, expr: str) -> None:
    schedule = parse_or_error(expr, hash_key=hash_key)
    assert schedule is not None
    assert_answers(schedule)


def test_it_takes_a_hash_key_with_a_lone_surrogate() -> None:
    # a task id is any str; it must hash (or be refused with CronError), not crash
    schedule = parse_or_error("H * * * *", hash_key="task-\ud800")
    assert schedule is not None


@pytest.mark.parametrize(
    ("expr", "tz", "hash_key", "prefix"),
    [
        (None, "UTC", None, "expression:"),
        (5, "UTC", None, "expression:"),
        (b"* * * * *", "UTC", None, "expression:"),
        (["*"] * 5, "UTC", None, "expression:"),
        ("* * * * *", None, None, "timezone:"),
        ("* * * * *", 5, None, "timezone:"),
        ("* * * * *", b"UTC", None, "timezone:"),
        ("* * * * *", "Mars/Olympus_Mons", None, "timezone:"),
        ("H * * * *", "UTC", 42, "hash_key:"),
        ("H * * * *", "UTC", None, "minute:"),
        ("0 0 30 2 *", "UTC", None, "expression:"),
        ("0 0 * * MON#6", "UTC", None, "day-of-week"),
    ],
    ids=[
        "expr-none",
        "expr-int",
        "expr-bytes",
        "expr-list",
        "tz-none",
        "tz-int",
        "tz-bytes",
        "tz-unknown",
        "hash-key-int",
        "h-without-key",
        "never-fires",
        "nth-out-of-range",
    ],
)
def test_it_refuses_wrong_types_and_values_with_a_cron_error(
    expr: Any, tz: Any, hash_key: Any, prefix: str
) -> None:
    with pytest.raises(CronError) as caught:
        parse(expr, tz, hash_key=hash_key)
    assert caught.value.code == CODE
    assert str(caught.value).startswith(prefix)


# -- datetimes ---------------------------------------------------------------------------

QUERIES = ("next_after", "prev_before", "iter_after")


def ask(schedule: Any, query: str, moment: Any) -> Any:
    if query == "iter_after":
        return next(iter(schedule.iter_after(moment)), None)
    return getattr(schedule, query)(moment)


@SETTINGS
@given(moment=st.datetimes(), query=st.sampled_from(QUERIES), zone=st.sampled_from(ZONES))
def test_it_refuses_naive_datetimes(moment: datetime, query: str, zone: str) -> None:
    schedule = parse("*/5 * * * *", zone)
    with pytest.raises(CronError) as caught:
        ask(schedule, query, moment)
    assert caught.value.code == CODE
    assert str(caught.value).startswith("datetime:")
    assert "naive" in str(caught.value)


@pytest.mark.parametrize(
    "moment",
    [None, 1_700_000_000, 1.7e9, "2026-03-08T00:00:00Z", date(2026, 3, 8)],
    ids=["none", "int", "float", "str", "date"],
)
@pytest.mark.parametrize("query", QUERIES, ids=str)
def test_it_refuses_what_is_not_a_datetime(moment: Any, query: str) -> None:
    with pytest.raises(CronError) as caught:
        ask(parse("0 9 * * *"), query, moment)
    assert caught.value.code == CODE
    assert str(caught.value).startswith("datetime:")


@SETTINGS
@given(
    moment=st.datetimes(
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))]
            + [ZoneInfo(zone) for zone in ZONES]
        )
    ),
    zone=st.sampled_from(ZONES),
    expr=st.sampled_from(["* * * * *", "0 12 * * *", "59 23 31 12 *", "0 0 1 1 *", "0 0 29 2 *"]),
)
def test_it_answers_for_any_aware_datetime_from_year_1_to_9999(
    moment: datetime, zone: str, expr: str
) -> None:
    schedule = parse(expr, zone)
    after = schedule.next_after(moment)
    before = schedule.prev_before(moment)
    assert after is None or (after.tzinfo is not None and after.timestamp() > moment.timestamp())
    assert before is None or (before.tzinfo is not None and before.timestamp() < moment.timestamp())
    # every expression here fires at least once in any four years
    assert after is not None or moment.timestamp() > LATE
    assert before is not None or moment.timestamp() < EARLY
    fires = list(islice(schedule.iter_after(moment), 3))
    assert all(a.timestamp() < b.timestamp() for a, b in pairwise(fires))
