"""The chaos test: 3 schedulers and 2 workers on one Redis and one PostgreSQL, 50
tasks firing every second, while schedulers and workers are killed with SIGKILL and
started again, and Redis itself is restarted. Real processes; about two minutes.

Asserted afterwards, from the shared database:
* no instant of any task was dispatched twice;
* no instant was missed while a scheduler was alive, outside the Redis outage;
* every committed fire has exactly one dispatch report;
* no fire ran twice: at most one successful run per fire and target.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import BinaryIO

import sqlalchemy
from private_redis import PrivateRedis

TASKS = 50
RUN_S = 60
SEED = 20261127


def _manifest(path: Path) -> None:
    lines = ["max_concurrent_runs: 32", "targets:", "  job: {type: command, command: ['true']}",
             "tasks:"]  # fmt: skip
    lines += [f"  - {{task_id: t{n:02d}, cron: '* * * * * *', targets: [job], "
              f"task_class: health}}" for n in range(TASKS)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


class Fleet:
    """The processes of the test, each restartable under its own name."""

    def __init__(self, manifest: Path, env: dict[str, str], folder: Path) -> None:
        self.manifest, self.env, self.folder = manifest, env, folder
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list[BinaryIO] = []

    def start(self, name: str) -> None:
        role = ["start", "--no-worker"] if name.startswith("s") else ["worker"]
        log = open(self.folder / f"{name}.log", "ab")  # closed by stop_all
        self.logs.append(log)
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "cronwarden", *role, "--manifest", str(self.manifest),
             "--log-format", "json"],
            env={**self.env, "CRONWARDEN_STATE_DIR": str(self.folder / name)},
            stdout=log, stderr=log)  # fmt: skip

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


def test_chaos_no_duplicate_no_miss_one_report_one_run(
    tmp_path: Path, private_redis: PrivateRedis, postgres_database: str
) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    _manifest(manifest)
    env = {**os.environ, "CRONWARDEN_REDIS_URL": private_redis.url,
           "CRONWARDEN_DATABASE_URL": postgres_database, "CRONWARDEN_HTTP": "127.0.0.1:0",
           "CRONWARDEN_WORKER_IDLE_S": "5"}  # fmt: skip
    fleet = Fleet(manifest, env, tmp_path)
    rng = random.Random(SEED)
    for name in ("s1", "s2", "s3", "w1", "w2"):
        fleet.start(name)
    time.sleep(8)  # all up
    began = time.time()
    outage: tuple[float, float] | None = None
    events: list[str] = []
    try:
        while time.time() - began < RUN_S:
            elapsed = time.time() - began
            if outage is None and elapsed > RUN_S / 2:
                private_redis.kill()
                down_at = time.time()
                time.sleep(3)
                private_redis.start()
                outage = (down_at, time.time())
                events.append(f"{elapsed:.0f}s redis restarted")
                continue
            victim = rng.choice(["s1", "s2", "s3", "w1", "w2"])
            fleet.kill(victim)  # one at a time: a scheduler and a worker stay alive
            events.append(f"{elapsed:.0f}s killed {victim}")
            time.sleep(rng.uniform(1, 3))
            fleet.start(victim)
            time.sleep(rng.uniform(3, 6))
        ended = time.time()
        time.sleep(15)  # the last fires are settled, taken over and run
    finally:
        fleet.stop_all()
    assert outage is not None
    _check(postgres_database, began, ended, outage, events)


def _check(database: str, began: float, ended: float, outage: tuple[float, float],
           events: list[str]) -> None:  # fmt: skip
    engine = sqlalchemy.create_engine(database)
    with engine.connect() as conn:
        query = sqlalchemy.text("SELECT body FROM reports WHERE event_type LIKE :kind")
        reports = [json.loads(body) for (body,) in conn.execute(query, {"kind": "CRON_TASK_%"})]
        rows = list(conn.exec_driver_sql(
            "SELECT task_id, scheduled_at_ms, outcome FROM dispatches"))  # fmt: skip
        runs = list(conn.exec_driver_sql(
            "SELECT task_id, scheduled_at_ms, target, status FROM runs"))  # fmt: skip
    engine.dispose()
    where = f"events: {events}"
    dispatched = Counter((r["task_id"], r["fired_at_ms"]) for r in reports
                         if r["event_type"] == "CRON_TASK_DISPATCHED")  # fmt: skip
    doubles = {key: n for key, n in dispatched.items() if n > 1}
    assert not doubles, f"dispatched twice: {doubles}; {where}"
    published = {(task, at) for task, at, outcome in rows if outcome == "published"}
    assert published == set(dispatched), (
        f"rows without one report: {published ^ set(dispatched)}; {where}"
    )
    low, high = (outage[0] - 30) * 1000, (outage[1] + 10) * 1000  # grace around the outage
    expected = {(f"t{n:02d}", second * 1000) for n in range(TASKS)
                for second in range(int(began) + 1, int(ended) - 1)
                if not low <= second * 1000 <= high}  # fmt: skip
    missed = sorted(expected - set(dispatched))
    assert not missed, f"{len(missed)} instants missed, first {missed[:5]}; {where}"
    succeeded = Counter((task, at, target) for task, at, target, status in runs
                        if status == "succeeded")  # fmt: skip
    twice = {key: n for key, n in succeeded.items() if n > 1}
    assert not twice, f"ran twice: {twice}; {where}"
    assert {(task, at) for task, at, _ in succeeded} <= set(dispatched)
    # and the test did what it says: kills, a busy fleet, runs done
    assert sum("killed" in event for event in events) >= 5, where
    assert len(dispatched) > TASKS * (ended - began) * 0.6, (len(dispatched), where)
    assert len(succeeded) > len(dispatched) * 0.6, (len(succeeded), len(dispatched), where)
