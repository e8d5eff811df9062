"""Scheduler benchmark: cronwarden's CronRunner against APScheduler 3, in one run.

* dispatch latency: N tasks due at the same instant (20, 1,000, 10,000); for
  each fire, the time from the scheduled instant until its outcome is known —
  for cronwarden, the report stored in SQLite (claim, commit, publish, report);
  for APScheduler's AsyncIOScheduler, the job function starting. p50 / p99 / max,
  and how many fires never happened (APScheduler: EVENT_JOB_MISSED; cronwarden:
  anything but a dispatch);
* loading 100,000 tasks: seconds to validate the manifest and build the heap,
  and the memory per task (tracemalloc).

Both run on the real clock in the same process, one after the other. Run:
``python bench/dispatch_latency.py [--sizes 20,1000,10000] [--tasks 100000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
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

LEAD_S = 2  # the shared instant is this many whole seconds ahead


def _instant() -> datetime:
    return datetime.fromtimestamp(int(time.time()) + LEAD_S, UTC)


def _percentiles(latencies_ms: list[float]) -> dict[str, float]:
    ordered = sorted(latencies_ms)
    if not ordered:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50": statistics.median(ordered), "p99": p99, "max": ordered[-1]}


async def _cronwarden(n: int, state: Path) -> dict[str, Any]:
    at = _instant()
    expr = f"{at.second} {at.minute} {at.hour} * * *"
    tasks = [{"task_id": f"t{i}", "cron": expr, "targets": ["x"], "task_class": "health"}
             for i in range(n)]  # fmt: skip
    manifest = validate_document({"max_concurrent_tasks": 20, "tasks": tasks}).manifest
    store = SqlStore(sqlite_url(state))
    clock = SystemClock()
    controls = Cached(SqlKillSwitch(store), SqlPauses(store), clock)
    dispatcher = Dispatcher(clock=clock, lock=MemoryLock(clock), bus=LocalBus(),
                            kill_switch=controls, store=store, pauses=controls,
                            owner="bench")  # fmt: skip
    latencies: list[float] = []
    outcomes: list[str] = []
    done = asyncio.Event()

    def seen(report: OperationsReport) -> None:
        latencies.append(time.time() * 1000 - report.fired_at_ms)
        outcomes.append(str(report.event_type))
        if len(outcomes) == n:
            done.set()

    stop = asyncio.Event()
    runner = CronRunner(manifest, dispatcher, on_report=seen)
    loop = asyncio.create_task(runner.run(stop))
    await asyncio.wait_for(done.wait(), timeout=LEAD_S + 600)
    stop.set()
    await loop
    store.close()
    missed = sum(event != EventType.DISPATCHED for event in outcomes)
    return {**_percentiles(latencies), "fires": len(outcomes), "not_dispatched": missed}


async def _apscheduler(n: int) -> dict[str, Any]:
    at = _instant()
    latencies: list[float] = []
    missed: list[int] = []
    done = asyncio.Event()

    def job() -> None:
        latencies.append(time.time() * 1000 - at.timestamp() * 1000)
        if len(latencies) + len(missed) == n:
            done.set()

    def on_missed(_event: Any) -> None:
        missed.append(1)
        if len(latencies) + len(missed) == n:
            done.set()

    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_listener(on_missed, EVENT_JOB_MISSED)
    trigger = CronTrigger(second=at.second, minute=at.minute, hour=at.hour, timezone="UTC")
    for i in range(n):
        scheduler.add_job(job, trigger, id=f"t{i}")
    scheduler.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=LEAD_S + 600)
    finally:
        scheduler.shutdown(wait=False)
    return {**_percentiles(latencies), "fires": len(latencies), "not_dispatched": len(missed)}


def _load(n: int) -> dict[str, float]:
    tasks = [{"task_id": f"task-{i}", "cron": f"{i % 60} {i % 24} * * *", "targets": ["x"]}
             for i in range(n)]  # fmt: skip
    tracemalloc.start()
    started = time.perf_counter()
    manifest = validate_document({"tasks": tasks}).manifest
    runner = CronRunner(manifest, memory_dispatcher(FakeClock()))  # no fire happens here
    runner.start_at(int(time.time() * 1000))
    seconds = time.perf_counter() - started
    current, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"seconds": seconds, "bytes_per_task": current / n, "tasks": len(manifest.tasks)}


def _row(name: str, n: int, result: dict[str, Any]) -> str:
    return (f"{name:<12} {n:>6}  p50 {result['p50']:8.1f} ms  p99 {result['p99']:8.1f} ms  "
            f"max {result['max']:8.1f} ms  fired {result['fires']:>6}  "
            f"not dispatched {result['not_dispatched']:>6}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20,1000,10000")
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks to load")
    args = parser.parse_args()
    print("== dispatch latency: N tasks due at one instant (real clock)")
    for n in (int(size) for size in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as state:
            ours = asyncio.run(_cronwarden(n, Path(state)))
        print(_row("cronwarden", n, ours))
        theirs = asyncio.run(_apscheduler(n))
        print(_row("apscheduler", n, theirs))
    print(f"== loading {args.tasks:,} tasks (validate manifest, compile, build the heap)")
    load = _load(args.tasks)
    print(f"cronwarden   {load['seconds']:.2f} s, {load['bytes_per_task']:.0f} bytes per task "
          f"({load['tasks']:,} tasks)")  # fmt: skip


if __name__ == "__main__":
    main()
