"""The chaos test: 3 schedulers and 2 workers on one Redis and one PostgreSQL, 50
tasks firing every second, while schedulers and workers are killed with SIGKILL and
started again, and Redis itself is restarted. Real processes; about two minutes. The
workload is ``bench/chaos_workload.py``, which ``bench/soak.py`` runs for hours.

Asserted afterwards, from the shared database:
* no instant of any task was dispatched twice;
* no instant was missed while a scheduler was alive, outside the Redis outage;
* every committed fire has exactly one dispatch report;
* no fire ran twice: at most one successful run per fire and target.
"""

from __future__ import annotations

from pathlib import Path

from private_redis import PrivateRedis

from chaos_workload import analyse, run_workload

TASKS = 50
RUN_S = 60
SEED = 20261127


def test_chaos_no_duplicate_no_miss_one_report_one_run(
    tmp_path: Path, private_redis: PrivateRedis, postgres_database: str
) -> None:
    log = run_workload(tmp_path, private_redis, postgres_database, seconds=RUN_S, tasks=TASKS,
                       redis_restarts_at=[RUN_S / 2], seed=SEED)  # fmt: skip
    assert log.outages
    result = analyse(postgres_database, TASKS, log)
    where = f"events: {log.events}"
    assert not result.doubles, f"dispatched twice: {result.doubles}; {where}"
    assert not result.without_one_report, (
        f"rows without one report: {result.without_one_report}; {where}"
    )
    missed = result.missed
    assert not missed, f"{len(missed)} instants missed, first {missed[:5]}; {where}"
    assert not result.twice, f"ran twice: {result.twice}; {where}"
    dispatched = set(result.dispatched)
    assert {(task, at) for task, at, _ in result.succeeded} <= dispatched
    # and the test did what it says: kills, a busy fleet, runs done
    assert log.kills >= 5, where
    assert len(dispatched) > TASKS * (log.ended - log.began) * 0.6, (len(dispatched), where)
    succeeded = len(result.succeeded)
    assert succeeded > len(dispatched) * 0.6, (succeeded, len(dispatched), where)
