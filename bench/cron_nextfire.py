"""Cron engine benchmark: cronwarden against cronsim, croniter and APScheduler 3.x.

Measures, in one run and interleaved (every library back to back for each
expression x zone, several rounds, median and best kept per library):

* next fire: microseconds per fire over N successive fires from 2026-01-01;
* parse: cronwarden cold (``clear_cache()`` before every parse) and cached,
  against ``CronSim(expr, dt)``, ``croniter(expr, dt)`` and APScheduler's
  ``CronTrigger`` construction;
* memory: bytes per compiled schedule (tracemalloc), before and after each
  schedule computed a fire.

Every library runs warm: one untimed pass over all fires precedes the timed
rounds. That pass also checks that each peer yields the same instants as
cronwarden; a row where it does not is flagged, never hidden.

Run ``python bench/cron_nextfire.py --help``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib.metadata
import json
import linecache
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from itertools import islice
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from croniter import croniter
from cronsim import CronSim

import cronwarden.cron
from cronwarden.cron import clear_cache, parse
from cronwarden.cron import zones as cron_zones

# -- what is measured ---------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One expression, with a peer's own spelling where it names the same schedule differently.

    ``croniter_expr``: croniter's spelling (``L5`` for the last Friday).
    ``aps_fields``: ``CronTrigger(**fields)`` instead of ``from_crontab`` (seconds, ``last``,
    ``3rd fri``); APScheduler 3 numbers weekdays from Monday, so weekdays are always names.
    """

    expr: str
    note: str
    croniter_expr: str | None = None
    aps_fields: dict[str, str] | None = None
    hash_key: str | None = None


CASES: tuple[Case, ...] = (
    Case("* * * * *", "every minute"),
    Case("*/5 * * * *", "every 5 minutes"),
    Case("*/15 * * * *", "every 15 minutes"),
    Case("10-50/7 * * * *", "range with step"),
    Case("15,45 * * * *", "minute list"),
    Case("0 * * * *", "hourly"),
    Case("0 */2 * * *", "every 2 hours"),
    Case("0 9-17 * * *", "hourly, 9-17"),
    Case("*/30 9-17 * * MON-FRI", "business hours"),
    Case("0 9 * * MON-FRI", "weekdays"),
    Case("0 12 * * SAT,SUN", "weekends"),
    Case("0 0 * * *", "daily"),
    Case("0 9,21 * * *", "twice daily"),
    Case("0 8,12,18 * * *", "hour list"),
    Case("0 0 * * SUN", "weekly"),
    Case("5 4 * * SUN", "weekly, 04:05"),
    Case("0 0 1 * *", "monthly"),
    Case("0 0 1,15 * *", "semi-monthly"),
    Case("0 0 1 JAN,APR,JUL,OCT *", "quarterly (list)"),
    Case("0 6 1 */3 *", "quarterly (step)"),
    Case("0 0 1 1 *", "yearly"),
    Case("0 0 29 2 *", "Feb 29"),
    Case("0 0 L * *", "last day", aps_fields={"minute": "0", "hour": "0", "day": "last"}),
    Case("0 0 LW * *", "last weekday"),
    Case("0 0 15W * *", "nearest weekday to 15th"),
    Case(
        "0 0 * * 5L",
        "last Friday",
        croniter_expr="0 0 * * L5",
        aps_fields={"minute": "0", "hour": "0", "day": "last fri"},
    ),
    Case(
        "0 0 * * 5#3",
        "third Friday",
        aps_fields={"minute": "0", "hour": "0", "day": "3rd fri"},
    ),
    Case("*/10 * * * * *", "every 10 s (6 fields)", aps_fields={"second": "*/10"}),
    Case(
        "30 */5 * * * *",
        "6 fields, :30 every 5 min",
        aps_fields={"second": "30", "minute": "*/5"},
    ),
    Case("30 2 * * *", "02:30 (spring gap)"),
    Case("30 1 * * *", "01:30 (fall fold)"),
    Case("0 2 * * SUN", "Sun 02:00 (gap)"),
    Case("*/20 1-3 * * *", "every 20 min, 1-3h"),
    Case("H H * * *", "H daily", hash_key="nightly-report"),
    Case("H/15 * * * *", "H/15", hash_key="queue-poller"),
    Case("@daily", "macro"),
)

ZONES = ("UTC", "America/New_York")
#: Zones for the memory measurement: fixed, and three with offset changes.
MEMORY_ZONES = ("UTC", "America/New_York", "Europe/Berlin", "Australia/Sydney")
MEMORY_KEYS = 8  # distinct hash keys (task ids) per expression x zone
PARSE_ZONE = "America/New_York"

TARGETS = {
    "next_vs_cronsim": 5.0,
    "next_vs_croniter": 10.0,
    "parse_vs_cronsim": 3.0,
    "bytes_per_schedule": 1024.0,
}


def start_of(zone: tzinfo) -> datetime:
    return datetime(2026, 1, 1, tzinfo=zone)


# -- the four libraries ------------------------------------------------------------


def cronwarden_fires(case: Case, zone: tzinfo, start: datetime) -> Iterator[datetime]:
    return parse(case.expr, zone, hash_key=case.hash_key).iter_after(start)


def cronsim_fires(case: Case, zone: tzinfo, start: datetime) -> Iterator[datetime]:
    return CronSim(case.expr, start)


def croniter_make(case: Case, start: datetime) -> Any:
    expr = case.croniter_expr or case.expr
    seconds_first = len(expr.split()) == 6
    return croniter(expr, start, second_at_beginning=seconds_first)


def croniter_fires(case: Case, zone: tzinfo, start: datetime) -> Iterator[datetime]:
    get_next = croniter_make(case, start).get_next
    while True:
        yield get_next(datetime)


def aps_make(case: Case, zone: tzinfo) -> CronTrigger:
    if case.aps_fields is not None:
        return CronTrigger(timezone=zone, **case.aps_fields)
    return CronTrigger.from_crontab(case.expr, timezone=zone)


def aps_fires(case: Case, zone: tzinfo, start: datetime) -> Iterator[datetime]:
    trigger = aps_make(case, zone)
    # get_next_fire_time is inclusive of `now`; the others are strictly after start.
    fire = trigger.get_next_fire_time(None, start + timedelta(microseconds=1))
    while fire is not None:
        yield fire
        fire = trigger.get_next_fire_time(fire, fire)  # feeds back last fire + 1 µs


FireSource = Callable[[Case, tzinfo, datetime], Iterator[datetime]]


@dataclass(frozen=True)
class Library:
    name: str
    dist: str  # distribution name, for the version
    fires: FireSource
    construct: Callable[[Case, tzinfo, datetime], object]


LIBRARIES: tuple[Library, ...] = (
    Library(
        "cronwarden",
        "cronwarden",
        cronwarden_fires,
        lambda c, z, s: parse(c.expr, z, hash_key=c.hash_key),
    ),
    Library("cronsim", "cronsim", cronsim_fires, lambda c, z, s: CronSim(c.expr, s)),
    Library("croniter", "croniter", croniter_fires, lambda c, z, s: croniter_make(c, s)),
    Library("apscheduler", "APScheduler", aps_fires, lambda c, z, s: aps_make(c, z)),
)
PEERS = tuple(lib.name for lib in LIBRARIES[1:])
BASE = LIBRARIES[0].name

# -- timing helpers ----------------------------------------------------------------


def consume(iterator: Iterator[datetime], count: int) -> None:
    deque(islice(iterator, count), maxlen=0)


def timed_fires(lib: Library, case: Case, zone: tzinfo, count: int) -> float:
    """Seconds for building the iterator and taking ``count`` fires (GC off)."""
    start = start_of(zone)
    gc.disable()
    try:
        t0 = time.perf_counter()
        consume(lib.fires(case, zone, start), count)
        return time.perf_counter() - t0
    finally:
        gc.enable()


def collect(lib: Library, case: Case, zone: tzinfo, count: int) -> list[float] | str:
    """The first ``count`` fires as Unix times, or why this library cannot run the case."""
    try:
        fires = [dt.timestamp() for dt in islice(lib.fires(case, zone, start_of(zone)), count)]
    except Exception as exc:  # a peer that cannot parse the case: "n/a"
        return f"{type(exc).__name__}: {str(exc)[:70]}"
    return fires if len(fires) == count else f"stopped after {len(fires)} fires"


def first_difference(expected: list[float], got: list[float], zone: tzinfo) -> str | None:
    for index, (want, have) in enumerate(zip(expected, got, strict=True)):
        if want != have:
            show = [datetime.fromtimestamp(t, zone).isoformat() for t in (want, have)]
            return f"fire #{index}: cronwarden {show[0]}, peer {show[1]}"
    return None


def geomean(values: Sequence[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else math.nan


def rotated(items: Sequence[Library], by: int) -> list[Library]:
    shift = by % len(items)
    return [*items[shift:], *items[:shift]]


# -- next fire -----------------------------------------------------------------------


@dataclass
class Row:
    case: Case
    zone: str
    na: dict[str, str] = field(default_factory=dict)  # library -> why it cannot run
    differs: dict[str, str] = field(default_factory=dict)  # library -> first differing fire
    times: dict[str, list[float]] = field(default_factory=dict)  # library -> µs/fire per round

    def us(self, lib: str, how: str = "median") -> float | None:
        samples = self.times.get(lib)
        if not samples:
            return None
        return statistics.median(samples) if how == "median" else min(samples)

    def ratio(self, peer: str, how: str = "median") -> float | None:
        mine, theirs = self.us(BASE, how), self.us(peer, how)
        return None if mine is None or theirs is None else theirs / mine


def warm_and_check(row: Row, zone: tzinfo, count: int) -> None:
    """The untimed warm-up pass: every library once over all fires, checked against cronwarden."""
    expected = collect(LIBRARIES[0], row.case, zone, count)
    if isinstance(expected, str):
        raise SystemExit(f"cronwarden failed on {row.case.expr!r}: {expected}")
    for lib in LIBRARIES[1:]:
        got = collect(lib, row.case, zone, count)
        if isinstance(got, str):
            row.na[lib.name] = got
            continue
        difference = first_difference(expected, got, zone)
        if difference is not None:
            row.differs[lib.name] = difference


def time_row(row: Row, zone: tzinfo, count: int, rounds: int) -> None:
    runnable = [lib for lib in LIBRARIES if lib.name not in row.na]
    for number in range(rounds):
        for lib in rotated(runnable, number):
            seconds = timed_fires(lib, row.case, zone, count)
            row.times.setdefault(lib.name, []).append(seconds / count * 1e6)


def bench_next_fire(count: int, rounds: int) -> list[Row]:
    rows = []
    for case in CASES:
        for name in ZONES:
            zone = ZoneInfo(name)
            row = Row(case, name)
            warm_and_check(row, zone, count)
            time_row(row, zone, count, rounds)
            rows.append(row)
            print(".", end="", flush=True)
    print()
    return rows


def next_fire_geomeans(rows: list[Row], how: str, agreeing_only: bool) -> dict[str, float]:
    means = {}
    for peer in PEERS:
        ratios = [
            ratio
            for row in rows
            if (ratio := row.ratio(peer, how)) is not None
            and not (agreeing_only and peer in row.differs)
        ]
        means[peer] = geomean(ratios)
    return means


# -- parse -----------------------------------------------------------------------------


def timer_overhead() -> float:
    samples = []
    for _ in range(2000):
        t0 = time.perf_counter()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def time_cold_parse(case: Case, zone: tzinfo, calls: int, overhead: float) -> float:
    """µs per cronwarden parse right after clear_cache(); each call timed alone."""
    total = 0.0
    for _ in range(calls):
        clear_cache()
        t0 = time.perf_counter()
        parse(case.expr, zone, hash_key=case.hash_key)
        total += time.perf_counter() - t0 - overhead
    return total / calls * 1e6


def time_construct(make: Callable[[], object], calls: int) -> float:
    """µs per call of ``make``, timed as one batch."""
    t0 = time.perf_counter()
    for _ in range(calls):
        make()
    return (time.perf_counter() - t0) / calls * 1e6


@dataclass
class ParseRow:
    case: Case
    na: dict[str, str] = field(default_factory=dict)
    times: dict[str, list[float]] = field(default_factory=dict)  # column -> µs per round

    def us(self, column: str) -> float | None:
        samples = self.times.get(column)
        return statistics.median(samples) if samples else None


PARSE_COLUMNS = ("cold", "cached", *PEERS)


def parse_makers(case: Case, zone: tzinfo) -> dict[str, Callable[[], object]]:
    start = start_of(zone)
    makers: dict[str, Callable[[], object]] = {}
    for lib in LIBRARIES:
        column = "cached" if lib.name == BASE else lib.name
        makers[column] = lambda lib=lib: lib.construct(case, zone, start)
    return makers


def parse_timers(
    case: Case, zone: tzinfo, calls: int, overhead: float, row: ParseRow
) -> dict[str, Callable[[], float]]:
    """column -> a function returning µs per call; a peer that cannot parse goes to ``row.na``."""
    timers: dict[str, Callable[[], float]] = {
        "cold": lambda: time_cold_parse(case, zone, calls, overhead)
    }
    for column, make in parse_makers(case, zone).items():
        try:
            make()
        except Exception as exc:  # the peer cannot parse it: "n/a"
            row.na[column] = type(exc).__name__
        else:
            timers[column] = lambda make=make: time_construct(make, calls)
    return timers


def parse_row(case: Case, zone: tzinfo, calls: int, rounds: int, overhead: float) -> ParseRow:
    row = ParseRow(case)
    timers = parse_timers(case, zone, calls, overhead, row)
    columns = list(timers)
    for number in range(rounds):
        shift = number % len(columns)
        gc.disable()
        try:
            for column in columns[shift:] + columns[:shift]:
                row.times.setdefault(column, []).append(timers[column]())
        finally:
            gc.enable()
    return row


def bench_parse(calls: int, rounds: int) -> list[ParseRow]:
    zone = ZoneInfo(PARSE_ZONE)
    overhead = timer_overhead()
    return [parse_row(case, zone, calls, rounds, overhead) for case in CASES]


def parse_geomeans(rows: list[ParseRow]) -> dict[str, dict[str, float]]:
    """Geometric means of peer / cronwarden, for cold and cached cronwarden parses."""
    means: dict[str, dict[str, float]] = {}
    for mine in ("cold", "cached"):
        means[mine] = {}
        for peer in PEERS:
            ratios = [
                theirs / ours
                for row in rows
                if (theirs := row.us(peer)) is not None and (ours := row.us(mine)) is not None
            ]
            means[mine][peer] = geomean(ratios)
    return means


# -- memory ------------------------------------------------------------------------------


def memory_specs() -> list[tuple[str, ZoneInfo, str]]:
    return [
        (case.expr, ZoneInfo(name), f"task-{key}")
        for case in CASES
        for name in MEMORY_ZONES
        for key in range(MEMORY_KEYS)
    ]


def top_files(snapshot: tracemalloc.Snapshot, limit: int = 5) -> list[tuple[str, int]]:
    stats = snapshot.statistics("filename")
    return [
        ("/".join(Path(stat.traceback[0].filename).parts[-2:]), stat.size) for stat in stats[:limit]
    ]


def warm_zone_tables() -> None:
    """Compute each zone's transition tables (global, shared) before measuring."""
    for name in MEMORY_ZONES:
        zone = ZoneInfo(name)
        parse("* * * * *", zone).next_after(start_of(zone))
        parse("0 0 29 2 *", zone).next_after(start_of(zone))


def bench_memory() -> dict[str, Any]:
    specs = memory_specs()
    warm_zone_tables()
    clear_cache()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    schedules = [parse(expr, zone, hash_key=key) for expr, zone, key in specs]
    compiled = tracemalloc.get_traced_memory()[0] - base
    compiled_by_file = top_files(tracemalloc.take_snapshot())
    for schedule in schedules:
        schedule.next_after(start_of(schedule.tz))
    gc.collect()
    after_fire = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return {
        "schedules": len(schedules),
        "distinct_expressions": len(CASES),
        "zones": list(MEMORY_ZONES),
        "hash_keys": MEMORY_KEYS,
        "bytes_compiled": compiled,
        "bytes_per_schedule_compiled": compiled / len(schedules),
        "bytes_after_one_fire": after_fire,
        "bytes_per_schedule_after_fire": after_fire / len(schedules),
        "compiled_by_file": compiled_by_file,
        "zone_table_bytes": zone_table_bytes(),
    }


def held_bytes() -> int:
    """Traced bytes still alive, less those allocated inside ``datetime.fromtimestamp``.

    Probing a zone calls ``datetime.fromtimestamp(t, tz)``, after which CPython keeps
    a varying number of small blocks alive (a few dozen to a few hundred); the caches
    hold none of them, and counting them would move the figure by 30 % between runs.
    """
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, module.__file__) for module in (linecache, tracemalloc)]
    )
    total = 0
    for stat in snapshot.statistics("lineno"):
        frame = stat.traceback[0]
        if "fromtimestamp(" not in linecache.getline(frame.filename, frame.lineno):
            total += stat.size
    return total


def zone_table_bytes() -> dict[str, float] | None:
    """Mean bytes per (zone, year) of the global, shared zone caches, for context.

    ``table``: the year's offset changes, held by ``transitions`` and ``_probe_year``;
    ``window``: the cached three-year window of instants that ``segment_at`` bisects.
    """
    caches = [getattr(cron_zones, name, None) for name in ("transitions", "_probe_year", "_window")]
    if not all(hasattr(cache, "cache_clear") for cache in caches):
        return None  # the engine changed how it caches zones
    transitions, _, window = caches
    zones = [ZoneInfo(name) for name in MEMORY_ZONES[1:]]
    years = range(2026, 2036)
    for cache in caches:
        cache.cache_clear()
    tracemalloc.start()
    held_bytes()  # the first call compiles the filters' patterns, and those stay cached
    base = held_bytes()
    for zone in zones:  # the years either side too, so that the windows add only themselves
        for year in range(years.start - 1, years.stop + 1):
            transitions(zone, year)
    tables = held_bytes() - base
    for zone in zones:
        for year in years:
            window(zone, year)
    windows = held_bytes() - base - tables
    tracemalloc.stop()
    return {
        "table": tables / (len(zones) * (len(years) + 2)),
        "window": windows / (len(zones) * len(years)),
    }


# -- machine -------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def engine_fingerprint() -> str:
    """Short hash of the cron engine's source, tying a result to the code it measured."""
    digest = hashlib.sha256()
    for path in sorted(Path(cronwarden.cron.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def machine_info() -> dict[str, Any]:
    versions = {}
    for dist in (*(lib.dist for lib in LIBRARIES), "tzdata"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "versions": versions,
        "engine_sha256": engine_fingerprint(),
    }


# -- output ----------------------------------------------------------------------------------


def fmt_us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}x"


def mark(row: Row, peer: str) -> str:
    return "*" if peer in row.differs else ""


def print_machine(info: dict[str, Any]) -> None:
    print(f"CPU     {info['cpu']} ({info['cpus']} CPUs)")
    print(f"Python  {info['python']} ({info['implementation']}, {info['platform']})")
    print("libs    " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    print(f"engine  src/cronwarden/cron/*.py sha256 {info['engine_sha256']}")


def print_next_table(rows: list[Row], count: int, rounds: int) -> None:
    print(f"\n== next fire: µs per fire, median of {rounds} rounds, {count} fires from 2026-01-01")
    print("   (warm: one untimed pass over all fires first; ratio = peer / cronwarden)")
    head = ("expression", "zone", "cw", "cronsim", "croniter", "aps", "cs/cw", "ci/cw", "ap/cw")
    print(f"{head[0]:<24}{head[1]:<9}" + "".join(f"{h:>9}" for h in head[2:]))
    for row in rows:
        zone = "UTC" if row.zone == "UTC" else "NY"
        cells = [fmt_us(row.us(lib.name)) for lib in LIBRARIES]
        cells += [fmt_ratio(row.ratio(peer)) + mark(row, peer) for peer in PEERS]
        print(f"{row.case.expr:<24}{zone:<9}" + "".join(f"{c:>9}" for c in cells))


def print_exceptions(rows: list[Row]) -> None:
    print("\n   n/a: the peer cannot parse the expression; that row is left out of its geo mean.")
    unsupported: dict[str, set[str]] = {}
    for row in rows:
        for peer, why in row.na.items():
            unsupported.setdefault(peer, set()).add(f"{row.case.expr!r} ({why.split(':')[0]})")
    for peer, items in unsupported.items():
        print(f"   {peer} n/a: " + ", ".join(sorted(items)))
    differing = [(row, peer) for row in rows for peer in row.differs]
    if differing:
        print("   *: the peer's fires differ from cronwarden's (timed and counted anyway):")
    for row, peer in differing:
        print(f"      {peer:<11} {row.case.expr!r} {row.zone}: {row.differs[peer]}")


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    met = value >= target if higher_is_better else value <= target
    return "PASS" if met else "FAIL"


def print_next_summary(rows: list[Row]) -> dict[str, Any]:
    summary = {
        "median": next_fire_geomeans(rows, "median", agreeing_only=False),
        "best": next_fire_geomeans(rows, "best", agreeing_only=False),
        "median_agreeing_rows": next_fire_geomeans(rows, "median", agreeing_only=True),
    }
    counts = {peer: sum(row.ratio(peer) is not None for row in rows) for peer in PEERS}
    print("\n   geometric mean of peer/cronwarden over the rows each peer runs:")
    for peer in PEERS:
        print(
            f"   {peer:<12} median {summary['median'][peer]:6.1f}x"
            f"   best {summary['best'][peer]:6.1f}x"
            f"   agreeing rows only {summary['median_agreeing_rows'][peer]:6.1f}x"
            f"   ({counts[peer]} of {len(rows)} rows)"
        )
    slower = [
        f"{row.case.expr!r} {row.zone} vs {peer} ({row.ratio(peer):.2f}x)"
        for row in rows
        for peer in PEERS
        if (row.ratio(peer) or math.inf) < 1
    ]
    print("   cronwarden slower than a peer: " + ("; ".join(slower) if slower else "none"))
    summary["slower_rows"] = slower
    return summary


def print_parse(rows: list[ParseRow], calls: int, rounds: int) -> dict[str, dict[str, float]]:
    print(f"\n== parse: µs per parse, {PARSE_ZONE}, median of {rounds} rounds x {calls} calls")
    print("   cold = clear_cache() before each parse (zone data stays loaded); cached = repeat")
    head = ("cw cold", "cw cached", "cronsim", "croniter", "aps", "cs/cold", "cs/cached")
    print(f"{'expression':<24}" + "".join(f"{h:>10}" for h in head))
    for row in rows:
        cells = [fmt_us(row.us(column)) for column in PARSE_COLUMNS]
        cold, cached, peer = row.us("cold"), row.us("cached"), row.us("cronsim")
        cells.append(fmt_ratio(None if peer is None or cold is None else peer / cold))
        cells.append(fmt_ratio(None if peer is None or cached is None else peer / cached))
        print(f"{row.case.expr:<24}" + "".join(f"{c:>10}" for c in cells))
    means = parse_geomeans(rows)
    print("\n   geometric mean of peer/cronwarden:")
    for mine, per_peer in means.items():
        print(
            f"   {mine:<7}" + "".join(f"  {peer} {value:7.1f}x" for peer, value in per_peer.items())
        )
    return means


def print_memory(memory: dict[str, Any]) -> None:
    print(
        f"\n== memory: {memory['schedules']} distinct schedules "
        f"({memory['distinct_expressions']} expressions x {len(memory['zones'])} zones x "
        f"{memory['hash_keys']} hash keys), tracemalloc"
    )
    print(f"   compiled:           {memory['bytes_per_schedule_compiled']:8.0f} B/schedule")
    print(f"   after one fire each: {memory['bytes_per_schedule_after_fire']:7.0f} B/schedule")
    print("   compiled, by file: " + ", ".join(f"{f} {b} B" for f, b in memory["compiled_by_file"]))
    zone_bytes = memory["zone_table_bytes"]
    if zone_bytes is not None:
        print(
            f"   zone caches (global, shared), per zone x year, not counted above: "
            f"offset changes {zone_bytes['table']:.0f} B, "
            f"segment window {zone_bytes['window']:.0f} B"
        )


def print_targets(targets: dict[str, tuple[float, float, bool]]) -> None:
    print("\n== targets (same run)")
    for name, (value, target, higher) in targets.items():
        sign = ">=" if higher else "<="
        result = verdict(value, target, higher)
        print(f"   {name:<34} {value:8.1f}  target {sign} {target:g}  {result}")


def collect_targets(
    next_summary: dict[str, Any], parse_means: dict[str, dict[str, float]], memory: dict[str, Any]
) -> dict[str, tuple[float, float, bool]]:
    median = next_summary["median"]
    return {
        "next fire vs cronsim (geo mean)": (median["cronsim"], TARGETS["next_vs_cronsim"], True),
        "next fire vs croniter (geo mean)": (median["croniter"], TARGETS["next_vs_croniter"], True),
        "parse cold vs cronsim (geo mean)": (
            parse_means["cold"]["cronsim"],
            TARGETS["parse_vs_cronsim"],
            True,
        ),
        "parse cached vs cronsim (geo mean)": (
            parse_means["cached"]["cronsim"],
            TARGETS["parse_vs_cronsim"],
            True,
        ),
        "bytes per schedule (after a fire)": (
            memory["bytes_per_schedule_after_fire"],
            TARGETS["bytes_per_schedule"],
            False,
        ),
    }


# -- JSON ------------------------------------------------------------------------------------


def row_json(row: Row) -> dict[str, Any]:
    return {
        "expression": row.case.expr,
        "note": row.case.note,
        "zone": row.zone,
        "us_per_fire_median": {lib.name: row.us(lib.name) for lib in LIBRARIES},
        "us_per_fire_best": {lib.name: row.us(lib.name, "best") for lib in LIBRARIES},
        "ratio_median": {peer: row.ratio(peer) for peer in PEERS},
        "na": row.na,
        "differs": row.differs,
    }


def parse_row_json(row: ParseRow) -> dict[str, Any]:
    return {
        "expression": row.case.expr,
        "us_median": {column: row.us(column) for column in PARSE_COLUMNS},
        "na": row.na,
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"\nwrote {path}")


# -- main ------------------------------------------------------------------------------------


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, 200 fires")
    parser.add_argument("--rounds", type=int, help="timed rounds per row (default 5)")
    parser.add_argument("--fires", type=int, help="successive fires per row (default 1000)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.fires = args.fires or (200 if args.quick else 1000)
    args.parse_calls = 50 if args.quick else 300
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = arguments(argv)
    began = time.perf_counter()
    info = machine_info()
    print_machine(info)
    print(f"\nnext fire: {len(CASES)} expressions x {len(ZONES)} zones, warm-up pass, then timing")
    rows = bench_next_fire(args.fires, args.rounds)
    print_next_table(rows, args.fires, args.rounds)
    print_exceptions(rows)
    next_summary = print_next_summary(rows)
    parse_rows = bench_parse(args.parse_calls, args.rounds)
    parse_means = print_parse(parse_rows, args.parse_calls, args.rounds)
    memory = bench_memory()
    print_memory(memory)
    targets = collect_targets(next_summary, parse_means, memory)
    print_targets(targets)
    elapsed = time.perf_counter() - began
    print(f"\ntotal {elapsed:.0f} s")
    if args.json:
        payload = {
            "machine": info,
            "config": {"fires": args.fires, "rounds": args.rounds, "zones": ZONES},
            "next_fire": [row_json(row) for row in rows],
            "next_fire_geomean": next_summary,
            "parse": [parse_row_json(row) for row in parse_rows],
            "parse_geomean": parse_means,
            "memory": memory,
            "targets": {
                k: {"value": v, "target": t, "met": verdict(v, t, h) == "PASS"}
                for k, (v, t, h) in targets.items()
            },
            "seconds": elapsed,
        }
        write_json(args.json, payload)


if __name__ == "__main__":
    main()
