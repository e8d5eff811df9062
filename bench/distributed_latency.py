"""Distributed benchmark: 3 cronwarden schedulers on Redis + PostgreSQL against 3
APScheduler 3 processes sharing one SQLAlchemyJobStore on PostgreSQL, in one run.

The workload, the same for both: N tasks (``--sizes``, default 20 and 1,000), all due at
the same instants (``*/5 * * * * *``, every 5 s), for ``--rounds`` instants (default 20,
so 100 s), on 3 processes of each system started together on this machine.

* cronwarden: 3 ``cronwarden start --no-worker`` processes (no worker process runs: the
  triggers stay on the Redis stream) on a ``redis-server`` of the benchmark's own and a
  fresh PostgreSQL database. A fire's **dispatch latency** is ``recorded_at_ms -
  fired_at_ms`` of its ``CRON_TASK_DISPATCHED`` report: from the scheduled instant until
  the winning scheduler, having claimed the fire in Redis, committed its dispatch row in
  PostgreSQL and published its trigger on the Redis stream, stamps the report just before
  the transaction that stores it. Duplicates: (task, instant) with more than one dispatch
  report.
* APScheduler 3.x: 3 processes, each a ``BackgroundScheduler`` (default thread pool
  executor, default job options: ``misfire_grace_time`` 1 s, ``coalesce``, one instance)
  on ONE ``SQLAlchemyJobStore`` in a fresh PostgreSQL database; the jobs are added once
  before the processes start. Latency: from the scheduled instant until the job is
  submitted to the executor (``EVENT_JOB_SUBMITTED``). Executions: ``EVENT_JOB_EXECUTED``
  per (job, scheduled instant) in every process; duplicates are (job, instant) executed
  more than once, in all processes together. APScheduler 3 documents that a job store must
  not be shared by schedulers; this measures what happens when it is.

Misses: instants of the window with no dispatch (cronwarden) or no execution
(APScheduler). The first measured instant is at least 10 s after the processes start,
and for cronwarden after an instant that every scheduler has taken part in (schedulers
log at WARNING, not one line per fire).

Run (PostgreSQL and ``redis-server`` needed; fresh databases are created on the server of
``--admin-url`` and dropped afterwards)::

    .venv/bin/python bench/distributed_latency.py [--sizes 20,1000] [--rounds 20]

About 10 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy
import sqlalchemy.exc

# The fault tests' own redis-server, reused rather than copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "distributed"))
from private_redis import PrivateRedis

from cronwarden.testing import fresh_database

PERIOD_S = 5
INSTANCES = 3
WARMUP_S = 10
SETTLE_S = 8
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def percentiles(latencies_ms: list[float]) -> dict[str, float]:
    ordered = sorted(latencies_ms)
    if not ordered:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50": statistics.median(ordered), "p99": p99, "max": ordered[-1]}


def window(rounds: int) -> list[int]:
    """The measured instants (ms): ``rounds`` instants every PERIOD_S, the first at least
    WARMUP_S from now."""
    first = math.ceil((time.time() + WARMUP_S) / PERIOD_S) * PERIOD_S
    return [(first + PERIOD_S * i) * 1000 for i in range(rounds)]


def summary(n: int, instants: list[int], runs: Counter[tuple[str, int]],
            latencies_ms: list[float]) -> dict[str, Any]:  # fmt: skip
    """Latency, misses and duplicates over the window from per-(task, instant) counts."""
    expected = {(f"t{i}", at) for i in range(n) for at in instants}
    seen = {key: count for key, count in runs.items() if key in expected}
    return {
        **percentiles(latencies_ms),
        "expected": len(expected),
        "executed": sum(seen.values()),
        "missed": len(expected - set(seen)),
        "duplicated": sum(1 for count in seen.values() if count > 1),
        "extra": sum(count - 1 for count in seen.values() if count > 1),
    }


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def run_cronwarden(n: int, rounds: int, admin_url: str, folder: Path) -> dict[str, Any]:
    manifest = folder / f"cw-{n}.yaml"
    lines = ["targets:", "  job: {type: command, command: ['true']}", "tasks:"]
    lines += [f"  - {{task_id: t{i}, cron: '*/{PERIOD_S} * * * * *', targets: [job], "
              f"task_class: health}}" for i in range(n)]  # fmt: skip
    manifest.write_text("\n".join(lines) + "\n")
    redis = PrivateRedis(folder)
    redis.start()
    try:
        with fresh_database(admin_url) as url:
            env = {**os.environ, "CRONWARDEN_REDIS_URL": redis.url,
                   "CRONWARDEN_DATABASE_URL": url, "CRONWARDEN_HTTP": "127.0.0.1:0"}  # fmt: skip
            processes = []
            for k in range(INSTANCES):
                log = open(folder / f"cw-{n}-s{k}.log", "wb")  # the child's, closed here
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "cronwarden", "start", "--no-worker", "--manifest",
                     str(manifest), "--log-format", "json", "--log-level", "WARNING"],
                    env={**env, "CRONWARDEN_STATE_DIR": str(folder / f"cw-{n}-s{k}")},
                    stdout=log, stderr=log))  # fmt: skip
                log.close()
            try:
                wait_all_firing(url, n, processes)
                instants = window(rounds)
                time.sleep(instants[-1] / 1000 + SETTLE_S - time.time())
            finally:
                stop(processes)
            engine = sqlalchemy.create_engine(url)
            with engine.connect() as conn:
                rows = list(conn.exec_driver_sql(
                    "SELECT task_id, fired_at_ms, recorded_at_ms FROM reports WHERE event_type"
                    f" = 'CRON_TASK_DISPATCHED' AND fired_at_ms BETWEEN {instants[0]} AND "
                    f"{instants[-1]}"))  # fmt: skip
                commits = conn.exec_driver_sql(
                    "SELECT task_id, scheduled_at_ms, committed_at_ms FROM dispatches WHERE "
                    f"scheduled_at_ms BETWEEN {instants[0]} AND {instants[-1]}")  # fmt: skip
                committed = {(task, at): done - at for task, at, done in commits}
            engine.dispose()
    finally:
        redis.kill()
    runs = Counter((task, at) for task, at, _ in rows)
    # where the time goes: until the row's commit began (wake, claim in Redis, kill switch
    # and pauses), then until the report's stamp (commit in PostgreSQL, XADD of triggers)
    to_commit = [committed[(task, at)] for task, at, _ in rows if (task, at) in committed]
    after = [recorded - at - committed[(task, at)] for task, at, recorded in rows
             if (task, at) in committed]  # fmt: skip
    return {
        **summary(n, instants, runs, [recorded - at for _, at, recorded in rows]),
        "to_commit": percentiles(to_commit),
        "commit_to_report": percentiles(after),
    }


def wait_all_firing(url: str, n: int, processes: list[subprocess.Popen[bytes]]) -> None:
    """Until one instant has a report from each scheduler for each task: all are up (each
    records every fire it takes part in: dispatched, or suppressed as a duplicate)."""
    engine = sqlalchemy.create_engine(url)
    query = ("SELECT count(*) FROM reports WHERE event_type IN ('CRON_TASK_DISPATCHED', "
             "'CRON_TASK_SUPPRESSED') GROUP BY fired_at_ms ORDER BY 1 DESC LIMIT 1")  # fmt: skip
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            assert all(p.poll() is None for p in processes), "a scheduler exited"
            time.sleep(1)
            try:
                with engine.connect() as conn:
                    most = conn.exec_driver_sql(query).scalar()
            except sqlalchemy.exc.ProgrammingError:  # no table yet
                continue
            if most is not None and most >= INSTANCES * n:
                return
        raise TimeoutError("the schedulers did not all start firing in 180 s")
    finally:
        engine.dispose()


def apscheduler_child(url: str, out: Path, until: float) -> None:
    """One APScheduler process on the shared job store, until ``until``; writes one JSON
    line per event: ``[kind, job_id, scheduled_ms, at_ms]``."""
    from apscheduler.events import (
        EVENT_JOB_EXECUTED,
        EVENT_JOB_MISSED,
        EVENT_JOB_SUBMITTED,
        JobExecutionEvent,
        JobSubmissionEvent,
    )
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    logging.basicConfig(level=logging.ERROR)
    events: list[tuple[str, str, int, int]] = []

    def seen(event: JobSubmissionEvent | JobExecutionEvent) -> None:
        now_ms = int(time.time() * 1000)
        if isinstance(event, JobSubmissionEvent):
            events.extend(("submitted", event.job_id, int(at.timestamp() * 1000), now_ms)
                          for at in event.scheduled_run_times)  # fmt: skip
        else:
            kind = "executed" if event.code == EVENT_JOB_EXECUTED else "missed"
            at_ms = int(event.scheduled_run_time.timestamp() * 1000)
            events.append((kind, event.job_id, at_ms, now_ms))

    scheduler = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(url=url)},
                                    timezone="UTC")  # fmt: skip
    scheduler.add_listener(seen, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_MISSED)
    scheduler.start()
    time.sleep(max(until - time.time(), 0))
    # a scheduler still behind submits to the executor being shut down: not worth a traceback
    logging.getLogger("apscheduler").setLevel(logging.CRITICAL)
    scheduler.shutdown(wait=True)
    out.write_text("".join(json.dumps(event) + "\n" for event in events))


def run_apscheduler(n: int, rounds: int, admin_url: str, folder: Path) -> dict[str, Any]:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger

    with fresh_database(admin_url) as url:
        setup = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(url=url)},
                                    timezone="UTC")  # fmt: skip
        setup.start(paused=True)
        for i in range(n):
            setup.add_job("time:time", CronTrigger(second=f"*/{PERIOD_S}", timezone="UTC"),
                          id=f"t{i}", replace_existing=True)  # fmt: skip
        setup.shutdown(wait=False)
        instants = window(rounds)
        until = instants[-1] / 1000 + SETTLE_S
        outs = [folder / f"aps-{n}-{k}.jsonl" for k in range(INSTANCES)]
        processes = [subprocess.Popen(
            [sys.executable, __file__, "--apscheduler-child", url, str(out), str(until)],
            stdout=subprocess.DEVNULL) for out in outs]  # fmt: skip
        for process in processes:
            process.wait(timeout=until - time.time() + 120)
    executed: Counter[tuple[str, int]] = Counter()
    latencies: list[float] = []
    reported_missed = 0
    window_ms = (instants[0], instants[-1])
    for out in outs:
        for line in out.read_text().splitlines():
            kind, job, at, now = json.loads(line)
            if not window_ms[0] <= at <= window_ms[1]:
                continue
            if kind == "executed":
                executed[(job, at)] += 1
            elif kind == "submitted":
                latencies.append(now - at)
            else:
                reported_missed += 1
    return {**summary(n, instants, executed, latencies), "reported_missed": reported_missed}


def row(name: str, n: int, result: dict[str, Any]) -> str:
    rate = result["extra"] / max(result["expected"], 1)
    return (f"{name:<12} {n:>6}  p50 {result['p50']:8.1f} ms  p99 {result['p99']:8.1f} ms  "
            f"max {result['max']:8.1f} ms  expected {result['expected']:>6}  "
            f"executed {result['executed']:>6}  missed {result['missed']:>5}  duplicated "
            f"{result['duplicated']:>5} ({result['extra']} extra, {rate:.1%})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20,1000")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--only", choices=["cronwarden", "apscheduler"])
    parser.add_argument("--json", type=Path, help="also write every number here")
    parser.add_argument("--apscheduler-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.apscheduler_child:
        url, out, until = args.apscheduler_child
        apscheduler_child(url, Path(out), float(until))
        return
    import apscheduler

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, APScheduler {apscheduler.__version__}, SQLAlchemy "
          f"{sqlalchemy.__version__}; {INSTANCES} processes each; '*/{PERIOD_S} * * * * *', "
          f"{args.rounds} instants", flush=True)  # fmt: skip
    print(f"load average at the start: {Path('/proc/loadavg').read_text().split()[:3]}")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="cronwarden-dlat-") as tmp:
        for n in (int(size) for size in args.sizes.split(",")):
            for name, bench in (("cronwarden", run_cronwarden), ("apscheduler", run_apscheduler)):
                if args.only in (None, name):
                    result = bench(n, args.rounds, args.admin_url, Path(tmp))
                    results[f"{name}/{n}"] = result
                    print(row(name, n, result), flush=True)
                    if "to_commit" in result:
                        print("             of which: " + "; ".join(
                            f"{part} p50 {result[part]['p50']:.1f} / p99 "
                            f"{result[part]['p99']:.1f} ms"
                            for part in ("to_commit", "commit_to_report")), flush=True)  # fmt: skip
    print("\ntasks  cronwarden p50/p99 ms  APScheduler p50/p99 ms  p99 ratio  "
          "duplicates cronwarden / APScheduler")  # fmt: skip
    for key, cw in results.items():
        name, size = key.split("/")
        aps = results.get(f"apscheduler/{size}")
        if name != "cronwarden" or aps is None:
            continue
        print(f"{size:>5}  {cw['p50']:>8.1f} / {cw['p99']:<8.1f}   {aps['p50']:>8.1f} / "
              f"{aps['p99']:<8.1f}   {aps['p99'] / cw['p99']:>6.1f}x   {cw['extra']} of "
              f"{cw['expected']} / {aps['extra']} of {aps['expected']} "
              f"({aps['extra'] / aps['expected']:.1%})")  # fmt: skip
    print(f"load average at the end: {Path('/proc/loadavg').read_text().split()[:3]}")
    for size, target in (("20", 20.0), ("1000", 100.0)):
        measured = results.get(f"cronwarden/{size}")
        if measured is not None:
            verdict = "met" if measured["p99"] <= target else "NOT MET"
            print(f"target p99 <= {target:.0f} ms at {size}: {measured['p99']:.1f} ms, {verdict}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
