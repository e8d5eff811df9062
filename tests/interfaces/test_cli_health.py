"""The watchdog end to end: `cronwarden start` watching real bot processes, the CLI's
`health` and `deadman` commands, systemd notifications and the dead-man ping.

Wall-clock time on purpose (real polling every second); bounds are generous.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from health_server import health_server, silent_port

Run = Callable[..., CompletedProcess[str]]  # the `cli` fixture of conftest.py
BOT = Path(__file__).with_name("bot.py")


def _free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port


@contextmanager
def _daemon(manifest: Path, *extra: str, env: dict[str, str] | None = None,
            ) -> Iterator[tuple[subprocess.Popen[str], str]]:  # fmt: skip
    """A real `cronwarden start`, its HOST:PORT once it serves; SIGTERM at the end."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cronwarden", "start", "--manifest", str(manifest),
         "--http", "127.0.0.1:0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = ""
        while "http: serving" not in line:
            line = process.stdout.readline()
            assert line, f"the daemon exited before serving: {process.stderr.read()}"  # type: ignore[union-attr]
        yield process, line.rsplit(" ", 1)[1].strip()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def _until(condition: Callable[[], Any], timeout_s: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _history(cli: Run, manifest: Path, slug: str) -> list[dict[str, Any]]:
    done = cli("health", "history", slug, "--manifest", str(manifest), "--json")
    assert done.returncode == 0, done.stderr
    return list(reversed(json.loads(done.stdout)))  # oldest first


def _kill_bot(pidfile: Path) -> int:
    pid = int(pidfile.read_text())
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return pid


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A detached bot serving its health; killed at the end, whichever pid it has then."""
    port, pidfile = _free_port(), tmp_path / "bot.pid"
    started = subprocess.run([sys.executable, str(BOT), str(port), str(pidfile), "--detach"],
                             timeout=30, check=False)  # fmt: skip
    assert started.returncode == 0
    yield port, pidfile
    _kill_bot(pidfile)


def _restart_command(how: str, port: int, pidfile: Path) -> list[str]:
    """A bot that detaches itself into its own session and waits until it answers, or
    the usual relaunch on a host without systemd: ``nohup … &`` from a shell that exits
    at once, the bot left in the command's own process group."""
    if how == "detach":
        return [sys.executable, str(BOT), str(port), str(pidfile), "--detach"]
    line = shlex.join([sys.executable, str(BOT), str(port), str(pidfile)])
    return ["sh", "-c", f"nohup {line} >/dev/null 2>&1 &"]


@pytest.mark.parametrize("how", ["detach", "nohup"])
def test_bot_crash_is_paged_restarted_and_recovers(
    tmp_path: Path, cli: Run, bot: tuple[int, Path], how: str
) -> None:
    """Spec 002 §19 BOT_CRASH: kill a real bot; its misses are counted, BOT_DOWN pages,
    the restart command runs, and the restarted bot is RECOVERED: what the restart
    command started is left running when it exits."""
    port, pidfile = bot
    manifest = tmp_path / "cronwarden.json"
    manifest.write_text(json.dumps({
        "heartbeat": {"heartbeat_interval_s": 1, "missed_heartbeats_to_alert": 2},
        "services": [{
            "slug": "strat.some_strategy", "health_url": f"http://127.0.0.1:{port}/internal/health/x",
            "timeout_s": 0.5, "activity_field": "last_decision_ms", "max_staleness_s": 60,
            "restart_command": _restart_command(how, port, pidfile),
        }],
    }))  # fmt: skip
    with _daemon(manifest) as (_, http):
        _until(lambda: _get(f"http://{http}/internal/health/health-heartbeat")[1]
               .get("healthy_count") == 1, what="a healthy first sweep")  # fmt: skip
        first_pid = _kill_bot(pidfile)
        events = _until(lambda: [r["event_type"] for r in _history(cli, manifest,
                        "strat.some_strategy")] if any(r["event_type"] == "HEALTH_BOT_RECOVERED"
                        for r in _history(cli, manifest, "strat.some_strategy")) else None,
                        timeout_s=60, what="the bot recovered")  # fmt: skip
        status = cli("health", "status", "--http", http, "--json")
    # the daemon has stopped; the service its restart command started has not
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    history = _history(cli, manifest, "strat.some_strategy")
    assert events[:3] == ["HEALTH_BOT_DOWN", "HEALTH_AUTO_RESTART", "HEALTH_BOT_RECOVERED"]
    down, restart, recovered = history[:3]
    assert down["miss_count"] == 2 and down["reason_code"] == "HEALTH_HEARTBEAT_BOT_DOWN"
    assert (
        restart["restart_ok"] is True and restart["reason_code"] == "HEALTH_HEARTBEAT_AUTO_RESTART"
    )
    assert recovered["was_down"] is True
    assert int(pidfile.read_text()) != first_pid  # a new process answers
    view = json.loads(status.stdout)
    (state,) = view["services"]
    assert state["status"] == "healthy" and state["restarts_total"] == 1
    assert view["self"]["status"] == "green"


def test_the_watchdog_s_own_crash_fails_the_dead_man_check(tmp_path: Path, cli: Run) -> None:
    """Spec 002 §19 HEALTH_HEARTBEAT_SELF_CRASH: kill the daemon; `deadman check` fails
    once no sweep came for 2 × heartbeat_interval_s."""
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text("heartbeat: {heartbeat_interval_s: 1}\nservices: []\n")
    missing = cli("deadman", "check", "--manifest", str(manifest))
    assert missing.returncode == 1 and "never" in missing.stderr
    with _daemon(manifest) as (process, _):
        _until(lambda: cli("deadman", "check", "--manifest", str(manifest)).returncode == 0,
               what="a first sweep")  # fmt: skip
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        killed_at = time.monotonic()
        failed = _until(lambda: (lambda done: done if done.returncode == 1 else None)(
            cli("deadman", "check", "--manifest", str(manifest))), timeout_s=30)  # fmt: skip
    waited = time.monotonic() - killed_at
    assert "HealthHeartbeatSweepMissing" in failed.stderr and "more than 2 s" in failed.stderr
    assert waited >= 1.0  # not before the sweep in flight at the kill could be 2 s old


def test_the_daemon_serves_its_watchdog_health_and_metrics(tmp_path: Path) -> None:
    with health_server() as server, silent_port() as partitioned:
        manifest = tmp_path / "cronwarden.json"
        manifest.write_text(json.dumps({
            "metrics": {"namespace": "polytraders_gov"},
            "heartbeat": {"heartbeat_interval_s": 1, "missed_heartbeats_to_alert": 2,
                          "deadman_url": server.url("/ping")},
            "services": [{"slug": "ok", "health_url": server.answer("/internal/health/ok")},
                         {"slug": "cut", "health_url": partitioned, "timeout_s": 0.3}],
        }))  # fmt: skip
        with _daemon(manifest) as (_, http):
            health = _until(lambda: (lambda h: h if h[1].get("down_count") == 1 else None)(
                _get(f"http://{http}/internal/health/health-heartbeat")))  # fmt: skip
            _until(lambda: server.hits.get("/ping", 0) >= 2, what="dead-man pings")
            with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as reply:
                metrics = reply.read().decode()
            _, combined = _get(f"http://{http}/internal/health/cron-runner")
    status, own = health
    assert status == 200 and own["status"] == "green" and own["total_bots"] == 2
    assert own["last_sweep_age_s"] < 2
    assert combined["heartbeat"]["status"] == "green"
    assert "/ping/fail" not in server.hits  # a service down is told by pages, not here
    for name in ("bots_healthy 1.0", "bots_unhealthy 1.0", 'misses_total{slug="cut"}',
                 "sweeps_total", "sweep_duration_ms_bucket"):  # fmt: skip
        assert f"polytraders_gov_healthheartbeat_{name}" in metrics


def test_a_broken_registry_turns_the_watchdog_red_and_the_rest_are_watched(
    tmp_path: Path, cli: Run
) -> None:
    with health_server() as server:
        manifest = tmp_path / "cronwarden.json"
        manifest.write_text(json.dumps({
            "heartbeat": {"heartbeat_interval_s": 1},
            "services": [{"slug": "ok", "health_url": server.answer("/h")},
                         {"slug": "bad", "health_url": "ftp://nowhere"}],
        }))  # fmt: skip
        with _daemon(manifest) as (_, http):
            status, own = _until(lambda: (lambda h: h if h[1].get("sweeps") else None)(
                _get(f"http://{http}/internal/health/health-heartbeat")))  # fmt: skip
            shown = cli("health", "status", "--http", http)
    assert status == 503 and own["status"] == "red" and own["total_bots"] == 1
    assert "services[1] 'bad'" in own["problems"][0]
    assert shown.returncode == 1 and "problem: registry" in shown.stdout


def test_the_daemon_tells_systemd_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(30)
        manifest = tmp_path / "cronwarden.yaml"
        manifest.write_text("heartbeat: {heartbeat_interval_s: 1}\n")
        env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}
        with _daemon(manifest, "--for", "3", env=env) as (process, _):
            process.wait(timeout=60)
        messages = []
        with suppress(TimeoutError):
            sock.settimeout(1)
            while True:
                messages.append(sock.recv(1024).decode())
    assert messages[0] == "READY=1" and messages[-1] == "STOPPING=1"
    assert messages.count("WATCHDOG=1") >= 3  # every 0.5 s for 3 s


def test_health_sweep_polls_once_and_exits_1_when_a_service_missed(
    tmp_path: Path, cli: Run
) -> None:
    with health_server() as server:
        manifest = tmp_path / "cronwarden.json"
        manifest.write_text(json.dumps({"services": [
            {"slug": "up", "health_url": server.answer("/up")},
            {"slug": "sick", "health_url": server.answer("/sick", 503)}]}))  # fmt: skip
        done = cli("health", "sweep", "--manifest", str(manifest), "--json")
        table = cli("health", "sweep", "--manifest", str(manifest))
    assert done.returncode == 1 and table.returncode == 1
    found = json.loads(done.stdout)
    assert found["sweep"]["total_bots"] == 2 and found["sweep"]["unhealthy_count"] == 1
    assert {s["slug"]: s["status"] for s in found["services"]} == {"up": "healthy",
                                                                  "sick": "missed"}  # fmt: skip
    assert "HTTP 503" in table.stdout
    assert not (tmp_path / ".cronwarden" / "state.db").exists()  # recorded nowhere


def test_health_status_without_a_daemon_is_one_line(cli: Run) -> None:
    done = cli("health", "status", "--http", f"127.0.0.1:{_free_port()}")
    assert done.returncode == 2
    assert done.stderr.startswith("CRONWARDEN_DAEMON_UNREACHABLE: no daemon answers")


def test_pause_restart_is_recorded_and_an_unknown_service_is_one_line(
    tmp_path: Path, cli: Run
) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text("services: [{slug: bot, health_url: 'http://127.0.0.1:1/h'}]\n")
    paused = cli("health", "pause-restart", "bot", "--reason", "crash loop", "--actor", "ann",
                 "--manifest", str(manifest))  # fmt: skip
    resumed = cli("health", "resume-restart", "bot", "--manifest", str(manifest))
    unknown = cli("health", "pause-restart", "nobody", "--manifest", str(manifest))
    assert paused.returncode == 0 and "paused by ann" in paused.stdout
    assert resumed.returncode == 0
    events = [(r["event_type"], r.get("actor")) for r in _history(cli, manifest, "bot")]
    assert events[0] == ("HEALTH_RESTART_PAUSED", "ann")
    assert events[1][0] == "HEALTH_RESTART_RESUMED"
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("HEALTH_HEARTBEAT_UNKNOWN_SERVICE: 'nobody' is not")


def test_a_sweep_dealt_to_processes_runs_in_the_daemon_and_stops_with_it(
    tmp_path: Path,
) -> None:
    with health_server() as server:
        manifest = tmp_path / "cronwarden.json"
        manifest.write_text(json.dumps({
            "heartbeat": {"heartbeat_interval_s": 1, "sweep_processes": 2},
            "services": [{"slug": f"s{n}", "health_url": server.answer(f"/h/{n}")}
                         for n in range(6)],
        }))  # fmt: skip
        with _daemon(manifest) as (process, http):
            status, own = _until(lambda: (lambda h: h if h[1].get("healthy_count") == 6
                                 else None)(_get(f"http://{http}/internal/health/health-heartbeat")),
                                 what="a sweep from the worker processes")  # fmt: skip
            children = [int(pid) for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children")
                        .read_text().split()]  # fmt: skip
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0
    assert status == 200 and own["status"] == "green"
    assert len(children) >= 2
    _until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), timeout_s=15,
           what="the sweep processes gone")  # fmt: skip
