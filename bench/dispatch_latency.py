"""Scheduler benchmark: cronwarden's CronRunner against APScheduler 3, in one run.

* dispatch latency: N tasks due at the same instant (20, 1,000, 10,000); for
  each fire, the time from the scheduled instant until its outcome is known —
  for cronwarden, the report stored in SQLite (claim, commit, publish, report);
  for APScheduler's AsyncIOScheduler, the job function starting. p50 / p99 / max,
  and how many fires never happened (APScheduler: EVENT_JOB_MISSED; cronwarden:
  anything but a dispatch);
* loading 100,000 tasks: seconds to validate the manifest and build the heap,
  and the resident memory per task;
* one busy minute: 100,000 tasks each firing once a minute (about 1,700 fires a
  second), on the real clock: the CPU used, and how many fires were not run and
  how many of those nobody was told about (silently missed).

Both run on the real clock in the same process, one after the other. Run:
``python bench/dispatch_latency.py [--sizes 20,1000,10000] [--rounds 5] [--tasks 100000]
[--busy-tasks 100000] [--busy-seconds 60]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_MISSED
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from cronwarden.adapters.memory import LocalBus, MemoryLock
from cronwarden.adapters.sql.controls import Cached, SqlKillSwitch, SqlPauses
from cronwarden.adapters.sql.store import SqlStore, sqlite_url
from cronwarden.adapters.system import SystemClock
from cronwarden.core.report import EventType, OperationsReport
from cronwarden.manifest import validate_document
from cronwarden.services.dispatch import Dispatcher
from cronwarden.services.scheduler import CronRunner
from cronwarden.testing import FakeClock, memory_dispatcher

PERIOD_S = 2  # every task is due at each even second: one shared instant per round


def _percentiles(latencies_ms: list[float]) -> dict[str, float]:
    ordered = sorted(latencies_ms)
    if not ordered:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50": statistics.median(ordered), "p99": p99, "max": ordered[-1]}


async def _daemon_parts(state: Path) -> tuple[SqlStore, Cached, Dispatcher]:
    """The store, controls and dispatcher as the daemon wires them, the store already
    opened by a first report as the daemon's start does."""
    store = SqlStore(sqlite_url(state))
    clock = SystemClock()
    await store.add_report({"report_id": "load", "event_type": "CRON_MANIFEST_LOADED"},
                           int(time.time() * 1000))  # fmt: skip
    controls = Cached(SqlKillSwitch(store), SqlPauses(store), clock)
    dispatcher = Dispatcher(clock=clock, lock=MemoryLock(clock), bus=LocalBus(),
                            kill_switch=controls, store=store, pauses=controls,
                            owner="bench")  # fmt: skip
    return store, controls, dispatcher


async def _cronwarden(n: int, rounds: int, state: Path) -> dict[str, Any]:
    expr = f"*/{PERIOD_S} * * * * *"  # every task due at the same instants
    tasks = [{"task_id": f"t{i}", "cron": expr, "targets": ["x"], "task_class": "health"}
             for i in range(n)]  # fmt: skip
    manifest = validate_document({"max_concurrent_tasks": 20, "tasks": tasks}).manifest
    store, controls, dispatcher = await _daemon_parts(state)
    latencies: list[float] = []
    outcomes: list[str] = []
    done = asyncio.Event()

    def seen(report: OperationsReport) -> None:
        latencies.append(time.time() * 1000 - report.fired_at_ms)
        outcomes.append(str(report.event_type))
        if len(outcomes) == n * rounds:
            done.set()

    stop = asyncio.Event()
    runner = CronRunner(manifest, dispatcher, on_report=seen)
    runner.start_at(int(time.time() * 1000))
    gc.freeze()  # as the daemon does once its tasks are loaded
    loop = asyncio.create_task(runner.run(stop))
    refresher = asyncio.create_task(controls.keep_fresh(stop))  # as the daemon does
    await asyncio.wait_for(done.wait(), timeout=PERIOD_S * rounds + 600)
    stop.set()
    await asyncio.gather(loop, refresher)
    store.close()
    missed = sum(event != EventType.DISPATCHED for event in outcomes)
    return {**_percentiles(latencies), "fires": len(outcomes), "not_dispatched": missed}


async def _apscheduler(n: int, rounds: int) -> dict[str, Any]:
    latencies: list[float] = []
    missed: list[int] = []
    done = asyncio.Event()
    period_ms = PERIOD_S * 1000

    def job() -> None:
        now_ms = time.time() * 1000
        latencies.append(now_ms - now_ms // period_ms * period_ms)  # late by less than a period
        if len(latencies) + len(missed) == n * rounds:
            done.set()

    def on_missed(_event: Any) -> None:
        missed.append(1)
        if len(latencies) + len(missed) == n * rounds:
            done.set()

    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_listener(on_missed, EVENT_JOB_MISSED)
    trigger = CronTrigger(second=f"*/{PERIOD_S}", timezone="UTC")
    for i in range(n):
        scheduler.add_job(job, trigger, id=f"t{i}")
    scheduler.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=PERIOD_S * rounds + 600)
    finally:
        scheduler.shutdown(wait=False)
    return {**_percentiles(latencies), "fires": len(latencies), "not_dispatched": len(missed)}


def _rss_bytes() -> int:
    """Resident memory of this process (Linux ``/proc``)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _load(n: int) -> dict[str, float]:
    tasks = [{"task_id": f"task-{i}", "cron": f"{i % 60} {i % 24} * * *", "targets": ["x"]}
             for i in range(n)]  # fmt: skip
    gc.collect()
    before = _rss_bytes()
    started = time.perf_counter()
    manifest = validate_document({"tasks": tasks}).manifest
    runner = CronRunner(manifest, memory_dispatcher(FakeClock()))  # no fire happens here
    runner.start_at(int(time.time() * 1000))
    seconds = time.perf_counter() - started
    gc.collect()
    grown = _rss_bytes() - before
    return {"seconds": seconds, "bytes_per_task": grown / n, "tasks": len(manifest.tasks),
            "heap": len(runner._heap)}  # fmt: skip


def _busy_tasks(n: int) -> list[dict[str, Any]]:
    """``n`` tasks, each firing once a minute, spread evenly over the seconds."""
    return [{"task_id": f"t{i}", "cron": f"{i % 60} * * * * *", "targets": ["x"],
             "task_class": "health"} for i in range(n)]  # fmt: skip


def _due(n: int, after_s: int, until_s: int) -> int:
    """How many fires of :func:`_busy_tasks` fall in ``(after_s, until_s]``."""
    per_second = Counter(i % 60 for i in range(n))
    return sum(per_second[second % 60] for second in range(after_s + 1, until_s + 1))


async def _busy_cronwarden(n: int, seconds: int, state: Path) -> dict[str, Any]:
    manifest = validate_document({"tasks": _busy_tasks(n)}).manifest
    store, controls, dispatcher = await _daemon_parts(state)
    outcomes: Counter[str] = Counter()
    reported: set[tuple[str, int]] = set()

    def seen(report: OperationsReport) -> None:
        outcomes[str(report.event_type)] += 1
        reported.add((report.task_id, report.fired_at_ms))

    runner = CronRunner(manifest, dispatcher, on_report=seen)
    start_s = int(time.time())
    runner.start_at(start_s * 1000 + 999)  # from the next whole second
    gc.freeze()
    stop = asyncio.Event()
    cpu = time.process_time()
    loop = asyncio.create_task(runner.run(stop))
    refresher = asyncio.create_task(controls.keep_fresh(stop))
    end_s = start_s + seconds
    await asyncio.sleep(end_s + 0.9 - time.time())  # every fire up to end_s has had 0.9 s
    stop.set()
    await asyncio.gather(loop, refresher)
    cpu = time.process_time() - cpu
    store.close()
    due = _due(n, start_s, end_s)
    on_time = sum(1 for _, at in reported if at <= end_s * 1000)
    return {"due": due, "dispatched": outcomes["CRON_TASK_DISPATCHED"], "cpu_s": cpu,
            "not_dispatched": sum(outcomes.values()) - outcomes["CRON_TASK_DISPATCHED"],
            "silent": due - on_time}  # fmt: skip


async def _busy_apscheduler(n: int, seconds: int) -> dict[str, Any]:
    runs: list[int] = []
    missed: list[int] = []

    def job() -> None:
        runs.append(1)

    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_listener(lambda _event: missed.append(1), EVENT_JOB_MISSED)
    for i in range(n):
        scheduler.add_job(job, CronTrigger(second=i % 60, timezone="UTC"), id=f"t{i}")
    start_s = int(time.time())
    scheduler.start()
    cpu = time.process_time()
    end_s = start_s + seconds
    await asyncio.sleep(end_s + 0.9 - time.time())
    scheduler.shutdown(wait=False)
    cpu = time.process_time() - cpu
    due = _due(n, start_s, end_s)
    return {"due": due, "dispatched": len(runs), "cpu_s": cpu, "not_dispatched": len(missed),
            "silent": max(due - len(runs) - len(missed), 0)}  # fmt: skip


def _busy_row(name: str, seconds: int, result: dict[str, Any]) -> str:
    return (f"{name:<12} due {result['due']:>7,}  ran {result['dispatched']:>7,}  "
            f"reported not run {result['not_dispatched']:>7,}  silently missed "
            f"{result['silent']:>7,}  CPU {result['cpu_s']:.1f} s of {seconds} s")  # fmt: skip


def _row(name: str, n: int, result: dict[str, Any]) -> str:
    return (f"{name:<12} {n:>6}  p50 {result['p50']:8.1f} ms  p99 {result['p99']:8.1f} ms  "
            f"max {result['max']:8.1f} ms  fired {result['fires']:>6}  "
            f"not dispatched {result['not_dispatched']:>6}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20,1000,10000")
    parser.add_argument("--rounds", type=int, default=5, help="shared instants per size")
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks to load")
    parser.add_argument("--busy-tasks", type=int, default=100_000)
    parser.add_argument("--busy-seconds", type=int, default=60, help="0 skips the busy run")
    args = parser.parse_args()
    print(f"== dispatch latency: N tasks due at one instant, {args.rounds} instants "
          f"{PERIOD_S} s apart (real clock)")  # fmt: skip
    for n in (int(size) for size in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as state:
            ours = asyncio.run(_cronwarden(n, args.rounds, Path(state)))
        print(_row("cronwarden", n, ours))
        theirs = asyncio.run(_apscheduler(n, args.rounds))
        print(_row("apscheduler", n, theirs))
    print(f"== loading {args.tasks:,} tasks (validate manifest, compile, build the heap)")
    load = _load(args.tasks)
    print(f"cronwarden   {load['seconds']:.2f} s, {load['bytes_per_task']:.0f} bytes of RSS per "
          f"task ({load['tasks']:,} tasks, {load['heap']:,} in the heap)")  # fmt: skip
    if args.busy_seconds:
        n, seconds = args.busy_tasks, args.busy_seconds
        print(f"== one busy stretch: {n:,} tasks each firing once a minute, {seconds} s")
        with tempfile.TemporaryDirectory() as state:
            ours = asyncio.run(_busy_cronwarden(n, seconds, Path(state)))
        print(_busy_row("cronwarden", seconds, ours))
        print(_busy_row("apscheduler", seconds, asyncio.run(_busy_apscheduler(n, seconds))))


if __name__ == "__main__":
    main()
