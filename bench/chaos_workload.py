"""The chaos workload, shared by ``tests/distributed/test_chaos.py`` (about two minutes,
in CI) and ``bench/soak.py`` (for as long as asked).

* :func:`write_manifest`: N tasks firing every second (``'* * * * * *'``), each running
  ``true``;
* :class:`Fleet`: the ``cronwarden start --no-worker`` and ``cronwarden worker``
  processes, each restartable under its own name;
* :func:`run_workload`: start 3 schedulers and 2 workers on one Redis and one
  PostgreSQL, SIGKILL a random one every few seconds and start it again, restart Redis at
  the given moments, then let the last fires settle and stop everything;
* :func:`analyse`: what the shared database says afterwards: instants dispatched twice,
  instants missed outside the Redis outages, published rows without exactly one dispatch
  report, fires that succeeded twice, and the dispatch latency of every fire.

Nothing here asserts; the test asserts, the soak prints and sets its exit code.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

import sqlalchemy

NAMES = ("s1", "s2", "s3", "w1", "w2")  # s*: `start --no-worker`, w*: `worker`
SCHEDULERS = NAMES[:3]
SETTLE_S = 15  # after the faults: the last fires are settled, taken over and run
OUTAGE_BEFORE_S, OUTAGE_AFTER_S = 30, 10  # grace around a Redis outage for misses


class Restartable(Protocol):
    """A Redis the workload may kill and start again (``tests/distributed/private_redis``)."""

    @property
    def url(self) -> str: ...

    def kill(self) -> None: ...

    def start(self) -> None: ...


def write_manifest(path: Path, tasks: int) -> None:
    """A manifest of ``tasks`` tasks ``t00``… each firing every second, running ``true``."""
    lines = ["max_concurrent_runs: 32", "targets:", "  job: {type: command, command: ['true']}",
             "tasks:"]  # fmt: skip
    lines += [f"  - {{task_id: {task_name(n)}, cron: '* * * * * *', targets: [job], "
              f"task_class: health}}" for n in range(tasks)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def task_name(n: int) -> str:
    return f"t{n:02d}"


class Fleet:
    """The processes of the workload, each restartable under its own name."""

    def __init__(self, manifest: Path, env: dict[str, str], folder: Path) -> None:
        self.manifest, self.env, self.folder = manifest, env, folder
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list[BinaryIO] = []
        self.log_from: dict[str, int] = {}  # where the current process's log begins

    def start(self, name: str) -> None:
        role = ["start", "--no-worker"] if name.startswith("s") else ["worker"]
        log = open(self.folder / f"{name}.log", "ab")  # closed by stop_all
        self.logs.append(log)
        self.log_from[name] = log.tell()
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "cronwarden", *role, "--manifest", str(self.manifest),
             "--log-format", "json"],
            env={**self.env, "CRONWARDEN_STATE_DIR": str(self.folder / name)},
            stdout=log, stderr=log)  # fmt: skip

    def ready(self, name: str) -> bool:
        """Whether the scheduler ``name`` has loaded its manifest and is firing (starting
        one takes 10–15 s on a loaded 2-core machine); a worker is taken as ready."""
        if not name.startswith("s"):
            return True
        with open(self.folder / f"{name}.log", "rb") as log:
            log.seek(self.log_from[name])
            return b'"CRON_MANIFEST_LOADED' in log.read()

    def wait_ready(self, names: Sequence[str], timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while not all(self.ready(name) for name in names):
            if time.monotonic() > deadline:
                raise TimeoutError(f"not all of {names} started in {timeout_s} s")
            time.sleep(0.2)

    def kill(self, name: str) -> None:
        process = self.processes[name]
        process.kill()
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        for log in self.logs:
            log.close()


@dataclass
class ChaosLog:
    """What the faults did: when, and to whom."""

    began: float  # the faults' start (the fleet has been up for a while)
    ended: float = 0.0  # the faults' end (the fleet then settles for SETTLE_S)
    outages: list[tuple[float, float]] = field(default_factory=list)  # Redis down, up
    events: list[str] = field(default_factory=list)

    @property
    def kills(self) -> int:
        return sum("killed" in event for event in self.events)


def run_workload(
    folder: Path,
    redis: Restartable,
    database_url: str,
    *,
    seconds: float,
    tasks: int,
    redis_restarts_at: Sequence[float],
    seed: int,
    redis_down_s: float = 3.0,
    say: Callable[[str], None] = lambda _event: None,
) -> ChaosLog:
    """Run the fleet for ``seconds`` of faults: one random process at a time SIGKILLed and
    started again 1–3 s later, the next 3–6 s after that once every scheduler is up again;
    Redis killed for ``redis_down_s`` and started again, empty, at each of
    ``redis_restarts_at`` (seconds into the faults)."""
    manifest = folder / "cronwarden.yaml"
    write_manifest(manifest, tasks)
    env = {**os.environ, "CRONWARDEN_REDIS_URL": redis.url,
           "CRONWARDEN_DATABASE_URL": database_url, "CRONWARDEN_HTTP": "127.0.0.1:0",
           "CRONWARDEN_WORKER_IDLE_S": "5"}  # fmt: skip
    fleet = Fleet(manifest, env, folder)
    rng = random.Random(seed)
    pending = sorted(redis_restarts_at)
    for name in NAMES:
        fleet.start(name)
    fleet.wait_ready(SCHEDULERS)
    time.sleep(2)  # all up
    log = ChaosLog(began=time.time())

    def event(text: str) -> None:
        line = f"{time.time() - log.began:.0f}s {text}"
        log.events.append(line)
        say(line)

    try:
        while time.time() - log.began < seconds:
            if pending and time.time() - log.began > pending[0]:
                pending.pop(0)
                redis.kill()
                down_at = time.time()
                time.sleep(redis_down_s)
                redis.start()
                log.outages.append((down_at, time.time()))
                event("redis restarted")
                continue
            victim = rng.choice(NAMES)
            # One at a time: a scheduler and a worker stay alive. A scheduler started
            # again fires only once it is up; until then no other is killed.
            fleet.wait_ready(SCHEDULERS)
            fleet.kill(victim)
            event(f"killed {victim}")
            time.sleep(rng.uniform(1, 3))
            fleet.start(victim)
            time.sleep(rng.uniform(3, 6))
        log.ended = time.time()
        time.sleep(SETTLE_S)
    finally:
        fleet.stop_all()
    return log


@dataclass
class Analysis:
    """What the shared database holds once the workload is over."""

    expected: set[tuple[str, int]]  # instants that had to be dispatched
    dispatched: Counter[tuple[str, int]]  # dispatch reports per (task, instant)
    published: set[tuple[str, int]]  # dispatch rows settled as published
    succeeded: Counter[tuple[str, int, str]]  # successful runs per (task, instant, target)
    latencies_ms: list[int]  # per dispatch report: recorded_at_ms - fired_at_ms
    taken_over: int  # dispatch reports saying taken_over or recovered_from
    fires_in_window: int  # every instant of every task in the window, outages included
    run_outcomes: Counter[str]  # runs by "status reason_code"

    @property
    def doubles(self) -> dict[tuple[str, int], int]:
        return {key: n for key, n in self.dispatched.items() if n > 1}

    @property
    def missed(self) -> list[tuple[str, int]]:
        return sorted(self.expected - set(self.dispatched))

    @property
    def without_one_report(self) -> set[tuple[str, int]]:
        return self.published ^ set(self.dispatched)

    @property
    def twice(self) -> dict[tuple[str, int, str], int]:
        return {key: n for key, n in self.succeeded.items() if n > 1}

    def latency(self) -> dict[str, float]:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return {"p50": statistics.median(ordered), "p99": p99, "max": ordered[-1]}


def analyse(database_url: str, tasks: int, log: ChaosLog) -> Analysis:
    """Read the reports, dispatch rows and runs of the workload from ``database_url``.

    Expected: every task at every whole second from just after the faults began to just
    before they ended, except from ``OUTAGE_BEFORE_S`` before each Redis outage to
    ``OUTAGE_AFTER_S`` after it (publishing fails while Redis is down).
    """
    engine = sqlalchemy.create_engine(database_url, isolation_level="REPEATABLE READ")
    with engine.connect() as conn:  # one snapshot for the three reads
        reports = list(conn.exec_driver_sql(
            "SELECT event_type, task_id, fired_at_ms, recorded_at_ms, body FROM reports "
            "WHERE event_type = 'CRON_TASK_DISPATCHED'"))  # fmt: skip
        rows = list(conn.exec_driver_sql(
            "SELECT task_id, scheduled_at_ms, outcome FROM dispatches"))  # fmt: skip
        runs = list(conn.exec_driver_sql(
            "SELECT task_id, scheduled_at_ms, target, status, reason_code FROM runs"
        ))  # fmt: skip
    engine.dispose()
    dispatched = Counter((task, at) for _, task, at, _, _ in reports)
    taken_over = 0
    for *_, body in reports:
        details = json.loads(body)
        taken_over += bool(details.get("taken_over") or details.get("recovered_from"))
    windows = [((down - OUTAGE_BEFORE_S) * 1000, (up + OUTAGE_AFTER_S) * 1000)
               for down, up in log.outages]  # fmt: skip
    seconds = range(int(log.began) + 1, int(log.ended) - 1)
    expected = {(task_name(n), second * 1000) for n in range(tasks) for second in seconds
                if not any(low <= second * 1000 <= high for low, high in windows)}  # fmt: skip
    return Analysis(
        expected=expected,
        dispatched=dispatched,
        published={(task, at) for task, at, outcome in rows if outcome == "published"},
        succeeded=Counter(
            (task, at, target) for task, at, target, status, _ in runs if status == "succeeded"
        ),  # fmt: skip
        latencies_ms=[recorded - at for _, _, at, recorded, _ in reports],
        taken_over=taken_over,
        fires_in_window=tasks * len(seconds),
        run_outcomes=Counter(f"{status} {reason}".strip() for *_, status, reason in runs),
    )
