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

from private_redis import PrivateRedis

JOB = (
    "import os, sys; open(sys.argv[1], 'a').write(os.environ['CRONWARDEN_SCHEDULED_AT'] + chr(10))"
)


def test_two_hosts_on_redis_and_postgresql_dispatch_and_run_each_instant_once(
    tmp_path: Path, private_redis: PrivateRedis, postgres_database: str
) -> None:
    log = tmp_path / "ran.log"
    (tmp_path / "job.py").write_text(JOB)
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text(
        f"targets: {{job: {{type: command, command: ['{sys.executable}', "
        f"'{tmp_path / 'job.py'}', '{log}']}}}}\n"
        "tasks: [{task_id: tick, cron: '* * * * * *', targets: [job], task_class: health}]\n"
    )
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
    runs = [r for r in read("runs", "tick") if r["status"] != "running"]
    ran = Counter(r["scheduled_at_ms"] for r in runs)
    assert set(ran.values()) == {1}, ran  # never twice
    assert set(ran) <= set(dispatched) and len(ran) >= len(dispatched) - 1  # the last may be cut
    lines = log.read_text().splitlines()
    assert len(lines) == len(set(lines)) == len(runs)
    status = subprocess.run([sys.executable, "-m", "cronwarden", "status", "--json", "--http",
                             "off", "--manifest", str(manifest)], env=env, capture_output=True,
                            text=True, check=True, timeout=60)  # fmt: skip
    backends = json.loads(status.stdout)["backends"]
    assert backends["store"].startswith("postgresql postgresql+psycopg://postgres@")
