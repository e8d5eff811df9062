"""The supervisor inside `cronwarden start`: workloads as real processes, the watchdog
restarting a frozen one through the supervisor, the operator's commands, and a
shutdown that leaves no process behind.

Wall-clock time on purpose; bounds are generous.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

from test_cli_health import BOT, _daemon, _free_port, _history, _until

Run = Callable[..., CompletedProcess[str]]  # the `cli` fixture of conftest.py


def _workloads(cli: Run, http: str) -> dict[str, dict[str, Any]]:
    done = cli("supervisor", "status", "--http", http, "--json")
    assert done.returncode in (0, 1), done.stderr
    return {w["name"]: w for w in json.loads(done.stdout)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _manifest(tmp_path: Path, port: int) -> Path:
    beat = tmp_path / "db.beat"
    manifest = tmp_path / "cronwarden.json"
    manifest.write_text(json.dumps({
        "heartbeat": {"heartbeat_interval_s": 1, "missed_heartbeats_to_alert": 2},
        "services": [{"slug": "app", "timeout_s": 0.5,
                      "health_url": f"http://127.0.0.1:{port}/internal/health/app",
                      "restart": {"supervisor": "app"}}],
        "supervisor": {"workloads": [
            {"name": "app", "command": [sys.executable, str(BOT), str(port),
                                        str(tmp_path / "app.pid")],
             "depends_on": ["db"], "stop_grace_s": 1, "backoff_initial_s": 0.1,
             "workload_kind": "bot"},
            {"name": "db", "command": [sys.executable, "-c",
                                       "import pathlib, time\n"
                                       f"p = pathlib.Path({str(beat)!r})\n"
                                       "while True:\n    p.touch(); time.sleep(0.2)"],
             "liveness": {"heartbeat_file": str(beat)}, "hang_timeout_s": 5,
             "stop_grace_s": 1},
        ]},
    }))  # fmt: skip
    return manifest


def test_workloads_run_restart_and_stop_and_nothing_outlives_the_daemon(
    tmp_path: Path, cli: Run
) -> None:
    port = _free_port()
    manifest = _manifest(tmp_path, port)
    with _daemon(manifest) as (process, http):
        running = _until(lambda: (lambda w: w if all(x["state"] == "running" and x["pid"]
                                  for x in w.values()) and len(w) == 2 else None)(
                                  _workloads(cli, http)), what="both running")  # fmt: skip
        first = running["app"]["pid"]
        assert running["app"]["labels"]["workload_kind"] == "bot"
        assert running["db"]["liveness"] == "heartbeat_file"
        os.kill(first, signal.SIGKILL)  # a crash: restarted by its policy
        again = _until(lambda: (lambda w: w if w["app"]["pid"] not in (None, first)
                       and w["app"]["state"] == "running" else None)(_workloads(cli, http)),
                       what="app restarted")  # fmt: skip
        assert again["app"]["restarts_total"] == 1
        assert again["app"]["last_reason"] == "killed by SIGKILL"
        assert again["db"]["pid"] == running["db"]["pid"]  # its sibling undisturbed
        with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as reply:
            metrics = reply.read().decode()
        assert 'cronwarden_supervisor_workload_up{workload="app",workload_kind="bot"} 1.0' in (
            metrics)  # fmt: skip
        assert 'cronwarden_supervisor_restarts_total{workload="app"} 1.0' in metrics
        stopped = cli("supervisor", "stop", "app", "--http", http)
        assert stopped.returncode == 0 and "app: stopped" in stopped.stdout
        assert _workloads(cli, http)["app"]["state"] == "stopped"
        restarted = cli("supervisor", "restart", "app", "--http", http)
        assert restarted.returncode == 0 and "app: running" in restarted.stdout
        unknown = cli("supervisor", "restart", "nope", "--http", http)
        pids = [w["pid"] for w in _workloads(cli, http).values()]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    assert unknown.returncode == 2 and unknown.stderr.startswith("SUPERVISOR_UNKNOWN_WORKLOAD")
    assert not any(_alive(pid) for pid in pids)  # no orphans


def test_the_watchdog_restarts_a_frozen_bot_through_the_supervisor(
    tmp_path: Path, cli: Run
) -> None:
    """Spec 002 §26 integration: the restart command reaches the process manager, the
    bot restarts, its miss count resets on recovery."""
    port = _free_port()
    manifest = _manifest(tmp_path, port)
    with _daemon(manifest) as (_, http):
        _until(lambda: (lambda v: v["services"] and v["services"][0]["status"] == "healthy")(
            json.loads(cli("health", "status", "--http", http, "--json").stdout)),
            what="app healthy")  # fmt: skip
        frozen = _workloads(cli, http)["app"]["pid"]
        before = len(_history(cli, manifest, "app"))  # the start may have missed a poll
        os.kill(frozen, signal.SIGSTOP)  # alive, answering nothing: a hung bot
        _until(lambda: any(r["event_type"] == "HEALTH_BOT_RECOVERED"
                           for r in _history(cli, manifest, "app")[before:]),
               timeout_s=60, what="recovered")  # fmt: skip
        after = _workloads(cli, http)["app"]
    history = _history(cli, manifest, "app")[before:]
    events = [r["event_type"] for r in history]
    assert events[:3] == ["HEALTH_BOT_DOWN", "HEALTH_AUTO_RESTART", "HEALTH_BOT_RECOVERED"]
    restart = history[1]
    assert restart["restart_ok"] is True and "supervisor restarted app" in restart["restart"]
    assert after["pid"] != frozen and not _alive(frozen), (after, restart)
