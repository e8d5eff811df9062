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
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from cronwarden.testing import free_port

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


KILLABLE_JOB = """\
import os, pathlib, sys, time
log = pathlib.Path(sys.argv[1])
with log.open("a") as out:
    out.write(f"{os.environ['CRONWARDEN_ATTEMPT']} {os.getpid()}\\n")
if os.environ["CRONWARDEN_ATTEMPT"] == "1":
    time.sleep(60)  # its worker is killed meanwhile
"""


def _wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )


def test_a_worker_killed_mid_run_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, shared_env: dict[str, str]
) -> None:
    (tmp_path / "job.py").write_text(KILLABLE_JOB)
    log = tmp_path / "attempts.log"
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text(
        f"targets: {{job: {{type: command, command: ['{sys.executable}', job.py, '{log}'],"
        f" cwd: '{tmp_path}'}}}}\n"
        "tasks: [{task_id: nightly, cron: '0 0 1 1 *', targets: [job], task_class: health}]\n"
    )
    env = {**shared_env, "CRONWARDEN_WORKER_IDLE_S": "2"}
    address = f"127.0.0.1:{free_port()}"
    scheduler = _cli(env, "start", "--no-worker", "--manifest", str(manifest), "--http", address)
    doomed = _cli(env, "worker", "--manifest", str(manifest))
    try:
        _wait_for(lambda: _answers(address), 30, "the scheduler")
        time.sleep(1)  # the worker is reading
        forced = subprocess.run([sys.executable, "-m", "cronwarden", "force-dispatch",
                                 "--task-id", "nightly", "--http", address], env=env,
                                capture_output=True, text=True, timeout=30)  # fmt: skip
        assert forced.returncode == 0, forced.stderr
        _wait_for(lambda: log.exists() and log.read_text().count("\n") == 1, 30, "attempt 1")
        job_pid = int(log.read_text().split()[1])
        doomed.kill()  # SIGKILL in the middle of the run
        doomed.communicate(timeout=30)
        _wait_for(lambda: not _alive(job_pid), 10, "the orphaned job to die with its worker")
        survivor = _cli(env, "worker", "--manifest", str(manifest))
        try:
            _wait_for(lambda: log.read_text().count("\n") == 2, 60, "the run to resume")
            time.sleep(1)  # its record is written
        finally:
            survivor.send_signal(signal.SIGTERM)
            survivor.communicate(timeout=30)
    finally:
        for process in (scheduler, doomed):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            process.communicate(timeout=30)
    listing = subprocess.run([sys.executable, "-m", "cronwarden", "runs", "nightly", "--json",
                              "--manifest", str(manifest)], env=env, capture_output=True,
                             text=True, check=True)  # fmt: skip
    runs = sorted(json.loads(listing.stdout), key=lambda run: run["attempt"])
    assert [(r["attempt"], r["status"], r["reason_code"], r["deliveries"]) for r in runs] == [
        (1, "cancelled", "CRON_RUNNER_RUN_ABANDONED", 1), (2, "succeeded", "", 2)]  # fmt: skip
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["1", "2"]


def _answers(address: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"http://{address}/healthz", timeout=1).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True
