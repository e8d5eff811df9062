"""English descriptions of cron expressions, in the style of cron-descriptor.

>>> describe("0 9 * * MON-FRI")
'At 09:00, Monday through Friday'
>>> describe("0 0 1,15 * MON")
'At 00:00 on day 1 and 15 of the month, or on Monday'

The text follows the fields as written (a range reads "a through b", a step
"every 15 minutes" or "every 2nd day"); day-of-week steps are spelled out,
since they run over 0-7 (``MON/2`` is Monday, Wednesday, Friday and Sunday).
The day rule is Debian/Vixie cron's: two restricted day fields join with "or",
and when either starts with ``*`` the weekday becomes a condition ("if it is").
``H`` fields read as hashed: their value depends on a task id we do not have.
"""

from __future__ import annotations

from math import prod
from typing import NamedTuple

from cronwarden.cron.fields import (
    DAY_OF_MONTH,
    DAY_OF_WEEK,
    HOUR,
    MINUTE,
    MONTH,
    SECOND,
    Kind,
    compile_fields,
    split_expression,
)

_MONTHS = "January February March April May June July August September October November December"
_MONTH_NAMES = ("", *_MONTHS.split())
_DAY_NAMES = (*"Sunday Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split(),)  # 0-7
_NTH = ("", "first", "second", "third", "fourth", "fifth")
_MAX_TIMES = 8  # list at most this many clock times ("At 09:00 and 17:00")


class _Unit(NamedTuple):
    """How one field reads: ``lead`` and ``label`` go before a group of plain values."""

    kind: Kind
    name: str
    plural: str
    lead: str = ""
    label: str = ""
    names: tuple[str, ...] = ()
    ordinal: bool = False  # "every 2nd day" rather than "every 2 days"


_SECOND = _Unit(SECOND, "second", "seconds", "at ", "second ")
_MINUTE = _Unit(MINUTE, "minute", "minutes", "at ", "minute ")
_HOUR = _Unit(HOUR, "hour", "hours", "during ", "hour ")
_DOM = _Unit(DAY_OF_MONTH, "day", "days", label="day ", ordinal=True)
_MONTH = _Unit(MONTH, "month", "months", "in ", names=_MONTH_NAMES, ordinal=True)
_DOW = _Unit(DAY_OF_WEEK, "day of the week", "days of the week", names=_DAY_NAMES, ordinal=True)


def describe(expr: str) -> str:
    """Describe ``expr`` in English; raise :class:`CronError` exactly when ``parse`` would."""
    compile_fields(expr, hash_key="describe")  # validates; any hash key will do for `H`
    parts = split_expression(expr)
    if len(parts) == 5:
        parts.insert(0, "0")
    second, minute, hour, dom, month, dow = parts
    text = _time(second, minute, hour)
    text += _days(dom.replace("?", "*"), dow.replace("?", "*")) + _months(month)
    return text[0].upper() + text[1:]


# -- small helpers -------------------------------------------------------------


def _join(items: list[str], word: str = "and") -> str:
    if len(items) < 2:
        return "".join(items)
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


def _ordinal(n: int) -> str:
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{'th' if n % 100 in (11, 12, 13) else suffix}"


def _count(text: str) -> int:
    """A step, read as the engine reads it (``fields._step``)."""
    return int(text) if len(text) < 8 else 10**8


def _num(token: str, kind: Kind) -> int:
    value = kind.values.get(token)
    return int(token) if value is None else value


def _fmt(token: str, unit: _Unit) -> str:
    value = _num(token, unit.kind)
    return unit.names[value] if unit.names else str(value)


# -- time of day -----------------------------------------------------------------


def _time(second: str, minute: str, hour: str) -> str:
    times = _clock_times(second, minute, hour)
    if times:
        return f"at {_join(times)}"
    segments = [] if second == "0" else [_phrase(second, _SECOND)]
    # "* * * * * *" is every second, "0 */2 * * *" every 2 hours: the minute goes unsaid
    skip_minute = (minute == "*" and bool(segments)) or (
        minute == "0" and not segments and hour.startswith("*")
    )
    if not skip_minute:
        segments.append(_phrase(minute, _MINUTE))
    if hour != "*" or not segments:
        segments.append(_phrase(hour, _HOUR))
    return ", ".join(segments)


def _clock_times(second: str, minute: str, hour: str) -> list[str]:
    """``["09:00", "17:00"]`` when every time field is a short list of plain values."""
    fields = ((hour, HOUR), (minute, MINUTE), (second, SECOND))
    if any(char in text for text, _ in fields for char in "*-/H"):
        return []
    hours, minutes, seconds = (
        sorted({_num(token, kind) for token in text.split(",")}) for text, kind in fields
    )
    if prod(map(len, (hours, minutes, seconds))) > _MAX_TIMES:
        return []
    show_seconds = any(seconds)
    return [
        f"{h:02d}:{m:02d}" + (f":{s:02d}" if show_seconds else "")
        for h in hours
        for m in minutes
        for s in seconds
    ]


# -- one field as a phrase ---------------------------------------------------------


def _phrase(text: str, unit: _Unit) -> str:
    plain, other = _items(text, unit)
    group = [f"{unit.lead}{unit.label}{_join(plain)}"] if plain else []
    return _join(group + other)


def _items(text: str, unit: _Unit) -> tuple[list[str], list[str]]:
    """Plain values and ranges ("5", "10 through 20"), then every other item."""
    plain: list[str] = []
    other: list[str] = []
    for item in text.split(","):
        base, slash, step = item.partition("/")
        if base.startswith("H"):
            other.append(_hashed(base, step, unit))
        elif slash or base == "*":
            other.append(_stepped(base, _count(step) if slash else 1, unit))
        else:
            plain.append(_span(base, unit))
    return plain, other


def _span(base: str, unit: _Unit) -> str:
    first, dash, last = base.partition("-")
    return f"{_fmt(first, unit)} through {_fmt(last, unit)}" if dash else _fmt(first, unit)


def _every(step: int, unit: _Unit) -> str:
    if step == 1:
        return f"every {unit.name}"
    if unit.ordinal:
        return f"every {_ordinal(step)} {unit.name}"
    return f"every {step} {unit.plural}"


def _stepped(base: str, step: int, unit: _Unit) -> str:
    every = _every(step, unit)
    if base == "*":
        return every
    first, dash, last = base.partition("-")
    end = _fmt(last, unit) if dash else _fmt(str(unit.kind.hi), unit)
    return f"{every} from {unit.label}{_fmt(first, unit)} through {end}"


def _hashed(base: str, step: str, unit: _Unit) -> str:
    within = ""
    if base != "H":  # H(a-b)
        first, _, last = base[2:-1].partition("-")
        within = f" within {unit.plural} {_fmt(first, unit)}-{_fmt(last, unit)}"
    if step:
        return f"{_every(_count(step), unit)} from a hashed start{within}"
    return f"{unit.lead}a hashed {unit.name}{within}"


# -- days and months ---------------------------------------------------------------


def _days(dom: str, dow: str) -> str:
    """Vixie cron's rule (``cron.c``): OR when both fields are restricted, else AND."""
    if dow == "*":
        return "" if dom == "*" else _on_month_days(dom)
    weekdays, plain = _weekday_items(dow)
    if dom == "*":
        return _weekdays_only(dow, weekdays, plain)
    if dom.startswith("*") or dow.startswith("*"):
        condition = [f"a {day}" if day in _DAY_NAMES else day for day in weekdays]
        return f"{_on_month_days(dom)}, if it is {_join(condition, 'or')}"
    return f"{_on_month_days(dom)}, or on {_join(weekdays)}"


def _on_month_days(dom: str) -> str:
    items = dom.split(",")
    rest = ",".join(item for item in items if not item.endswith(("L", "W")))
    special = [_month_day(item) for item in items if item.endswith(("L", "W"))]
    return f" on {_join(([_phrase(rest, _DOM)] if rest else []) + special)} of the month"


def _month_day(item: str) -> str:
    if item == "L":
        return "the last day"
    if item == "LW":
        return "the last weekday"
    return f"the weekday nearest day {_num(item[:-1], DAY_OF_MONTH)}"


def _weekday_items(dow: str) -> tuple[list[str], bool]:
    """The weekday phrases, and whether they are all plain days (no ``#``, ``L``, ``H``)."""
    phrases: list[str] = []
    plain = True
    for item in dow.split(","):
        if item.startswith("H") or "#" in item or item.endswith("L"):
            phrases.append(_weekday_special(item))
            plain = False
        elif "/" in item or item == "*":
            phrases.extend(_weekday_steps(item))
        else:
            phrases.append(_weekday_span(item))
    return phrases, plain


def _weekday_special(item: str) -> str:
    if item.startswith("H"):
        base, _, step = item.partition("/")
        return _hashed(base, step, _DOW)
    if item.endswith("L"):
        return f"the last {_fmt(item[:-1], _DOW)} of the month"
    day, _, nth = item.partition("#")
    return f"the {_NTH[_num(nth, DAY_OF_WEEK)]} {_fmt(day, _DOW)} of the month"


def _weekday_bounds(base: str, default_hi: int) -> tuple[int, int]:
    first, dash, last = base.partition("-")
    if not dash:
        return _num(first, DAY_OF_WEEK), default_hi
    hi = 7 if last == "SUN" else _num(last, DAY_OF_WEEK)  # as the engine: MON-SUN ends at 7
    return _num(first, DAY_OF_WEEK), hi


def _weekday_steps(item: str) -> list[str]:
    """Steps run over 0-7, so ``MON/2`` is Monday, Wednesday, Friday and Sunday."""
    base, slash, step = item.partition("/")
    lo, hi = (0, 7) if base == "*" else _weekday_bounds(base, 7)
    days = range(lo, hi + 1, _count(step) if slash else 1)
    return list(dict.fromkeys(_DAY_NAMES[day] for day in days))


def _weekday_span(item: str) -> str:
    lo, hi = _weekday_bounds(item, -1)
    if hi < 0:
        return _DAY_NAMES[lo]
    return f"{_DAY_NAMES[lo]} through {_DAY_NAMES[6 if (lo, hi) == (0, 7) else hi]}"


def _weekdays_only(dow: str, weekdays: list[str], plain: bool) -> str:
    if not plain:
        return f" on {_join(weekdays)}"
    if "-" in dow and not any(char in dow for char in ",/"):
        return f", {weekdays[0]}"  # one range: ", Monday through Friday"
    return f", only on {_join(weekdays)}"


def _months(month: str) -> str:
    if month == "*":
        return ""
    plain, other = _items(month, _MONTH)
    if other:
        return f", {_join(plain + other)}"
    if len(plain) == 1 and "-" in month:
        return f", {plain[0]}"
    return f", only in {_join(plain)}"
