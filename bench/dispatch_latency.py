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
import gc
import statistics
import tempfile
import time
import tracemalloc
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


async def _cronwarden(n: int, rounds: int, state: Path) -> dict[str, Any]:
    expr = f"*/{PERIOD_S} * * * * *"  # every task due at the same instants
    tasks = [{"task_id": f"t{i}", "cron": expr, "targets": ["x"], "task_class": "health"}
             for i in range(n)]  # fmt: skip
    manifest = validate_document({"max_concurrent_tasks": 20, "tasks": tasks}).manifest
    store = SqlStore(sqlite_url(state))
    clock = SystemClock()
    # As the daemon does at start: the manifest-loaded report opens the database.
    await store.add_report({"report_id": "load", "event_type": "CRON_MANIFEST_LOADED"},
                           int(time.time() * 1000))  # fmt: skip
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
    parser.add_argument("--rounds", type=int, default=5, help="shared instants per size")
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks to load")
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
    print(f"cronwarden   {load['seconds']:.2f} s, {load['bytes_per_task']:.0f} bytes per task "
          f"({load['tasks']:,} tasks)")  # fmt: skip


if __name__ == "__main__":
    main()
