"""`cronwarden start` as a real process on every-second tasks, read back with `history`.

These few tests use wall-clock time on purpose (real firing); their bounds are generous.
"""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

Run = Callable[..., CompletedProcess[str]]  # the `cli` fixture of conftest.py

MANIFEST = """\
tasks:
  - {task_id: every_second, cron_expression: "* * * * * *", targets: [ops.a], task_class: health}
  - {task_id: trading_tick, cron_expression: "* * * * * *", targets: [strat.b]}
  - {task_id: bad, cron_expression: "99 * * * *", targets: [x]}
"""


def _wait_started(database: Path, timeout_s: float = 60) -> None:
    """Until the daemon recorded its start (its file watch begins right after), + 1 s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(database, timeout=5) as db:
                if db.execute("SELECT 1 FROM reports WHERE event_type = 'CRON_MANIFEST_LOADED'"
                              ).fetchone():  # fmt: skip
                    time.sleep(1)
                    return
        except sqlite3.Error:
            pass  # not created yet
        time.sleep(0.1)
    raise AssertionError("the daemon did not start")


@contextmanager
def _daemon(manifest: Path, *extra: str) -> Iterator[subprocess.Popen[str]]:
    """A real `cronwarden start` in the background, stopped with SIGTERM at the end."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cronwarden", "start", "--manifest", str(manifest), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def _free_address() -> str:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{probe.getsockname()[1]}"
    probe.close()
    return address


def _write(tmp_path: Path) -> Path:
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text(MANIFEST)
    return manifest


def test_start_fires_every_second_and_history_reads_it_back(tmp_path: Path, cli: Run) -> None:
    manifest = _write(tmp_path)
    done = cli("start", "--manifest", str(manifest), "--for", "3.5")
    assert done.returncode == 0, done.stderr
    assert "CRON_RUNNER_INVALID_EXPRESSION tasks[2] 'bad'" in done.stderr  # rejected, rest run
    history = cli("history", "every_second", "--manifest", str(manifest), "--json", "--limit", "99")
    reports = json.loads(history.stdout)
    fired = sorted(r["fired_at_ms"] for r in reports)
    assert len(fired) >= 2
    assert len(fired) == len(set(fired))  # no instant twice
    assert all(b - a == 1000 for a, b in zip(fired, fired[1:], strict=False))  # none skipped
    assert {r["event_type"] for r in reports} == {"CRON_TASK_DISPATCHED"}
    assert (tmp_path / ".cronwarden" / "state.db").exists()
    everything = json.loads(cli("history", "--manifest", str(manifest), "--json").stdout)
    assert "CRON_MANIFEST_LOADED" in {r["event_type"] for r in everything}


def test_start_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    manifest = _write(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "cronwarden", "start", "--manifest", str(manifest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.5)
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert out.rstrip().endswith("cronwarden: stopped")


def test_state_dir_follows_the_environment(tmp_path: Path) -> None:
    manifest = _write(tmp_path)
    elsewhere = tmp_path / "state-here"
    env = {
        "CRONWARDEN_STATE_DIR": str(elsewhere),
        "PATH": "/usr/bin:/bin",
        "CRONWARDEN_HTTP": "off",
    }
    done = subprocess.run(
        [sys.executable, "-m", "cronwarden", "start", "--manifest", str(manifest), "--for", "0.5"],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (elsewhere / "state.db").exists()


def test_kill_switch_and_pause_reach_a_running_scheduler(tmp_path: Path, cli: Run) -> None:
    manifest = _write(tmp_path)
    with _daemon(manifest):
        time.sleep(1.5)
        on = cli("killswitch", "on", "--reason", "drill", "--actor", "alice",
                 "--manifest", str(manifest))  # fmt: skip
        assert on.returncode == 0 and "kill switch: ON (by alice" in on.stdout
        paused = cli("pause", "every_second", "--manifest", str(manifest))
        assert paused.returncode == 0
        time.sleep(2.5)  # the scheduler sees each change from its next fire on
    reports = json.loads(cli("history", "--manifest", str(manifest), "--json", "--limit",
                             "500").stdout)  # fmt: skip
    trading = [r["reason_code"] for r in reports if r["task_id"] == "trading_tick"]
    health = [r["reason_code"] for r in reports if r["task_id"] == "every_second"]
    assert trading[0] == "KILL_SWITCH_ACTIVE"  # newest first
    assert "CRON_RUNNER_TASK_DISPATCHED" in trading  # before the switch
    assert health[0] == "CRON_RUNNER_TASK_PAUSED"
    events = {r["event_type"] for r in reports}
    assert {"KILL_SWITCH_CHANGED", "CRON_TASK_PAUSED"} <= events
    status = cli("killswitch", "status", "--json", "--manifest", str(manifest))
    assert json.loads(status.stdout)["active"] is True


def test_pausing_an_unknown_task_is_one_line_and_exit_2(tmp_path: Path, cli: Run) -> None:
    done = cli("pause", "nope", "--manifest", str(_write(tmp_path)))
    assert done.returncode == 2
    assert done.stderr.startswith("CRON_RUNNER_UNKNOWN_TASK: 'nope' is not a task")


def test_list_shows_each_task_with_its_next_fire_and_record(tmp_path: Path, cli: Run) -> None:
    manifest = _write(tmp_path)
    assert cli("start", "--manifest", str(manifest), "--for", "2.5").returncode == 0
    assert cli("pause", "trading_tick", "--manifest", str(manifest)).returncode == 0
    rows = {r["task_id"]: r for r in json.loads(cli("list", "--manifest", str(manifest),
                                                     "--json").stdout)}  # fmt: skip
    assert set(rows) == {"every_second", "trading_tick"}  # 'bad' was rejected
    every = rows["every_second"]
    assert every["description"] == "Every second"
    assert every["run_count"] >= 1 and every["failure_count"] == 0
    assert every["last_status"] == "CRON_TASK_DISPATCHED"
    assert every["next_fire"] is not None and every["paused"] is False
    assert rows["trading_tick"]["paused"] is True and rows["trading_tick"]["next_fire"] is None


def test_a_running_scheduler_reloads_its_manifest_and_keeps_the_last_good_one(
    tmp_path: Path, cli: Run
) -> None:
    manifest = _write(tmp_path)
    with _daemon(manifest) as process:
        _wait_started(manifest.parent / ".cronwarden" / "state.db")
        manifest.write_text(MANIFEST + "  - {task_id: added, cron: '* * * * * *', targets: [z]}\n")
        time.sleep(2.5)
        manifest.write_text("tasks: [")  # unreadable: the last good manifest keeps running
        time.sleep(2.0)
        process.send_signal(signal.SIGHUP)
        time.sleep(1.5)
    reports = json.loads(cli("history", "--json", "--limit", "999",
                             "--manifest", str(manifest)).stdout)  # fmt: skip
    loads = [r for r in reports if r["event_type"] == "CRON_MANIFEST_LOADED"]
    assert any(r.get("added") == ["added"] and r["trigger"] == "file watch" for r in loads)
    failed = [r for r in reports if r["event_type"] == "CRON_MANIFEST_RELOAD_FAILED"]
    assert {r["trigger"] for r in failed} >= {"file watch", "SIGHUP"}
    assert all(r["reason_code"] == "CRON_RUNNER_MANIFEST_UNREADABLE" for r in failed)
    added = sorted(r["fired_at_ms"] for r in reports if r["task_id"] == "added")
    assert len(added) >= 2
    kept = sorted(r["fired_at_ms"] for r in reports if r["task_id"] == "every_second")
    assert kept[-1] > failed[-1]["fired_at_ms"] - 2000  # still firing after the bad write
    assert len(kept) == len(set(kept))


def test_the_daemon_serves_metrics_and_its_health(tmp_path: Path) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text(
        "metrics: {namespace: polytraders_gov}\n"
        "tasks: [{task_id: a, cron: '* * * * * *', targets: [x], task_class: health}]\n"
    )
    with _daemon(manifest, "--http", "127.0.0.1:0") as process:
        assert process.stdout is not None
        line = ""
        while "http: serving" not in line:
            line = process.stdout.readline()
            assert line, "the daemon exited before serving"
        port = int(line.rsplit(":", 1)[1])
        time.sleep(2.5)
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/internal/health/cron-runner", timeout=10) as reply:
            health = json.loads(reply.read())
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as reply:
            metrics = reply.read().decode()
    assert health["status"] == "green" and health["task_count"] == 1
    assert health["successful"] >= 1 and health["next_fire_ms"] is not None
    assert (
        'polytraders_gov_cronrunner_tasks_dispatched_total{task_class="health",task_id="a"}'
        in metrics
    )


def test_a_port_in_use_is_a_one_line_startup_error(tmp_path: Path, cli: Run) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        done = cli("start", "--manifest", str(_write(tmp_path)), "--http", f"127.0.0.1:{port}")
    finally:
        taken.close()
    assert done.returncode == 2
    assert done.stderr.startswith("CRONWARDEN_HTTP_UNAVAILABLE: http: cannot listen on")


def test_status_says_whether_the_scheduler_is_up(tmp_path: Path, cli: Run) -> None:
    manifest = _write(tmp_path)
    down = json.loads(cli("status", "--manifest", str(manifest), "--json").stdout)
    assert down["daemon"] is None and down["last_24h"] == {}
    address = _free_address()
    with _daemon(manifest, "--http", address):
        time.sleep(2.5)
        up = cli("status", "--manifest", str(manifest), "--http", address)
    assert up.returncode == 0
    assert "scheduler:   red" in up.stdout  # the manifest has a rejected entry
    assert "CRON_TASK_DISPATCHED" in up.stdout


def test_force_dispatch_goes_through_the_running_scheduler(tmp_path: Path, cli: Run) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text(
        "quiet_hours: [{start: '00:00', end: '00:00'}]\n"
        "tasks:\n"
        "  - {task_id: nightly, cron: '0 3 * * *', targets: [gov.r], task_class: governance,\n"
        "     disable_during_quiet_hours: true}\n"
        "  - {task_id: trade, cron: '0 3 * * *', targets: [strat.s]}\n"
    )
    address = _free_address()
    with _daemon(manifest, "--http", address):
        time.sleep(2.0)
        done = cli("force-dispatch", "--task-id", "nightly", "--reason", "missed run",
                   "--actor", "alice", "--http", address)  # fmt: skip
        unknown = cli("force-dispatch", "--task-id", "nope", "--http", address)
        cli("killswitch", "on", "--reason", "drill", "--manifest", str(manifest))
        blocked = cli("force-dispatch", "--task-id", "trade", "--http", address)
    assert done.returncode == 0, done.stderr
    assert "CRON_TASK_DISPATCHED nightly gov.r" in done.stdout  # quiet hours do not apply
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("CRON_RUNNER_UNKNOWN_TASK:")
    assert "KILL_SWITCH_ACTIVE" in blocked.stdout  # the kill switch still does
    history = json.loads(cli("history", "nightly", "--manifest", str(manifest), "--json").stdout)
    assert history[0]["forced"] is True and history[0]["actor"] == "alice"
    assert history[0]["reason"] == "missed run"


def test_force_dispatch_without_a_scheduler_is_one_line(cli: Run) -> None:
    done = cli("force-dispatch", "--task-id", "x", "--http", "127.0.0.1:9")
    assert done.returncode == 2
    assert done.stderr.startswith("CRONWARDEN_DAEMON_UNREACHABLE: no scheduler answers")


def test_json_logs_carry_one_outcome_a_line(tmp_path: Path, cli: Run) -> None:
    done = cli("start", "--manifest", str(_write(tmp_path)), "--for", "2.5", "--log-format", "json")
    assert done.returncode == 0
    lines = [json.loads(line) for line in done.stderr.splitlines()]  # every line is JSON
    assert (
        lines[0]["reason_code"] == "CRON_RUNNER_INVALID_EXPRESSION" and lines[0]["level"] == "ERROR"
    )
    dispatched = [line for line in lines if line.get("event_type") == "CRON_TASK_DISPATCHED"]
    assert dispatched and all(line["lock_acquired"] is True for line in dispatched)
    assert {"ts", "level", "task_id", "trace_id", "reason_code"} <= set(dispatched[0])


def test_a_killed_scheduler_restarts_where_it_stopped(tmp_path: Path, cli: Run) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text(
        "tasks:\n"
        "  - {task_id: steady, cron: '* * * * * *', targets: [ops.a], task_class: health}\n"
        "  - {task_id: strict, cron: '* * * * * *', targets: [ops.b], task_class: health,\n"
        "     misfire_grace_s: 1}\n"
    )

    def reports(task_id: str) -> list[dict[str, Any]]:
        found = cli("history", task_id, "--manifest", str(manifest), "--json", "--limit", "999")
        return list(json.loads(found.stdout))

    with _daemon(manifest) as first:
        deadline = time.monotonic() + 30
        while len(reports("strict")) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        first.kill()  # no clean stop: whatever was in flight stays in flight
        first.wait(timeout=30)
    time.sleep(3)  # instants pass while nothing runs
    done = cli("start", "--manifest", str(manifest), "--for", "2.5")
    assert done.returncode == 0, done.stderr
    for task_id in ("steady", "strict"):
        found = reports(task_id)
        story = "\n".join(f"{r['fired_at_ms']} {r['event_type']} {r['reason_code']} "
                          f"{r.get('recovered_from', '')}" for r in reversed(found))  # fmt: skip
        dispatched = [r["fired_at_ms"] for r in found if r["event_type"] == "CRON_TASK_DISPATCHED"]
        assert len(dispatched) == len(set(dispatched)), f"{task_id} ran an instant twice:\n{story}"
        instants = sorted({r["fired_at_ms"] for r in found})
        expected = list(range(instants[0], instants[-1] + 1000, 1000))
        assert instants == expected, f"{task_id} has a silent gap:\n{story}"
    missed = [r for r in reports("strict") if r["event_type"] == "CRON_TASK_MISSED"]
    assert len(missed) >= 2  # the downtime, past the 1 s grace: recorded, not fired late
    steady = reports("steady")
    outcomes = [(r["fired_at_ms"], r["event_type"], r["reason_code"]) for r in steady]
    assert {r["event_type"] for r in steady} == {"CRON_TASK_DISPATCHED"}, outcomes  # in grace
    assert len(steady) == len({r["fired_at_ms"] for r in steady}), outcomes  # one per instant


def test_start_runs_command_targets_and_runs_reads_them_back(tmp_path: Path, cli: Run) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    script = "import os, pathlib; pathlib.Path(os.environ['CRONWARDEN_ARTIFACT_DIR'], 'x.txt')"
    manifest.write_text(
        "artifacts_dir: out\n"
        "targets:\n"
        f"  writer: {{type: command, command: [{sys.executable}, -c,"
        f" \"{script}.write_text('done')\"]}}\n"
        "tasks:\n"
        "  - {task_id: tick, cron: '* * * * * *', targets: [writer], task_class: health}\n"
    )
    done = cli("start", "--manifest", str(manifest), "--for", "3")
    assert done.returncode == 0, done.stderr
    found = json.loads(cli("runs", "tick", "--manifest", str(manifest), "--json").stdout)
    assert found and {r["status"] for r in found} == {"succeeded"}, found
    for run in found:
        folder = Path(run["artifact_dir"])
        assert folder.parent == tmp_path / "out" / "tick"
        assert (folder / "x.txt").read_text() == "done"
        assert json.loads((folder / "run.json").read_text())["run_id"] == run["run_id"]
    history = json.loads(cli("history", "tick", "--manifest", str(manifest), "--json").stdout)
    assert {r["trace_id"] for r in found} <= {r["trace_id"] for r in history}  # linked
