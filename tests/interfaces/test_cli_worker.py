"""`cronwarden worker` processes sharing a Redis Streams bus with a scheduler started
`--no-worker`: every fire runs once, on one of them. Real processes, a real Redis,
wall-clock time (generous bounds)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

JOB = "import os; print(os.environ['CRONWARDEN_SCHEDULED_AT'], os.getpid())"


@pytest.fixture
def shared_env(redis_url: str) -> Iterator[dict[str, str]]:
    prefix = f"cwtest-{secrets.token_hex(4)}"
    yield {**os.environ, "CRONWARDEN_REDIS_URL": redis_url, "CRONWARDEN_REDIS_PREFIX": prefix,
           "CRONWARDEN_HTTP": "127.0.0.1:0"}  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


def _cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cronwarden", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def test_workers_share_the_triggers_and_each_fire_runs_once(
    tmp_path: Path, shared_env: dict[str, str]
) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text(
        f"targets: {{job: {{type: command, command: ['{sys.executable}', -c, \"{JOB}\"]}}}}\n"
        "tasks: [{task_id: tick, cron: '* * * * * *', targets: [job], task_class: health}]\n"
    )
    workers = [_cli(shared_env, "worker", "--manifest", str(manifest), "--for", "12")
               for _ in range(2)]  # fmt: skip
    time.sleep(1.5)  # the workers are reading
    scheduler = _cli(shared_env, "start", "--no-worker", "--manifest", str(manifest),
                     "--for", "6")  # fmt: skip
    scheduler_out, scheduler_err = scheduler.communicate(timeout=60)
    assert scheduler.returncode == 0, scheduler_err
    time.sleep(3)  # the last triggers are run
    for process in workers:
        process.send_signal(signal.SIGTERM)
    outputs = [process.communicate(timeout=60) for process in workers]
    assert all(process.returncode == 0 for process in workers), outputs
    command = [sys.executable, "-m", "cronwarden", "runs", "tick", "--json", "--limit", "1000",
               "--manifest", str(manifest)]  # fmt: skip
    listing = subprocess.run(command, env=shared_env, capture_output=True, text=True, check=True)
    runs = json.loads(listing.stdout)
    dispatched = scheduler_out.count("CRON_TASK_DISPATCHED")
    assert dispatched >= 4, scheduler_out
    per_instant = Counter(run["scheduled_at_ms"] for run in runs)
    assert max(per_instant.values()) == 1, per_instant  # never twice
    assert len(per_instant) == dispatched, (len(per_instant), dispatched)  # none lost
    assert {run["status"] for run in runs} == {"succeeded"}
    started = " ".join(err for _, err in outputs)
    assert "bus redis streams" in started


def test_a_worker_needs_a_shared_bus(tmp_path: Path) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text("tasks: []\n")
    env = {key: value for key, value in os.environ.items() if key != "CRONWARDEN_REDIS_URL"}
    for args in (["worker"], ["start", "--no-worker"]):
        done = subprocess.run([sys.executable, "-m", "cronwarden", *args, "--manifest",
                               str(manifest)], env=env, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("CRONWARDEN_NO_SHARED_BUS:")


def test_status_names_the_backends_without_their_credentials(tmp_path: Path) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text("tasks: []\n")
    env = {**os.environ, "CRONWARDEN_REDIS_URL": "redis://:hunter22@10.1.2.3:6379/0"}
    command = [sys.executable, "-m", "cronwarden", "status", "--json", "--http", "off",
               "--manifest", str(manifest)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    backends = json.loads(done.stdout)["backends"]
    assert backends["bus"] == "redis streams redis://:***@10.1.2.3:6379/0"
    assert "hunter22" not in done.stdout
