"""Worker benchmark: what cronwarden adds to running a command, against a bare
``subprocess.run`` of the same command, in one run.

Each sample runs ``true`` once:

* ``subprocess.run``: the floor;
* ``run_command``: cronwarden's attempt alone (own process group, output to files,
  timeout, tails read back);
* ``Worker.handle``: the whole run as the daemon does it: the run key begun in the
  SQLite store, the artifact folder, the environment (with the previous run's
  artifacts looked up), the attempt, ``run.json``, the record finished;
* ``shared-bus run``: the same as a worker on a shared bus runs it, the command
  started through ``setpriv --pdeathsig KILL`` and the group keeper's ``/bin/sh``
  prologue, so that it dies with its worker, its children included.

Prints p50 / p99 per way and the worker's p50 minus the floor's (target: ≤ 5 ms).
Run: ``python bench/worker_overhead.py [--runs 300]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from cronwarden.adapters.sql.store import SqlStore, sqlite_url
from cronwarden.adapters.system import SystemClock
from cronwarden.manifest import validate_document
from cronwarden.services.worker import Worker
from cronwarden.workers.command import run_command

TRUE = "/bin/true" if os.path.exists("/bin/true") else "true"


def _summary(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {"p50": statistics.median(ordered),
            "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]}  # fmt: skip


def _bare(runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([TRUE], check=True)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def _attempt_only(runs: int, folder: Path) -> list[float]:
    samples = []
    for n in range(runs):
        started = time.perf_counter()
        await run_command([TRUE], env=dict(os.environ), cwd=None, out_dir=folder / str(n),
                          timeout_s=30)  # fmt: skip
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def _worker(runs: int, folder: Path, die_with_worker: bool = False) -> list[float]:
    manifest = validate_document({
        "targets": {"noop": {"type": "command", "command": [TRUE]}},
        "tasks": [{"task_id": "bench", "cron": "* * * * *", "targets": ["noop"]}],
    }).manifest  # fmt: skip
    store = SqlStore(sqlite_url(folder / "state"))
    worker = Worker(
        SystemClock(),
        store,
        lambda: manifest,
        folder / "artifacts",
        die_with_worker=die_with_worker,
    )
    samples = []
    try:
        for n in range(runs):
            trigger = {"task_id": "bench", "target": "noop", "scheduled_at": n * 1000,
                       "trace_id": f"tr_{n}"}  # fmt: skip
            started = time.perf_counter()
            (run,) = await worker.handle(trigger)
            samples.append((time.perf_counter() - started) * 1000)
            assert run.status == "succeeded", run
    finally:
        store.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        _bare(20)  # warm the page cache and the allocator for every way alike
        ways = {
            "subprocess.run": _bare(args.runs),
            "run_command": asyncio.run(_attempt_only(args.runs, folder / "attempts")),
            "Worker.handle": asyncio.run(_worker(args.runs, folder / "worker")),
            "shared-bus run": asyncio.run(_worker(args.runs, folder / "dying", True)),
        }
    print(f"== one `true` per sample, {args.runs} samples each (ms)")
    results = {name: _summary(samples) for name, samples in ways.items()}
    for name, result in results.items():
        print(f"{name:<16} p50 {result['p50']:6.2f}  p99 {result['p99']:6.2f}")
    added = results["Worker.handle"]["p50"] - results["subprocess.run"]["p50"]
    verdict = "PASS" if added <= 5 else "FAIL"
    print(f"worker adds {added:.2f} ms at p50 over subprocess.run (target ≤ 5 ms: {verdict})")


if __name__ == "__main__":
    main()
