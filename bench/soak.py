"""The soak: the chaos workload of ``bench/chaos_workload.py`` for as long as asked.

3 ``cronwarden start --no-worker`` schedulers and 2 ``cronwarden worker`` processes on a
``redis-server`` of the soak's own (a free port, nothing on disk) and one PostgreSQL
database; ``--tasks`` tasks (default 50) firing every second, each running ``true``.
One random process at a time is SIGKILLed, started again 1–3 s later, and 3–6 s after
that, once every scheduler is up again (10–15 s to start under this load), the next one
is killed. Redis is killed and started again, empty, 3 s later, every 10 minutes (once,
half-way, in a run shorter than 20 minutes). Afterwards the database is read and this
prints:

* fires expected (every task at every whole second of the faults, less the Redis
  outages and their grace: 30 s before, 10 s after), and dispatched (dispatch reports);
* duplicates: (task, instant) with more than one dispatch report;
* missed: expected instants with no dispatch report;
* rows without one report: dispatch rows settled ``published`` without a dispatch report,
  or reports without such a row;
* runs that succeeded twice: (task, instant, target) with two successful runs;
* kills performed, Redis restarts;
* dispatch latency p50 / p99 / max over every dispatch report: ``recorded_at_ms -
  fired_at_ms`` of its ``reports`` row, i.e. from the scheduled instant until the
  scheduler, having claimed the fire in Redis, committed its row in PostgreSQL and
  published its trigger on the Redis stream, stamps the report just before the
  transaction that stores it (``Dispatcher.record``). Fires taken over from a killed
  scheduler are included, which makes the max.

Exit code 1 if there is any duplicate, miss, report mismatch or double run.

Run (PostgreSQL and ``redis-server`` needed; a fresh database is created on the server of
``--admin-url`` and dropped afterwards, unless ``--database-url`` is given)::

    .venv/bin/python bench/soak.py --duration 1920 [--tasks 50] [--database-url URL]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from chaos_workload import ChaosLog, analyse, run_workload

# The fault tests' own redis-server, reused rather than copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "distributed"))
from private_redis import PrivateRedis

from cronwarden.testing import fresh_database

REDIS_EVERY_S = 600
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def redis_restarts(duration: float) -> list[float]:
    """Seconds into the faults at which Redis is restarted: every 10 minutes, at least once."""
    every = [float(at) for at in range(REDIS_EVERY_S, int(duration) - 30, REDIS_EVERY_S)]
    return every or [duration / 2]


def report(tasks: int, log: ChaosLog, database_url: str) -> int:
    result = analyse(database_url, tasks, log)
    latency = result.latency()
    missed, doubles = result.missed, result.doubles
    mismatch, twice = result.without_one_report, result.twice
    in_outages = result.fires_in_window - len(result.expected)
    lines = [
        f"faults for {log.ended - log.began:.0f} s, {tasks} tasks every second",
        f"fires expected            {len(result.expected):>9,}  (all {result.fires_in_window:,}"
        f" less {in_outages:,} in the {len(log.outages)} Redis outages and their grace)",
        f"dispatched                {sum(result.dispatched.values()):>9,}  (distinct "
        f"{len(result.dispatched):,}; taken over or recovered {result.taken_over:,})",
        f"duplicates                {len(doubles):>9,}",
        f"missed (outside outages)  {len(missed):>9,}",
        f"rows without one report   {len(mismatch):>9,}",
        f"runs succeeded twice      {len(twice):>9,}  (successful runs {len(result.succeeded):,})",
        f"kills performed           {log.kills:>9,}  (Redis restarts {len(log.outages)})",
        f"dispatch latency          p50 {latency['p50']:.0f} ms  p99 {latency['p99']:.0f} ms"
        f"  max {latency['max']:.0f} ms  (scheduled instant -> report stamped, "
        f"{len(result.latencies_ms):,} reports)",
    ]
    print("\n".join(lines))
    for name, found in (("duplicates", sorted(doubles.items())), ("missed", missed),
                        ("without one report", sorted(mismatch)),
                        ("succeeded twice", sorted(twice.items()))):  # fmt: skip
        if found:
            print(f"{name}, first 20: {found[:20]}")
    late = sorted(at for at in result.latencies_ms if at > 1000)
    print(f"dispatch reports later than 1 s: {len(late):,}")
    ran = {(task, at) for task, at, _ in result.succeeded}
    print(
        f"published fires without a successful run: {len(result.published - ran):,}; runs: "
        + ", ".join(f"{what} {n:,}" for what, n in result.run_outcomes.most_common())
    )
    print(f"load average at the end: {Path('/proc/loadavg').read_text().split()[:3]}")
    print("outages: " + ", ".join(f"{time.strftime('%H:%M:%S', time.gmtime(down))}Z for "
                                  f"{up - down:.1f} s" for down, up in log.outages))  # fmt: skip
    return 1 if missed or doubles or mismatch or twice else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, required=True, help="seconds of faults")
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--database-url", help="an existing, empty database (default: fresh)")
    parser.add_argument("--admin-url", default=ADMIN_URL, help="where the fresh one is made")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = random.randrange(2**32) if args.seed is None else args.seed
    folder = Path(tempfile.mkdtemp(prefix="cronwarden-soak-"))
    print(f"seed {seed}; logs in {folder}; Redis restarts at {redis_restarts(args.duration)} s",
          flush=True)  # fmt: skip
    redis = PrivateRedis(folder)
    redis.start()
    database = nullcontext(args.database_url) if args.database_url else fresh_database(
        args.admin_url)  # fmt: skip
    try:
        with database as url:
            log = run_workload(folder, redis, url, seconds=args.duration, tasks=args.tasks,
                               redis_restarts_at=redis_restarts(args.duration), seed=seed,
                               say=lambda line: print(line, flush=True))  # fmt: skip
            code = report(args.tasks, log, url)
    finally:
        redis.kill()
    if code == 0:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"FAILED; the processes' logs are kept in {folder}")
    return code


if __name__ == "__main__":
    sys.exit(main())
