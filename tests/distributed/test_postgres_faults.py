"""A scheduler on a PostgreSQL of the test's own, which crashes and comes back while
a task fires every second: the daemon keeps running, fires the store could not take
inside their grace fail with CRON_RUNNER_BACKEND_FAILED, their reports wait in memory
(the buffer's depth is a metric and a health warning) and are written once the
database is back, so that every instant ends with exactly one stored outcome. A real
`cronwarden start`, a real server stopped with ``pg_ctl stop -m immediate``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import sqlalchemy
from private_postgres import PrivatePostgres

from cronwarden.testing import free_port

MANIFEST = """\
tasks:
  - {task_id: tick, cron: '* * * * * *', targets: [ops.tick], task_class: health,
     misfire_grace_s: 2}
"""


def _wait_dispatching(http: str, timeout_s: float = 60) -> None:
    """Until the daemon has dispatched a fire (it is up and has its database)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{http}/metrics", timeout=2) as reply:
                if b"tasks_dispatched_total{" in reply.read():
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("the daemon did not start dispatching")


def _scrape(http: str) -> tuple[float | None, list[str]]:
    """The report buffer's depth from /metrics and the health warnings, or ``None``."""
    try:
        with urllib.request.urlopen(f"http://{http}/metrics", timeout=2) as reply:
            metrics = reply.read().decode()
        with urllib.request.urlopen(f"http://{http}/internal/health/cron-runner",
                                    timeout=2) as reply:  # fmt: skip
            warnings = list(json.loads(reply.read())["warnings"])
    except OSError:
        return None, []
    for line in metrics.splitlines():
        if line.startswith("cronwarden_cronrunner_report_buffer_depth "):
            return float(line.split()[1]), warnings
    return None, warnings


def test_a_database_crash_delays_reports_and_loses_none(
    tmp_path: Path, private_postgres: PrivatePostgres
) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text(MANIFEST)
    http = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "CRONWARDEN_DATABASE_URL": private_postgres.url, "CRONWARDEN_HTTP": http}
    daemon = subprocess.Popen([sys.executable, "-m", "cronwarden", "start", "--manifest",
                               str(manifest), "--for", "90", "--log-format", "json"],
                              env=env, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)  # fmt: skip
    depths: list[float] = []
    seen_warnings: list[str] = []
    try:
        _wait_dispatching(http)
        time.sleep(2)
        private_postgres.kill()
        down_at = time.time()
        while time.time() - down_at < 7:
            depth, warnings = _scrape(http)
            if depth is not None:
                depths.append(depth)
            seen_warnings += warnings
            time.sleep(0.5)
        private_postgres.start()
        up_at = time.time()
        time.sleep(8)
        daemon.send_signal(signal.SIGTERM)
        stdout, stderr = daemon.communicate(timeout=60)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert daemon.returncode == 0, stderr[-3000:]
    tracebacks = [line for line in stderr.splitlines() if "Traceback" in line]
    assert not tracebacks, tracebacks[:2]

    engine = sqlalchemy.create_engine(private_postgres.url)
    with engine.connect() as conn:
        bodies = [json.loads(body) for (body,) in conn.exec_driver_sql(
            "SELECT body FROM reports WHERE task_id = 'tick'")]  # fmt: skip
    engine.dispose()
    outcomes = Counter(r["fired_at_ms"] for r in bodies if r["event_type"].startswith("CRON_TASK"))
    assert outcomes and max(outcomes.values()) == 1, "an instant has two outcomes"
    first, last = min(outcomes), max(outcomes)
    assert sorted(outcomes) == list(range(first, last + 1000, 1000)), "an instant has none"
    during = [r for r in bodies if down_at * 1000 + 500 < r["fired_at_ms"] < up_at * 1000 - 2500]
    assert during and all(r["event_type"] == "CRON_TASK_FAILED" and
                          r["reason_code"] == "CRON_RUNNER_BACKEND_FAILED"
                          for r in during), during  # fmt: skip
    assert last > up_at * 1000 + 3000, "firing went on after the database came back"
    assert max(depths) > 0, depths  # reports waited in memory, and the metric showed it
    assert any("wait in memory until the store answers" in w for w in seen_warnings)
