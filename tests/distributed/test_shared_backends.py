"""Two `cronwarden start` processes as on two hosts: no state folder in common, one
Redis (claims, bus) and one PostgreSQL (rows, reports, runs). Every instant is
dispatched once and run once, by one of them. Real processes and servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from fleet import logging_task
from private_redis import PrivateRedis


def test_two_hosts_on_redis_and_postgresql_dispatch_and_run_each_instant_once(
    tmp_path: Path, private_redis: PrivateRedis, postgres_database: str
) -> None:
    manifest, log = logging_task(tmp_path, "* * * * * *")
    hosts = []
    for host in ("a", "b"):
        env = {**os.environ, "CRONWARDEN_REDIS_URL": private_redis.url,
               "CRONWARDEN_DATABASE_URL": postgres_database, "CRONWARDEN_HTTP": "127.0.0.1:0",
               "CRONWARDEN_STATE_DIR": str(tmp_path / f"host-{host}")}  # fmt: skip
        hosts.append((env, subprocess.Popen(
            [sys.executable, "-m", "cronwarden", "start", "--manifest", str(manifest),
             "--for", "7"], env=env, text=True, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)))  # fmt: skip
    for _, process in hosts:
        _, err = process.communicate(timeout=90)
        assert process.returncode == 0, err
    env = hosts[0][0]

    def read(*args: str) -> list[dict[str, object]]:
        done = subprocess.run([sys.executable, "-m", "cronwarden", *args, "--json",
                               "--limit", "5000", "--manifest", str(manifest)], env=env,
                              capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
        return list(json.loads(done.stdout))

    reports = read("history", "tick")
    dispatched = Counter(r["fired_at_ms"] for r in reports
                         if r["event_type"] == "CRON_TASK_DISPATCHED")  # fmt: skip
    assert len(dispatched) >= 4 and set(dispatched.values()) == {1}
    runs = read("runs", "tick")
    succeeded = Counter(r["scheduled_at_ms"] for r in runs if r["status"] == "succeeded")
    assert set(succeeded.values()) == {1}, succeeded  # never twice
    assert set(succeeded) <= set(dispatched)
    assert len(succeeded) >= len(dispatched) - 2  # the stop may cut the last ones short
    stopped = sum(r["status"] in ("cancelled", "running") for r in runs)
    lines = log.read_text().splitlines()
    assert len(lines) == len(set(lines))  # no instant's job ran twice
    assert len(succeeded) <= len(lines) <= len(succeeded) + stopped
    status = subprocess.run([sys.executable, "-m", "cronwarden", "status", "--json", "--http",
                             "off", "--manifest", str(manifest)], env=env, capture_output=True,
                            text=True, check=True, timeout=60)  # fmt: skip
    backends = json.loads(status.stdout)["backends"]
    assert backends["store"].startswith("postgresql postgresql+psycopg://postgres@")
