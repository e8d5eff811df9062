"""Parsing cron expressions into bitmasks, one field at a time.

Each field parser owns its error text, which always names the field and the bad
token (``minute: 99 is outside 0-59``). Every problem raises :class:`CronError`;
nothing else escapes for any string input.

Syntax (ARCHITECTURE §3): 5 fields ``min hour dom mon dow`` or 6 with seconds
first; ``*``, lists, ranges, steps, names in any case, Sunday as 0 or 7, the
``@`` macros, ``L``/``LW``/``15W`` in day-of-month, ``5L``/``5#3`` in
day-of-week, ``?`` as ``*`` in the day fields, and Jenkins ``H``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from cronwarden.cron.days import ALL_DAYS, ALL_WEEKDAYS, DaySpec, ever_fires
from cronwarden.errors import CronError

MACROS = MappingProxyType(
    {
        "@yearly": "0 0 1 1 *",
        "@annually": "0 0 1 1 *",
        "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *",
        "@midnight": "0 0 * * *",
        "@hourly": "0 * * * *",
    }
)

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


_NO_NAMES: MappingProxyType[str, int] = MappingProxyType({})


@dataclass(frozen=True, slots=True, eq=False)  # one instance per field: compared by identity
class Kind:
    """One field of the expression: its name, bounds and value names."""

    index: int
    name: str
    lo: int
    hi: int
    names: MappingProxyType[str, int]
    hash_lo: int  # `H` picks from hash_lo..hash_hi unless given a range
    hash_hi: int
    #: every plain spelling of a value ("5", "05", "MON") → the value
    values: MappingProxyType[str, int] = field(default_factory=lambda: _NO_NAMES)

    def __post_init__(self) -> None:
        table = dict(self.names)
        for value in range(self.lo, self.hi + 1):
            table[str(value)] = table[f"{value:02d}"] = value
        object.__setattr__(self, "values", MappingProxyType(table))

    @property
    def every(self) -> int:
        return ((2 << self.hi) - 1) ^ ((1 << self.lo) - 1)


SECOND = Kind(0, "second", 0, 59, _NO_NAMES, 0, 59)
MINUTE = Kind(1, "minute", 0, 59, _NO_NAMES, 0, 59)
HOUR = Kind(2, "hour", 0, 23, _NO_NAMES, 0, 23)
# Jenkins hashes day-of-month over 1-28 so that every month has the day.
DAY_OF_MONTH = Kind(3, "day-of-month", 1, 31, _NO_NAMES, 1, 28)
MONTH = Kind(4, "month", 1, 12, MappingProxyType({n: i + 1 for i, n in enumerate(_MONTHS)}), 1, 12)
# Day-of-week parses over 0-7 (7 is Sunday again) so that steps run over 0-7.
DAY_OF_WEEK = Kind(
    5, "day-of-week", 0, 7, MappingProxyType({n: i for i, n in enumerate(_DAYS)}), 0, 6
)
_NTH = Kind(5, "day-of-week #n", 1, 5, _NO_NAMES, 1, 5)  # its values table only


class Fields(NamedTuple):
    """A compiled expression: bitmasks per field plus the day rule.

    ``fixed_time`` is Vixie cron's distinction for DST: true when neither the
    minute nor the hour field starts with ``*``.
    """

    seconds: int
    minutes: int
    hours: int
    months: int
    days: DaySpec
    fixed_time: bool
    has_seconds: bool


def _fail(kind: Kind, message: str) -> CronError:
    return CronError(f"{kind.name}: {message}")


def _value(token: str, kind: Kind) -> int:
    value = kind.values.get(token)
    if value is not None:
        return value
    if token.isdigit() and token.isascii():
        value = _small_int(token, kind.hi + 1)
        if not kind.lo <= value <= kind.hi:
            shown = token if len(token) < 20 else token[:20] + "..."
            raise _fail(kind, f"{shown} is outside {kind.lo}-{kind.hi}")
        return value
    named = kind.names.get(token)
    if named is not None:
        return named
    if not token:
        raise _fail(kind, "a value is missing")
    what = "a number" if not kind.names else f"a {kind.name.split('-')[-1]} name or number"
    raise _fail(kind, f"{token!r} is not {what}")


_STEPS = MappingProxyType({str(step): step for step in range(1, 64)})


def _small_int(digits: str, too_big: int) -> int:
    """``int(digits)``, or ``too_big`` for huge values (never parse thousands of digits)."""
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) < 8 else too_big


def _step(text: str, kind: Kind) -> int:
    common = _STEPS.get(text)
    if common is not None:
        return common
    if not (text.isdigit() and text.isascii()):
        raise _fail(kind, f"step {text!r} is not a number")
    step = _small_int(text, 10**8)
    if step < 1:
        raise _fail(kind, "a step must be at least 1")
    return step


def _hash(hash_key: str | None, kind: Kind) -> int:
    if hash_key is None:
        raise _fail(kind, "H needs a hash key (the task id); pass hash_key=")
    key = f"{hash_key}\x00{kind.index}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _hashed_bounds(base: str, kind: Kind) -> tuple[int, int]:
    if base == "H":
        return kind.hash_lo, kind.hash_hi
    if not (base.startswith("H(") and base.endswith(")")):
        raise _fail(kind, f"{base!r} is not H or H(a-b)")
    first, dash, last = base[2:-1].partition("-")
    if not dash:
        raise _fail(kind, f"{base!r} needs a range, as in H(0-29)")
    return _bounds(_value(first, kind), _value(last, kind), kind)


def _bounds(lo: int, hi: int, kind: Kind) -> tuple[int, int]:
    if hi < lo:
        raise _fail(kind, f"range {lo}-{hi} is backwards (ranges do not wrap around)")
    return lo, hi


#: ``_COMBS[s]`` has every ``s``-th bit set from bit 0 through 63 (no field goes past 59).
_COMBS = (0, *(sum(1 << bit for bit in range(0, 64, step)) for step in range(1, 64)))


def _range_bits(lo: int, hi: int, step: int) -> int:
    span = ((2 << hi) - 1) ^ ((1 << lo) - 1)
    if step == 1:
        return span
    return (_COMBS[step] << lo) & span if step < len(_COMBS) else 1 << lo


def _item_bits(item: str, kind: Kind, hash_key: str | None) -> int:
    """Bits of one list item: ``*``, ``?``, ``H``, ``a``, ``a-b``, each with ``/step``."""
    base, slash, step_text = item.partition("/")
    step = _step(step_text, kind) if slash else 1
    if base == "*":
        lo, hi = kind.lo, kind.hi
    elif base.startswith("H"):
        lo, hi = _hashed_bounds(base, kind)
        width = min(step, hi - lo + 1) if slash else hi - lo + 1
        lo += _hash(hash_key, kind) % width
        if not slash:
            hi = lo
    else:
        first, dash, last = base.partition("-")
        lo = _value(first, kind)
        if dash:
            # `MON-SUN` means Monday through Sunday: a named Sunday ending a range is 7.
            named_sunday = kind is DAY_OF_WEEK and last == "SUN" and lo > 0
            hi = 7 if named_sunday else _value(last, kind)
            lo, hi = _bounds(lo, hi, kind)
        else:
            hi = kind.hi if slash else lo
    return _range_bits(lo, hi, step)


def _items(text: str, kind: Kind) -> list[str]:
    items = text.split(",")
    if "" in items:
        raise _fail(kind, f"empty item in list {text!r}")
    return items


def field_bits(text: str, kind: Kind, hash_key: str | None) -> int:
    """Bitmask of the values a plain field allows (bit ``v`` set = value ``v``)."""
    if text == "*":
        return kind.every
    value = kind.values.get(text)
    if value is not None and kind is not DAY_OF_WEEK:
        return 1 << value
    return _list_bits(text, kind, hash_key)


def _list_bits(text: str, kind: Kind, hash_key: str | None) -> int:
    if "," not in text:
        return _item_bits(text, kind, hash_key)
    bits = 0
    for item in _items(text, kind):
        bits |= _item_bits(item, kind, hash_key)
    return bits


def _dom_items(text: str, hash_key: str | None) -> tuple[int, bool, bool, int]:
    if text in ("*", "?"):
        return ALL_DAYS, False, False, 0
    plain, last, last_weekday, nearest = 0, False, False, 0
    for item in _items(text, DAY_OF_MONTH):
        if item == "L":
            last = True
        elif item == "LW":
            last_weekday = True
        elif item.endswith("W") and item[:-1].isdigit():
            nearest |= 1 << _value(item[:-1], DAY_OF_MONTH)
        elif "L" in item or "W" in item:
            raise _fail(DAY_OF_MONTH, f"{item!r} is not L, LW or nW (as in 15W)")
        else:
            plain |= _item_bits(item, DAY_OF_MONTH, hash_key)
    return plain, last, last_weekday, nearest


def _dow_items(text: str, hash_key: str | None) -> tuple[int, int, tuple[tuple[int, int], ...]]:
    if text in ("*", "?"):
        return ALL_WEEKDAYS, 0, ()
    plain, last, nth_list = 0, 0, []
    for item in _items(text, DAY_OF_WEEK):
        weekday_text, hash_sign, nth_text = item.partition("#")
        if hash_sign:
            nth = _NTH.values.get(nth_text)
            if nth is None:
                raise _fail(DAY_OF_WEEK, f"#{nth_text} in {item!r} must be #1 to #5")
            nth_list.append((_value(weekday_text, DAY_OF_WEEK) % 7, nth))
        elif item.endswith("L") and item != "L":
            last |= 1 << (_value(item[:-1], DAY_OF_WEEK) % 7)
        elif item == "L":
            raise _fail(DAY_OF_WEEK, "'L' needs a weekday before it, as in 5L (last Friday)")
        else:
            plain |= _item_bits(item, DAY_OF_WEEK, hash_key)
    folded = (plain | (plain >> 7)) & 0x7F  # 7 is Sunday, as is 0
    return folded, last, tuple(sorted(set(nth_list)))


def _is_star(text: str) -> bool:
    return text.startswith(("*", "?"))


_EVERY_DAY = DaySpec(dom=ALL_DAYS, dow=ALL_WEEKDAYS)


def _day_spec(dom_text: str, dow_text: str, hash_key: str | None) -> DaySpec:
    if dom_text == "*" and dow_text == "*":
        return _EVERY_DAY
    dom, last, last_weekday, nearest = _dom_items(dom_text, hash_key)
    dow, dow_last, nth = _dow_items(dow_text, hash_key)
    and_rule = _is_star(dom_text) or _is_star(dow_text)
    return DaySpec(dom, dow, last, last_weekday, nearest, dow_last, nth, and_rule)


def split_expression(expr: str) -> list[str]:
    """The expression's fields, upper-cased, with macros expanded; 5 or 6 of them."""
    if not isinstance(expr, str):
        raise CronError(f"expression: expected a string, got {type(expr).__name__}")
    if not expr.isascii():
        bad = next(char for char in expr if not char.isascii())
        raise CronError(f"expression: {bad!r} is not a cron character (only ASCII is)")
    stripped = expr.strip()
    if stripped.startswith("@"):
        expansion = MACROS.get(stripped.lower())
        if expansion is None:
            known = ", ".join(MACROS)
            raise CronError(f"expression: unknown macro {stripped[:40]!r} (known: {known})")
        stripped = expansion
    parts = stripped.upper().split()
    if len(parts) not in (5, 6):
        raise CronError(
            f"expression: expected 5 fields (minute hour day-of-month month day-of-week) "
            f"or 6 with seconds first, got {len(parts)}"
        )
    return parts


def compile_fields(expr: str, hash_key: str | None = None) -> Fields:
    """Compile ``expr``; raise :class:`CronError` when it is invalid or never fires."""
    parts = split_expression(expr)
    has_seconds = len(parts) == 6
    if not has_seconds:
        parts.insert(0, "0")
    second, minute, hour, dom, month, dow = parts
    months = field_bits(month, MONTH, hash_key)
    days = _day_spec(dom, dow, hash_key)
    if not ever_fires(days, months):
        raise CronError(
            f"expression: {expr.strip()!r} never fires "
            f"(day-of-month {dom} does not occur in month {month})"
        )
    return Fields(
        field_bits(second, SECOND, hash_key),
        field_bits(minute, MINUTE, hash_key),
        field_bits(hour, HOUR, hash_key),
        months,
        days,
        not _is_star(minute) and not _is_star(hour),  # fixed_time
        has_seconds,
    )


__all__ = [
    "MACROS",
    "Fields",
    "Kind",
    "compile_fields",
    "field_bits",
    "split_expression",
]
