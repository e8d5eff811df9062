"""One table row per syntax feature of the ARCHITECTURE §3 cron contract.

Each row lists the first fires strictly after 2026-01-01T00:00:00Z (a Thursday), in UTC.
January 2026 starts on Thursday; February 2026 has 28 days; 2028 is a leap year.
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice

import pytest

from cronwarden.cron import parse
from cronwarden.errors import CronError

START = datetime(2026, 1, 1, tzinfo=UTC)

FEATURES = [
    ("every-minute", "* * * * *", ["00:01", "00:02", "00:03"]),
    ("step", "*/15 * * * *", ["00:15", "00:30", "00:45", "01:00"]),
    ("range-step", "10-50/20 * * * *", ["00:10", "00:30", "00:50", "01:10"]),
    ("value-step-runs-to-max", "45/10 * * * *", ["00:45", "00:55", "01:45"]),
    ("list", "5,10 3 * * *", ["03:05", "03:10", "2026-01-02 03:05"]),
    ("range", "0 22-23 * * *", ["22:00", "23:00", "2026-01-02 22:00"]),
    ("hour-step", "0 */8 * * *", ["08:00", "16:00", "2026-01-02 00:00"]),
    ("month-name-any-case", "0 0 1 mAr,Jun *", ["2026-03-01 00:00", "2026-06-01 00:00"]),
    ("month-range-names", "0 0 1 OCT-DEC *", ["2026-10-01 00:00", "2026-11-01 00:00"]),
    (
        "weekday-names",
        "0 9 * * mon-fri",
        ["2026-01-01 09:00", "2026-01-02 09:00", "2026-01-05 09:00"],
    ),
    ("sunday-as-0", "0 0 * * 0", ["2026-01-04 00:00", "2026-01-11 00:00"]),
    ("sunday-as-7", "0 0 * * 7", ["2026-01-04 00:00", "2026-01-11 00:00"]),
    (
        "named-sunday-ends-a-range",
        "0 0 * * SAT-SUN",
        ["2026-01-03 00:00", "2026-01-04 00:00", "2026-01-10 00:00"],
    ),
    (
        "weekday-steps-run-over-0-7",
        "0 0 * * MON/2",
        ["2026-01-02 00:00", "2026-01-04 00:00", "2026-01-05 00:00", "2026-01-07 00:00"],
    ),
    (
        "star-weekday-step",
        "0 0 * * */3",
        ["2026-01-03 00:00", "2026-01-04 00:00", "2026-01-07 00:00", "2026-01-10 00:00"],
    ),
    (
        "or-when-both-days-restricted",
        "0 0 13 * FRI",
        ["2026-01-02 00:00", "2026-01-09 00:00", "2026-01-13 00:00", "2026-01-16 00:00"],
    ),
    (
        "and-when-dom-starts-with-star",
        "0 0 */2 * FRI",
        ["2026-01-09 00:00", "2026-01-23 00:00", "2026-02-13 00:00"],
    ),
    ("and-when-dow-starts-with-star", "0 0 1-7 * */7", ["2026-01-04 00:00", "2026-02-01 00:00"]),
    ("question-mark-is-star", "0 0 ? * MON", ["2026-01-05 00:00", "2026-01-12 00:00"]),
    ("last-day", "0 0 L * *", ["2026-01-31 00:00", "2026-02-28 00:00", "2026-03-31 00:00"]),
    (
        "last-weekday",
        "0 0 LW * *",
        [
            "2026-01-30 00:00",
            "2026-02-27 00:00",
            "2026-03-31 00:00",
            "2026-04-30 00:00",
            "2026-05-29 00:00",
        ],
    ),
    (
        "nearest-weekday",
        "0 0 15W * *",
        [
            "2026-01-15 00:00",
            "2026-02-16 00:00",
            "2026-03-16 00:00",
            "2026-04-15 00:00",
            "2026-05-15 00:00",
            "2026-06-15 00:00",
            "2026-07-15 00:00",
            "2026-08-14 00:00",
        ],
    ),
    (
        "nearest-weekday-stays-in-month",
        "0 0 1W * *",
        [
            "2026-02-02 00:00",
            "2026-03-02 00:00",
            "2026-04-01 00:00",
            "2026-05-01 00:00",
            "2026-06-01 00:00",
            "2026-07-01 00:00",
            "2026-08-03 00:00",
        ],
    ),
    ("nearest-weekday-at-month-end", "0 0 31W 5 *", ["2026-05-29 00:00", "2027-05-31 00:00"]),
    ("nth-weekday", "0 0 * * 5#3", ["2026-01-16 00:00", "2026-02-20 00:00"]),
    ("fifth-weekday-skips-months", "0 0 * * FRI#5", ["2026-01-30 00:00", "2026-05-29 00:00"]),
    ("last-weekday-of-month", "0 0 * * 5L", ["2026-01-30 00:00", "2026-02-27 00:00"]),
    (
        "hash-and-dom-or",
        "0 0 1 * MON#1",
        ["2026-01-05 00:00", "2026-02-01 00:00", "2026-02-02 00:00", "2026-03-01 00:00"],
    ),
    ("sunday-range-is-just-sunday", "0 0 * * SUN-SUN", ["2026-01-04 00:00", "2026-01-11 00:00"]),
    ("leading-zeros", "00000005 */0000030 * * *", ["00:05", "2026-01-02 00:05"]),
    ("feb-29", "0 0 29 2 *", ["2028-02-29 00:00", "2032-02-29 00:00"]),
    ("seconds-first", "*/20 * * * * *", ["00:00:20", "00:00:40", "00:01:00"]),
    ("seconds-fixed", "30 0 12 * * *", ["12:00:30", "2026-01-02 12:00:30"]),
    ("yearly", "@yearly", ["2027-01-01 00:00"]),
    ("annually", "@ANNUALLY", ["2027-01-01 00:00"]),
    ("monthly", "@monthly", ["2026-02-01 00:00"]),
    ("weekly", "@weekly", ["2026-01-04 00:00"]),
    ("daily", "@daily", ["2026-01-02 00:00"]),
    ("midnight", "@midnight", ["2026-01-02 00:00"]),
    ("hourly", "@hourly", ["01:00", "02:00"]),
    ("surrounding-whitespace", "  0\t12  * * *  ", ["12:00"]),
]


def _expected(text: str) -> str:
    if " " not in text:
        text = f"2026-01-01 {text}"
    if text.count(":") == 1:
        text += ":00"
    return datetime.fromisoformat(text).replace(tzinfo=UTC).isoformat()


@pytest.mark.parametrize(
    ("expr", "expected"), [row[1:] for row in FEATURES], ids=[row[0] for row in FEATURES]
)
def test_it_supports_each_syntax_feature(expr: str, expected: list[str]) -> None:
    fires = islice(parse(expr).iter_after(START), len(expected))
    assert [fire.isoformat() for fire in fires] == [_expected(text) for text in expected]


ERRORS = [
    ("minute-out-of-range", "99 * * * *", "minute: 99 is outside 0-59"),
    ("hour-out-of-range", "0 24 * * *", "hour: 24 is outside 0-23"),
    ("dom-zero", "0 0 0 * *", "day-of-month: 0 is outside 1-31"),
    ("month-13", "0 0 1 13 *", "month: 13 is outside 1-12"),
    ("dow-8", "0 0 * * 8", "day-of-week: 8 is outside 0-7"),
    ("second-60", "60 * * * * *", "second: 60 is outside 0-59"),
    ("bad-month-name", "0 0 1 FOO *", "month: 'FOO' is not a month name or number"),
    ("bad-day-name", "0 0 * * FUNDAY", "day-of-week: 'FUNDAY' is not a week name or number"),
    ("letters-in-minute", "x * * * *", "minute: 'X' is not a number"),
    ("backwards-range", "0 22-2 * * *", "hour: range 22-2 is backwards"),
    ("zero-step", "*/0 * * * *", "minute: a step must be at least 1"),
    ("bad-step", "*/x * * * *", "minute: step 'X' is not a number"),
    ("empty-list-item", "1,,2 * * * *", "minute: empty item in list '1,,2'"),
    ("four-fields", "* * * *", "expected 5 fields"),
    ("seven-fields", "* * * * * * *", "got 7"),
    ("empty", "", "got 0"),
    ("unknown-macro", "@reboot", "unknown macro '@reboot'"),
    ("never-fires", "0 0 30 2 *", "never fires"),
    ("never-fires-31-in-short-months", "0 0 31 4,6,9,11 *", "never fires"),
    ("never-fires-and-rule", "0 0 */30 * MON#3", "never fires"),
    ("hash-without-key", "H * * * *", "minute: H needs a hash key"),
    ("l-alone-in-dow", "0 0 * * L", "day-of-week: 'L' needs a weekday before it"),
    ("nth-out-of-range", "0 0 * * 5#6", "day-of-week: #6 in '5#6' must be #1 to #5"),
    ("bad-dom-special", "0 0 L-3 * *", "day-of-month: 'L-3' is not L, LW or nW"),
    ("question-in-minute", "? * * * *", "minute: '?' is not a number"),
    ("non-ascii-digits", "\u0661 * * * *", "expression: '\u0661' is not a cron character"),
    ("non-ascii-letters-are-not-names", "0 0 * * \u017fun", "is not a cron character"),
    ("question-mark-in-a-list", "0 0 1,? * MON", "day-of-month: '?' is not a number"),
    ("huge-number", "0 " + "9" * 5000 + " * * *", "hour: 99999999999999999999... is outside"),
]


@pytest.mark.parametrize(
    ("expr", "message"), [row[1:] for row in ERRORS], ids=[row[0] for row in ERRORS]
)
def test_it_rejects_invalid_expressions_naming_field_and_token(expr: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        parse(expr)
    assert caught.value.code == "CRON_RUNNER_INVALID_EXPRESSION"
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_it_accepts_spec_000_acceptance_example() -> None:
    fire = parse("0 9 * * *").next_after(START)
    assert fire is not None
    assert fire.isoformat() == "2026-01-01T09:00:00+00:00"


def test_it_hashes_h_stably_per_key_and_field() -> None:
    first = parse("H H * * *", hash_key="daily_pnl_reconcile").next_after(START)
    again = parse("H H * * *", hash_key="daily_pnl_reconcile").next_after(START)
    assert first == again
    spread = {parse("H * * * *", hash_key=f"task-{n}").next_after(START) for n in range(50)}
    assert len(spread) > 20  # fifty tasks do not pile onto one minute


@pytest.mark.parametrize(
    ("expr", "allowed"),
    [
        ("H(0-29)/10 * * * *", {(m, s) for m in range(30) for s in [0]}),
        ("H(40-44) * * * *", {(m, 0) for m in range(40, 45)}),
    ],
    ids=["hashed-range-step", "hashed-range"],
)
def test_it_keeps_h_inside_its_range(expr: str, allowed: set[tuple[int, int]]) -> None:
    for key in (f"job-{n}" for n in range(40)):
        fires = list(islice(parse(expr, hash_key=key).iter_after(START), 6))
        assert {(fire.minute, fire.second) for fire in fires} <= allowed


def test_it_spaces_hashed_steps_by_the_step() -> None:
    fires = list(islice(parse("H(0-29)/10 * * * *", hash_key="scan.hot").iter_after(START), 3))
    minutes = [fire.minute for fire in fires]
    assert minutes[1] - minutes[0] == 10 and minutes[2] - minutes[1] == 10
    assert minutes[0] < 10


def test_it_defaults_hashed_days_to_1_28() -> None:
    for key in (f"job-{n}" for n in range(60)):
        fire = parse("0 0 H * *", hash_key=key).next_after(START)
        assert fire is not None and 1 <= fire.day <= 28
