"""Spec 000's worst moments, made deterministic with failpoints: a scheduler that dies
right after its commit, or right after its claim, beside a live one on one Redis and
one PostgreSQL. Real processes, wall-clock time, generous bounds."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from fleet import logging_task
from private_redis import PrivateRedis
from redis import Redis


def _claimed_by(redis: PrivateRedis, holder: str) -> int:
    """The instant a dead scheduler held the claim of (its claim outlives it by the TTL)."""
    client = Redis.from_url(redis.url)
    try:
        for key in client.scan_iter("cronwarden:fire:tick:*"):
            value = client.get(key)
            if value is not None and value.decode().startswith(holder):
                return int(key.decode().rsplit(":", 1)[1])
    finally:
        client.close()
    raise AssertionError("no claim of the dead scheduler found")


def _scenario(tmp_path: Path, redis: PrivateRedis, database: str, point: str
              ) -> tuple[list[dict[str, Any]], list[str], int]:  # fmt: skip
    """A scheduler armed with ``point`` and a healthy one start together; the reports,
    the instants the job ran for, and the instant the armed one died on."""
    manifest, log = logging_task(tmp_path, "*/2 * * * * *")

    def env(host: str, **extra: str) -> dict[str, str]:
        return {**os.environ, "CRONWARDEN_REDIS_URL": redis.url,
                "CRONWARDEN_DATABASE_URL": database, "CRONWARDEN_HTTP": "127.0.0.1:0",
                "CRONWARDEN_STATE_DIR": str(tmp_path / host), **extra}  # fmt: skip

    command = [sys.executable, "-m", "cronwarden", "start", "--manifest", str(manifest)]
    survivor = subprocess.Popen(command, env=env("b"), text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)  # fmt: skip
    time.sleep(1.5)  # the survivor is ticking: it meets every instant the doomed one claims
    armed = env("a", CRONWARDEN_FAILPOINT=point)
    doomed = subprocess.Popen([*command, "--for", "40"], env=armed, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    doomed.communicate(timeout=60)  # both race for each instant: it wins one soon
    assert doomed.returncode == -9, "the failpoint did not fire"
    died_on = _claimed_by(redis, f"{socket.gethostname()}:{doomed.pid}:")
    time.sleep(14)  # the claim lapses (5 s), the survivor looks again (every 5 s)
    survivor.send_signal(signal.SIGTERM)
    _, err = survivor.communicate(timeout=90)
    assert survivor.returncode == 0, err
    done = subprocess.run([sys.executable, "-m", "cronwarden", "history", "tick", "--json",
                           "--limit", "5000", "--manifest", str(manifest)], env=env("b"),
                          capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    reports = [r for r in json.loads(done.stdout) if r["event_type"].startswith("CRON_TASK_")]
    ran = log.read_text().splitlines() if log.exists() else []
    return reports, ran, died_on


def _instants(reports: list[dict[str, Any]]) -> tuple[Counter[int], set[int]]:
    dispatched = Counter(r["fired_at_ms"] for r in reports
                         if r["event_type"] == "CRON_TASK_DISPATCHED")  # fmt: skip
    return dispatched, {r["fired_at_ms"] for r in reports}


def test_a_scheduler_killed_after_its_commit_is_finished_by_the_other_once(
    tmp_path: Path, private_redis: PrivateRedis, postgres_database: str
) -> None:
    reports, ran, died_on = _scenario(tmp_path, private_redis, postgres_database,
                                      "after-commit")  # fmt: skip
    dispatched, seen = _instants(reports)
    recovered = [r for r in reports if r.get("recovered_from")]
    assert [(r["fired_at_ms"], r["event_type"]) for r in recovered] == [
        (died_on, "CRON_TASK_DISPATCHED")]  # fmt: skip
    assert set(dispatched.values()) == {1}  # no instant twice
    assert seen == set(dispatched)  # and none only suppressed or missed
    assert len(ran) == len(set(ran))  # each ran once
    assert len(ran) >= len(dispatched) - 1  # the last may be cut by the stop


def test_a_scheduler_killed_after_its_claim_is_finished_by_the_other_once(
    tmp_path: Path, private_redis: PrivateRedis, postgres_database: str
) -> None:
    reports, ran, died_on = _scenario(tmp_path, private_redis, postgres_database,
                                      "after-claim")  # fmt: skip
    dispatched, seen = _instants(reports)
    assert dispatched[died_on] == 1  # finished by the other
    assert set(dispatched.values()) == {1}
    assert seen == set(dispatched)
