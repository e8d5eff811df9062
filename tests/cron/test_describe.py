"""``describe(expr)``: English for a cron expression (ARCHITECTURE §3), cron-descriptor style."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronwarden.cron import describe, parse
from cronwarden.errors import CronError

DESCRIPTIONS = [
    # the contract example
    ("contract-weekday-names", "0 9 * * MON-FRI", "At 09:00, Monday through Friday"),
    ("contract-weekday-numbers", "0 9 * * 1-5", "At 09:00, Monday through Friday"),
    # time of day
    ("every-minute", "* * * * *", "Every minute"),
    ("minute-step", "*/15 * * * *", "Every 15 minutes"),
    ("every-hour", "0 * * * *", "Every hour"),
    ("hourly-macro", "@hourly", "Every hour"),
    ("hour-step", "0 */2 * * *", "Every 2 hours"),
    ("minute-past-every-hour", "5 * * * *", "At minute 5"),
    ("minute-and-hour-step", "5 */2 * * *", "At minute 5, every 2 hours"),
    ("fixed-time", "30 2 * * *", "At 02:30"),
    ("hour-list", "0 9,17 * * *", "At 09:00 and 17:00"),
    ("minute-list", "5,10 3 * * *", "At 03:05 and 03:10"),
    ("minute-and-hour-lists", "0,30 9,17 * * *", "At 09:00, 09:30, 17:00 and 17:30"),
    ("step-during-range", "*/15 9-17 * * *", "Every 15 minutes, during hour 9 through 17"),
    ("minute-range", "0-10 11 * * *", "At minute 0 through 10, during hour 11"),
    ("range-step", "10-50/7 * * * *", "Every 7 minutes from minute 10 through 50"),
    ("value-step-runs-to-max", "45/10 * * * *", "Every 10 minutes from minute 45 through 59"),
    # seconds (6 fields, seconds first)
    ("second-step", "*/10 * * * * *", "Every 10 seconds"),
    ("every-second", "* * * * * *", "Every second"),
    ("seconds-zero-is-unsaid", "0 */5 * * * *", "Every 5 minutes"),
    ("fixed-time-with-seconds", "30 0 9 * * *", "At 09:00:30"),
    ("second-of-every-minute", "30 * * * * *", "At second 30"),
    # day of month
    ("day-of-month", "0 0 1 * *", "At 00:00 on day 1 of the month"),
    ("last-day", "0 0 L * *", "At 00:00 on the last day of the month"),
    ("last-weekday", "0 0 LW * *", "At 00:00 on the last weekday of the month"),
    ("nearest-weekday", "0 0 15W * *", "At 00:00 on the weekday nearest day 15 of the month"),
    ("day-and-last-day", "0 0 1,L * *", "At 00:00 on day 1 and the last day of the month"),
    ("day-step", "0 0 */2 * *", "At 00:00 on every 2nd day of the month"),
    # day of week
    ("last-friday", "0 0 * * 5L", "At 00:00 on the last Friday of the month"),
    ("third-friday", "0 0 * * 5#3", "At 00:00 on the third Friday of the month"),
    ("sunday-as-0", "0 0 * * 0", "At 00:00, only on Sunday"),
    ("sunday-as-7", "0 0 * * 7", "At 00:00, only on Sunday"),
    ("weekly-macro", "@weekly", "At 00:00, only on Sunday"),
    ("question-mark", "0 0 ? * MON", "At 00:00, only on Monday"),
    (
        "weekday-steps-run-over-0-7",
        "0 0 * * MON/2",
        "At 00:00, only on Monday, Wednesday, Friday and Sunday",
    ),
    ("named-sunday-ends-range", "0 0 * * SAT-SUN", "At 00:00, Saturday through Sunday"),
    (
        "times-and-weekdays",
        "0 9,17 * * MON-FRI",
        "At 09:00 and 17:00, Monday through Friday",
    ),
    # the Vixie day rule
    (
        "both-restricted-or",
        "0 0 1,15 * MON",
        "At 00:00 on day 1 and 15 of the month, or on Monday",
    ),
    (
        "star-day-step-and",
        "0 0 */2 * MON",
        "At 00:00 on every 2nd day of the month, if it is a Monday",
    ),
    (
        "star-weekday-step-and",
        "0 0 1 * */3",
        "At 00:00 on day 1 of the month, if it is a Sunday, a Wednesday or a Saturday",
    ),
    (
        "last-friday-or-day",
        "0 0 1 * 5L",
        "At 00:00 on day 1 of the month, or on the last Friday of the month",
    ),
    # months
    ("yearly", "0 0 1 1 *", "At 00:00 on day 1 of the month, only in January"),
    ("yearly-macro", "@yearly", "At 00:00 on day 1 of the month, only in January"),
    ("month-range", "0 0 1 JAN-MAR *", "At 00:00 on day 1 of the month, January through March"),
    ("month-list", "0 0 1 mar,Jun *", "At 00:00 on day 1 of the month, only in March and June"),
    ("month-step", "0 0 1 */3 *", "At 00:00 on day 1 of the month, every 3rd month"),
    # Jenkins H
    ("hashed-minute", "H * * * *", "At a hashed minute"),
    (
        "hashed-start",
        "H(0-29)/10 * * * *",
        "Every 10 minutes from a hashed start within minutes 0-29",
    ),
    ("hashed-hour", "0 H * * *", "At minute 0, during a hashed hour"),
]


@pytest.mark.parametrize(
    ("expr", "expected"), [row[1:] for row in DESCRIPTIONS], ids=[row[0] for row in DESCRIPTIONS]
)
def test_it_describes_each_syntax_feature(expr: str, expected: str) -> None:
    assert describe(expr) == expected


def test_it_is_reexported_from_the_engine_package() -> None:
    from cronwarden.cron.describe import describe as direct

    assert describe is direct


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "* * * *",
        "60 * * * *",
        "0 0 30 2 *",
        "H * * * * * *",
        "@reboot",
        "0 0 * * L",
        "5-1 * * * *",
    ],
    ids=[
        "empty",
        "four-fields",
        "out-of-range",
        "never-fires",
        "seven-fields",
        "unknown-macro",
        "bare-L-weekday",
        "backwards-range",
    ],
)
def test_it_rejects_what_parse_rejects(expr: str) -> None:
    with pytest.raises(CronError) as raised:
        describe(expr)
    assert raised.value.code == "CRON_RUNNER_INVALID_EXPRESSION"


@given(st.text())
def test_it_raises_only_cron_error_on_arbitrary_text(expr: str) -> None:
    try:
        text = describe(expr)
    except CronError:
        return
    assert isinstance(text, str)
    assert text


_TIME = st.sampled_from(["*", "*/15", "0", "5,10", "10-50/7", "45/10", "H", "H(0-29)/10", "07"])
_HOUR = st.sampled_from(["*", "*/2", "0", "9,17", "9-17", "H", "H(0-11)", "23"])
_DOM = st.sampled_from(["*", "?", "1", "1,15", "*/2", "L", "LW", "15W", "1-7", "H", "1,L"])
_MONTH = st.sampled_from(["*", "1", "JAN-MAR", "mar,Jun", "*/3", "3/3", "H"])
_DOW = st.sampled_from(
    ["*", "?", "0", "7", "MON-FRI", "MON/2", "*/3", "5L", "5#3", "SAT-SUN", "H", "1,3#2", "2-6/2"]
)


@st.composite
def _expressions(draw: st.DrawFn) -> str:
    fields = [draw(_TIME), draw(_HOUR), draw(_DOM), draw(_MONTH), draw(_DOW)]
    if draw(st.booleans()):
        fields.insert(0, draw(_TIME))
    return " ".join(fields)


@given(_expressions() | st.sampled_from(["@yearly", "@monthly", "@weekly", "@daily", "@hourly"]))
def test_it_describes_every_valid_expression(expr: str) -> None:
    parse(expr, hash_key="task")  # the strategy only draws valid expressions
    text = describe(expr)
    assert text
    assert text[0].isupper()
