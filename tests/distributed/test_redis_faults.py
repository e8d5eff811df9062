"""Schedulers on a Redis of the test's own: two of them share the claims (one dispatch
per instant, the other a duplicate), and a Redis outage falls back to in-process
claims with a warning and comes back (spec 000 REDIS_LOCK_UNAVAILABLE). Real
processes, wall-clock time, generous bounds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from private_redis import PrivateRedis

MANIFEST = """\
tasks:
  - {task_id: tick, cron: '* * * * * *', targets: [ops.tick], task_class: health}
"""


def _env(redis: PrivateRedis, http: str) -> dict[str, str]:
    return {**os.environ, "CRONWARDEN_REDIS_URL": redis.url, "CRONWARDEN_HTTP": http}


def _start(manifest: Path, env: dict[str, str], seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cronwarden", "start", "--manifest",
                             str(manifest), "--for", str(seconds), "--log-format", "json"],
                            env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip


def _history(manifest: Path) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "cronwarden", "history", "tick", "--json",
                           "--limit", "5000", "--manifest", str(manifest)],
                          capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    return list(json.loads(done.stdout))


def test_two_schedulers_on_one_redis_dispatch_each_instant_once(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text(MANIFEST)
    env = _env(private_redis, "127.0.0.1:0")
    both = [_start(manifest, env, 6) for _ in range(2)]
    for process in both:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
    reports = [r for r in _history(manifest) if r["event_type"].startswith("CRON_TASK_")]
    dispatched = Counter(r["fired_at_ms"] for r in reports
                         if r["event_type"] == "CRON_TASK_DISPATCHED")  # fmt: skip
    assert len(dispatched) >= 4 and set(dispatched.values()) == {1}  # once per instant
    duplicates = [r for r in reports if r["reason_code"] == "CRON_RUNNER_DUPLICATE_FIRE"]
    assert duplicates, "the second scheduler never met the first one's claim"
    assert {r["lock_mode"] for r in reports if r["event_type"] == "CRON_TASK_DISPATCHED"} == {
        "redis"}  # fmt: skip


def _health(address: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://{address}/internal/health/cron-runner",
                                    timeout=2) as reply:  # fmt: skip
            return dict(json.loads(reply.read()))
    except urllib.error.HTTPError as err:
        return dict(json.loads(err.read()))


def test_a_redis_outage_falls_back_to_local_claims_with_a_warning_and_recovers(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text(MANIFEST)
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{probe.getsockname()[1]}"
    probe.close()
    scheduler = _start(manifest, _env(private_redis, address), 16)
    try:
        time.sleep(4)
        assert _health(address)["lock_mode"] == "redis"
        private_redis.kill()
        killed_at = time.time()
        time.sleep(4)
        during = _health(address)
        private_redis.start()  # the same port, empty: it kept nothing
        restored_at = time.time()
    finally:
        _, log = scheduler.communicate(timeout=60)
    assert scheduler.returncode == 0, log
    assert during["lock_mode"] == "local"
    assert during["warnings"][0].startswith("REDIS_LOCK_UNAVAILABLE")
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    warned = [line for line in lines if "REDIS_LOCK_UNAVAILABLE" in line["message"]]
    assert len(warned) == 1  # once per outage, not once per fire
    reports = [r for r in _history(manifest) if r["event_type"].startswith("CRON_TASK_")]
    outage = [r for r in reports if killed_at + 1 < r["fired_at_ms"] / 1000 < restored_at - 1]
    assert outage and {r["lock_mode"] for r in outage} == {"local"}
    assert {r["event_type"] for r in outage} <= {"CRON_TASK_FAILED", "CRON_TASK_MISSED"}
    after = [r for r in reports if r["fired_at_ms"] / 1000 > restored_at + 6]
    assert after and all(r["lock_mode"] == "redis" for r in after)
    assert "CRON_TASK_DISPATCHED" in {r["event_type"] for r in after}
