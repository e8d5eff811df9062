"""The supervisor against real child processes (spec 004 TaskSupervisor).

Workloads are small Python scripts run with ``sys.executable``. Timeouts are small
(backoff 0.05-0.2 s, hang 0.6 s); every wait polls a condition against a generous
deadline instead of assuming the machine is fast. The fake clock drives the tests
whose outcome depends on time only through the supervisor's clock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cronwarden.adapters.system import SystemClock
from cronwarden.core.report import SUPERVISOR_BOT_ID, EventType, OperationsReport
from cronwarden.manifest.workloads import WorkloadSpec
from cronwarden.reasons import AlertLevel, ReasonCode, reason
from cronwarden.services.supervisor import Supervisor, backoff_delay, exit_reason
from cronwarden.testing import FakeClock

PY = sys.executable
SLEEP = [PY, "-c", "import time; time.sleep(60)"]
DEADLINE_S = 20.0


# -- helpers -------------------------------------------------------------------------


def workload(name: str, command: list[str] | str, **fields: Any) -> WorkloadSpec:
    """A workload with test-sized timings unless ``fields`` say otherwise."""
    defaults: dict[str, Any] = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2,
                                "backoff_jitter": 0, "stop_grace_s": 3}  # fmt: skip
    return WorkloadSpec.model_validate({"name": name, "command": command, **defaults, **fields})


def script(tmp_path: Path, name: str, body: str) -> list[str]:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return [PY, str(path)]


class Recorder:
    """A ``record`` callable that keeps every report with the real time it arrived."""

    def __init__(self) -> None:
        self.reports: list[tuple[float, OperationsReport]] = []

    async def __call__(self, report: OperationsReport) -> None:
        self.reports.append((time.monotonic(), report))

    def codes(self, name: str) -> list[ReasonCode]:
        return [r.reason_code for _, r in self.reports if r.task_id == name]

    def of(self, name: str, code: ReasonCode) -> list[tuple[float, OperationsReport]]:
        return [(t, r) for t, r in self.reports if r.task_id == name and r.reason_code == code]

    def starts(self, name: str) -> list[float]:
        begun = (ReasonCode.SUPERVISOR_WORKLOAD_STARTED, ReasonCode.SUPERVISOR_WORKLOAD_RESTARTED)
        return [t for t, r in self.reports if r.task_id == name and r.reason_code in begun]


async def until(condition: Callable[[], bool], what: str, within_s: float = DEADLINE_S) -> None:
    """Poll ``condition`` until it holds; fail after ``within_s``."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.02)


def state(supervisor: Supervisor, name: str) -> dict[str, Any]:
    return next(entry for entry in supervisor.snapshot() if entry["name"] == name)


@asynccontextmanager
async def supervising(supervisor: Supervisor) -> AsyncIterator[asyncio.Task[None]]:
    """``supervisor.run`` in a task, stopped (and awaited) on the way out."""
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def gone(pid: int) -> bool:
    """Whether ``pid`` no longer runs (a zombie waiting for a reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (FileNotFoundError, IndexError):
        return True


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text else None


# -- isolation -----------------------------------------------------------------------


def test_a_crashing_workload_never_disturbs_its_sibling(tmp_path: Path) -> None:
    async def scenario() -> None:
        crasher = workload("crasher", [PY, "-c", "import sys; sys.exit(3)"],
                           restart_budget={"max_restarts": 100})  # fmt: skip
        supervisor = Supervisor(SystemClock(), [workload("steady", SLEEP), crasher], tmp_path)
        async with supervising(supervisor):
            await until(lambda: state(supervisor, "steady")["pid"] is not None, "steady to run")
            steady_pid = state(supervisor, "steady")["pid"]
            await until(lambda: state(supervisor, "crasher")["restarts_total"] >= 3, "3 restarts")
            steady, crashed = state(supervisor, "steady"), state(supervisor, "crasher")
            assert steady["pid"] == steady_pid
            assert steady["state"] == "running"
            assert steady["restarts_total"] == 0
            assert crashed["last_exit_code"] == 3
            assert crashed["last_reason"] == "exited 3"

    asyncio.run(scenario())


def test_a_supervision_error_fails_only_its_workload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "broken.log").mkdir()  # its log cannot be opened: an unexpected error

    async def scenario() -> None:
        supervisor = Supervisor(
            SystemClock(), [workload("broken", SLEEP), workload("steady", SLEEP)], tmp_path
        )
        async with supervising(supervisor):
            await until(lambda: state(supervisor, "broken")["state"] == "failed", "failed")
            await until(lambda: state(supervisor, "steady")["pid"] is not None, "steady")
            assert state(supervisor, "steady")["state"] == "running"
            assert "supervisor error" in state(supervisor, "broken")["last_reason"]

    with caplog.at_level(logging.ERROR, logger="cronwarden.supervisor"):
        asyncio.run(scenario())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("broken" in r.getMessage() and r.exc_info for r in errors)


def test_a_record_that_raises_never_stops_supervision(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_record(report: OperationsReport) -> None:
        raise RuntimeError("store down")

    async def scenario() -> None:
        crasher = workload("crasher", [PY, "-c", "raise SystemExit(1)"],
                           restart_budget={"max_restarts": 100})  # fmt: skip
        supervisor = Supervisor(SystemClock(), [crasher], tmp_path, record=broken_record)
        async with supervising(supervisor):
            await until(lambda: state(supervisor, "crasher")["restarts_total"] >= 2, "restarts")

    with caplog.at_level(logging.ERROR, logger="cronwarden.supervisor"):
        asyncio.run(scenario())
    assert any("store down" in r.getMessage() for r in caplog.records)


# -- restarts, backoff and the budget ------------------------------------------------


def test_restarts_wait_longer_each_time(tmp_path: Path) -> None:
    recorder = Recorder()

    async def scenario() -> None:
        crasher = workload("crasher", [PY, "-c", "raise SystemExit(1)"], backoff_initial_s=0.1,
                           backoff_max_s=0.8, restart_budget={"max_restarts": 10})  # fmt: skip
        supervisor = Supervisor(SystemClock(), [crasher], tmp_path, record=recorder)
        async with supervising(supervisor):
            await until(lambda: len(recorder.starts("crasher")) >= 5, "five starts")

    asyncio.run(scenario())
    exits = recorder.of("crasher", ReasonCode.SUPERVISOR_WORKLOAD_EXITED)
    waits = [r.details["backoff_s"] for _, r in exits][:4]
    assert waits == [0.1, 0.2, 0.4, 0.8]
    starts = recorder.starts("crasher")[:5]
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    for gap, wait in zip(gaps, waits, strict=True):
        assert gap >= wait
    assert gaps[3] > gaps[0] + 0.5


def test_backoff_doubles_to_its_cap_and_the_budget_window_slides(tmp_path: Path) -> None:
    async def scenario() -> list[tuple[float, int]]:
        clock = FakeClock()
        budget = {"max_restarts": 3, "window_s": 5}
        crasher = workload("crasher", [PY, "-c", "raise SystemExit(1)"], backoff_initial_s=1,
                           backoff_max_s=4, restart_budget=budget)  # fmt: skip
        supervisor = Supervisor(clock, [crasher], tmp_path)
        seen: list[tuple[float, int]] = []
        async with supervising(supervisor):
            for restarts in range(1, 6):
                await until(
                    lambda n=restarts: (
                        state(supervisor, "crasher")["restarts_total"] == n
                        and state(supervisor, "crasher")["state"] == "backoff"
                    ),
                    f"backoff number {restarts}",
                )
                entry = state(supervisor, "crasher")
                seen.append((entry["backoff_s"], entry["restarts_in_window"]))
                clock.advance(entry["backoff_s"])
        return seen

    seen = asyncio.run(scenario())
    # decisions at t=0, 1, 3, 7, 11: the 5 s window forgets the older restarts, so three
    # per window are never spent although five happen
    assert seen == [(1.0, 1), (2.0, 2), (4.0, 3), (4.0, 2), (4.0, 2)]


def test_a_process_that_stayed_up_longer_than_the_backoff_cap_backs_off_from_the_start(
    tmp_path: Path,
) -> None:
    runs, die = tmp_path / "runs", tmp_path / "die"
    third_run_waits = [PY, "-c", textwrap.dedent(f"""
        import os, sys, time
        with open({str(runs)!r}, "a") as out:
            out.write("run\\n")
        if open({str(runs)!r}).read().count("run") >= 3:
            while not os.path.exists({str(die)!r}):
                time.sleep(0.02)
        sys.exit(1)
    """)]  # fmt: skip

    async def scenario() -> list[float]:
        clock = FakeClock()
        spec = workload("svc", third_run_waits, backoff_initial_s=1, backoff_max_s=4)
        supervisor = Supervisor(clock, [spec], tmp_path)
        waits = []
        async with supervising(supervisor):

            def in_backoff(restarts: int) -> bool:
                entry = state(supervisor, "svc")
                return entry["restarts_total"] == restarts and entry["state"] == "backoff"

            for restarts in (1, 2):
                await until(lambda n=restarts: in_backoff(n), f"backoff number {restarts}")
                waits.append(state(supervisor, "svc")["backoff_s"])
                clock.advance(waits[-1])
            await until(lambda: state(supervisor, "svc")["state"] == "running", "third run")
            clock.advance(10)  # up longer than backoff_max_s
            die.touch()
            await until(lambda: state(supervisor, "svc")["restarts_total"] == 3, "third exit")
            waits.append(state(supervisor, "svc")["backoff_s"])
        return waits

    assert asyncio.run(scenario()) == [1.0, 2.0, 1.0]


def test_a_crash_loop_spends_the_budget_and_pages(tmp_path: Path) -> None:
    recorder = Recorder()

    async def scenario() -> dict[str, Any]:
        crasher = workload("crasher", [PY, "-c", "raise SystemExit(2)"],
                           restart_budget={"max_restarts": 2, "window_s": 60})  # fmt: skip
        supervisor = Supervisor(SystemClock(), [crasher], tmp_path, record=recorder)
        async with supervising(supervisor):
            await until(lambda: state(supervisor, "crasher")["state"] == "failed", "failed")
            return state(supervisor, "crasher")

    final = asyncio.run(scenario())
    assert final["restarts_total"] == 2
    assert final["restarts_in_window"] == 2
    assert final["pid"] is None
    assert len(recorder.starts("crasher")) == 3
    codes = recorder.codes("crasher")
    assert codes.count(ReasonCode.SUPERVISOR_RESTART_BUDGET_EXHAUSTED) == 1
    (_, spent), *_ = recorder.of("crasher", ReasonCode.SUPERVISOR_RESTART_BUDGET_EXHAUSTED)
    assert reason(spent.reason_code).alert is AlertLevel.PAGE
    assert spent.event_type is EventType.WORKLOAD_STATE
    assert spent.bot_id == SUPERVISOR_BOT_ID
    assert spent.details["state"] == "failed"
    assert spent.details["exit_code"] == 2


@pytest.mark.parametrize(
    ("policy", "code", "outcome"),
    [
        ("always", 0, "restarts"),
        ("on-failure", 3, "restarts"),
        ("on-failure", 0, "stopped"),
        ("never", 0, "stopped"),
        ("never", 3, "failed"),
    ],
    ids=[
        "always-after-exit-0",
        "on-failure-after-exit-3",
        "on-failure-after-exit-0",
        "never-after-exit-0",
        "never-after-exit-3",
    ],  # fmt: skip
)
def test_the_restart_policy_decides_after_an_exit(
    tmp_path: Path, policy: str, code: int, outcome: str
) -> None:
    recorder = Recorder()

    async def scenario() -> dict[str, Any]:
        spec = workload("job", [PY, "-c", f"raise SystemExit({code})"], restart=policy,
                        restart_budget={"max_restarts": 100})  # fmt: skip
        supervisor = Supervisor(SystemClock(), [spec], tmp_path, record=recorder)
        async with supervising(supervisor):
            if outcome == "restarts":
                await until(lambda: state(supervisor, "job")["restarts_total"] >= 2, "restarts")
            else:
                await until(lambda: state(supervisor, "job")["state"] == outcome, outcome)
            return state(supervisor, "job")

    final = asyncio.run(scenario())
    assert final["last_exit_code"] == code
    if outcome != "restarts":
        assert final["restarts_total"] == 0
        assert final["pid"] is None
        ended = "STOPPED" if outcome == "stopped" else "EXITED"
        assert recorder.codes("job") == [
            "SUPERVISOR_WORKLOAD_STARTED",
            f"SUPERVISOR_WORKLOAD_{ended}",
        ]


# -- hangs -----------------------------------------------------------------------------

#: The first run shows life for 0.3 s, then goes quiet without exiting; later runs
#: show life all along. ``SIGN`` is the statement that shows life.
HANG_ONCE = """
import os, sys, time, pathlib
marker = sys.argv[1]
first = not os.path.exists(marker)
pathlib.Path(marker).touch()
quiet_at = time.monotonic() + (0.3 if first else 1e9)
while True:
    if time.monotonic() < quiet_at:
        SIGN
    else:
        print("still here, but stuck", flush=True)
    time.sleep(0.05)
"""


def _hang_then_recover(tmp_path: Path, sign: str, **fields: Any) -> tuple[Recorder, Any]:
    recorder = Recorder()
    command = [*script(tmp_path, "hang", HANG_ONCE.replace("SIGN", sign)),
               str(tmp_path / "marker")]  # fmt: skip
    spec = workload("svc", command, hang_timeout_s=0.6, **fields)
    return recorder, spec


async def _expect_hang_and_restart(supervisor: Supervisor, recorder: Recorder) -> None:
    async with supervising(supervisor):
        await until(lambda: state(supervisor, "svc")["state"] == "running", "first sign of life")
        first_pid = state(supervisor, "svc")["pid"]
        await until(lambda: bool(recorder.of("svc", ReasonCode.SUPERVISOR_WORKLOAD_HUNG)), "hang")
        await until(
            lambda: (
                state(supervisor, "svc")["state"] == "running"
                and state(supervisor, "svc")["pid"] not in (None, first_pid)
            ),
            "a restarted, live process",
        )
        entry = state(supervisor, "svc")
        assert entry["restarts_total"] == 1
        assert entry["last_reason"].startswith("hung: no sign of life for")
        assert gone(first_pid)
    (_, hung), *_ = recorder.of("svc", ReasonCode.SUPERVISOR_WORKLOAD_HUNG)
    assert hung.details["state"] == "hung"
    assert hung.details["pid"] == first_pid
    assert float(hung.details["reason"].split()[-2]) >= 0.6


def test_a_heartbeat_file_that_stops_being_touched_is_a_hang(tmp_path: Path) -> None:
    beat = tmp_path / "svc.beat"
    recorder, spec = _hang_then_recover(
        tmp_path, f"pathlib.Path({str(beat)!r}).touch()", liveness={"heartbeat_file": str(beat)}
    )
    supervisor = Supervisor(SystemClock(), [spec], tmp_path, record=recorder)
    asyncio.run(_expect_hang_and_restart(supervisor, recorder))
    assert state(supervisor, "svc")["liveness"] == "heartbeat_file"


def test_a_stdout_pattern_that_stops_appearing_is_a_hang(tmp_path: Path) -> None:
    recorder, spec = _hang_then_recover(
        tmp_path, "print('tick: ok', flush=True)", liveness={"stdout_pattern": r"^tick: ok$"}
    )
    supervisor = Supervisor(SystemClock(), [spec], tmp_path, record=recorder)
    asyncio.run(_expect_hang_and_restart(supervisor, recorder))
    log = (tmp_path / "svc.log").read_text()
    assert "tick: ok" in log
    assert "still here, but stuck" in log  # every stdout line reaches the log


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        healthy = getattr(self.server, "healthy", True)
        self.send_response(200 if healthy else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _get_ok(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except urllib.error.HTTPError as err:
        err.close()
        return False
    except OSError:
        return False


async def check_url(url: str, timeout_s: float) -> bool:
    """The supervisor's health check, on urllib in a thread: a 2xx is healthy."""
    return await asyncio.to_thread(_get_ok, url, timeout_s)


def test_a_health_url_that_turns_unhealthy_is_a_hang(
    tmp_path: Path, health_server: ThreadingHTTPServer
) -> None:
    recorder = Recorder()
    url = f"http://127.0.0.1:{health_server.server_address[1]}/healthz"
    spec = workload("svc", SLEEP, hang_timeout_s=0.6, liveness={"health_url": url})

    async def scenario() -> None:
        supervisor = Supervisor(SystemClock(), [spec], tmp_path, check_url=check_url,
                                record=recorder)  # fmt: skip
        async with supervising(supervisor):
            await until(lambda: state(supervisor, "svc")["state"] == "running", "healthy")
            first_pid = state(supervisor, "svc")["pid"]
            health_server.healthy = False  # type: ignore[attr-defined]
            await until(lambda: bool(recorder.of("svc", ReasonCode.SUPERVISOR_WORKLOAD_HUNG)),
                        "hang")  # fmt: skip
            health_server.healthy = True  # type: ignore[attr-defined]
            await until(
                lambda: (
                    state(supervisor, "svc")["state"] == "running"
                    and state(supervisor, "svc")["pid"] not in (None, first_pid)
                ),
                "a restarted, healthy process",
            )
            assert gone(first_pid)
            assert state(supervisor, "svc")["restarts_total"] == 1

    asyncio.run(scenario())


# -- dependencies and stopping -----------------------------------------------------------

NOTING = """
import signal, sys, time
name, events, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
def note(what):
    with open(events, "a") as out:
        out.write(f"{what} {name}\\n")
def stop(signum, frame):
    note("stop")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
note("start")
time.sleep(delay)
note("ready")
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def test_dependencies_start_first_and_stop_last(tmp_path: Path) -> None:
    events = tmp_path / "events"
    noting = script(tmp_path, "noting", NOTING)

    def spec(name: str, delay: float, **fields: Any) -> WorkloadSpec:
        return workload(name, [*noting, name, str(events), str(delay)], **fields)

    specs = [  # listed dependents first: the order comes from depends_on alone
        spec("worker", 0, depends_on=["api"]),
        spec("api", 0, depends_on=["db"], liveness={"stdout_pattern": "^ready"}),
        spec("db", 0.5, liveness={"stdout_pattern": "^ready"}, hang_timeout_s=10),
    ]

    async def scenario() -> None:
        supervisor = Supervisor(SystemClock(), specs, tmp_path)
        async with supervising(supervisor):
            await until(lambda: events.exists() and "ready worker" in events.read_text(),
                        "all three ready")  # fmt: skip

    asyncio.run(scenario())
    lines = events.read_text().splitlines()
    starts = [line for line in lines if not line.startswith("stop")]
    assert starts == ["start db", "ready db", "start api", "ready api", "start worker",
                      "ready worker"]  # fmt: skip
    assert [line for line in lines if line.startswith("stop")] == [
        "stop worker", "stop api", "stop db"]  # fmt: skip


def test_a_child_that_ignores_its_stop_signal_is_killed_after_its_grace(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    stubborn = [PY, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('ready', flush=True); time.sleep(60)"]  # fmt: skip
    spec = workload("stubborn", stubborn, stop_grace_s=0.3, liveness={"stdout_pattern": "ready"})

    async def scenario() -> tuple[int, float]:
        supervisor = Supervisor(SystemClock(), [spec], tmp_path, record=recorder)
        stop = asyncio.Event()
        task = asyncio.create_task(supervisor.run(stop))
        await until(lambda: state(supervisor, "stubborn")["state"] == "running", "ready")
        pid = state(supervisor, "stubborn")["pid"]
        began = time.monotonic()
        stop.set()
        await asyncio.wait_for(task, 30)
        return pid, time.monotonic() - began

    with caplog.at_level(logging.WARNING, logger="cronwarden.supervisor"):
        pid, took = asyncio.run(scenario())
    assert gone(pid)
    assert took >= 0.3
    overran = [r.getMessage() for r in caplog.records if "overran" in r.getMessage()]
    assert overran and "stubborn" in overran[0] and str(pid) in overran[0]
    (_, report), *_ = recorder.of("stubborn", ReasonCode.SUPERVISOR_STOP_OVERRAN)
    assert report.details["pid"] == pid


def test_no_process_outlives_run_not_even_a_grandchild(tmp_path: Path) -> None:
    parent_pid, grandchild_pid, shell_child_pid = (tmp_path / n for n in ("p", "g", "s"))
    spawner = [PY, "-c", textwrap.dedent(f"""
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(grandchild_pid)!r}, "w").write(str(child.pid))
        open({str(parent_pid)!r}, "w").write(str(os.getpid()))
        time.sleep(60)
    """)]  # fmt: skip
    shell = f"sleep 60 & echo $! > {shell_child_pid}; wait"

    async def scenario() -> list[int]:
        supervisor = Supervisor(
            SystemClock(), [workload("spawner", spawner), workload("shell", shell)], tmp_path
        )
        async with supervising(supervisor):
            paths = (parent_pid, grandchild_pid, shell_child_pid)
            await until(lambda: all(read_pid(p) for p in paths), "every pid written")
            await until(lambda: state(supervisor, "shell")["pid"] is not None, "shell")
            pids = [read_pid(p) or 0 for p in paths] + [state(supervisor, "shell")["pid"]]
            assert not any(gone(pid) for pid in pids)
        return pids

    pids = asyncio.run(scenario())
    deadline = time.monotonic() + 5  # init reaps the grandchildren, not the supervisor
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [pid for pid in pids if not gone(pid)] == []


def test_a_killed_daemon_takes_its_workloads_with_it_children_included(tmp_path: Path) -> None:
    """The kernel kills the workload itself (``--pdeathsig``); the child it started is
    killed by the keeper of its process group."""
    pid_file, child_file = tmp_path / "workload.pid", tmp_path / "child.pid"
    daemon = textwrap.dedent(f"""
        import asyncio, sys
        from pathlib import Path
        from cronwarden.adapters.system import SystemClock
        from cronwarden.manifest.workloads import WorkloadSpec
        from cronwarden.services.supervisor import Supervisor
        command = (f"sleep 60 & echo $! > {str(child_file)!r}; "
                   f"exec {{sys.executable}} -c \\"import os, time; "
                   f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)\\"")
        spec = WorkloadSpec(name="w", command=command)
        asyncio.run(Supervisor(SystemClock(), [spec], Path({str(tmp_path)!r})).run(asyncio.Event()))
    """)
    process = subprocess.Popen([PY, "-c", daemon])
    try:
        deadline = time.monotonic() + DEADLINE_S
        while read_pid(pid_file) is None or read_pid(child_file) is None:
            assert time.monotonic() < deadline, "the workload never started"
            time.sleep(0.05)
        pids = [read_pid(pid_file) or 0, read_pid(child_file) or 0]
        assert not any(gone(pid) for pid in pids)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        while not all(gone(pid) for pid in pids):
            assert time.monotonic() < deadline + 10, "the workload outlived its daemon"
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait(10)
        for pid in (read_pid(pid_file), read_pid(child_file)):
            if pid and not gone(pid):
                os.kill(pid, signal.SIGKILL)


# -- the operator ----------------------------------------------------------------------


def test_an_operator_restart_replaces_the_process_outside_the_budget(tmp_path: Path) -> None:
    recorder = Recorder()

    async def scenario() -> None:
        spec = workload("svc", SLEEP, restart_budget={"max_restarts": 0})
        supervisor = Supervisor(SystemClock(), [spec], tmp_path, record=recorder)
        async with supervising(supervisor):
            await until(lambda: state(supervisor, "svc")["pid"] is not None, "svc")
            first = state(supervisor, "svc")["pid"]
            after = await supervisor.restart("svc")
            assert after["pid"] not in (None, first)
            assert after["state"] == "running"
            assert after["restarts_in_window"] == 0
            assert gone(first)
            with pytest.raises(KeyError, match="nope"):
                await supervisor.restart("nope")

    asyncio.run(scenario())
    (_, restarted), *_ = recorder.of("svc", ReasonCode.SUPERVISOR_WORKLOAD_RESTARTED)
    assert restarted.details["operator"] is True


def test_an_operator_restart_clears_failed(tmp_path: Path) -> None:
    fails_once = [PY, "-c", textwrap.dedent(f"""
        import os, sys, time
        marker = {str(tmp_path / "marker")!r}
        if not os.path.exists(marker):
            open(marker, "w").close()
            sys.exit(3)
        time.sleep(60)
    """)]  # fmt: skip

    async def scenario() -> None:
        supervisor = Supervisor(SystemClock(), [workload("svc", fails_once, restart="never")],
                                tmp_path)  # fmt: skip
        async with supervising(supervisor):
            await until(lambda: state(supervisor, "svc")["state"] == "failed", "failed")
            after = await supervisor.restart("svc")
            assert after["state"] == "running"
            assert after["pid"] is not None

    asyncio.run(scenario())


def test_an_operator_stop_holds_until_started_again(tmp_path: Path) -> None:
    recorder = Recorder()

    async def scenario() -> None:
        supervisor = Supervisor(SystemClock(), [workload("svc", SLEEP, restart="always")],
                                tmp_path, record=recorder)  # fmt: skip
        async with supervising(supervisor):
            await until(lambda: state(supervisor, "svc")["pid"] is not None, "svc")
            first = state(supervisor, "svc")["pid"]
            stopped = await supervisor.stop_workload("svc")
            assert (stopped["state"], stopped["pid"]) == ("stopped", None)
            assert gone(first)
            await asyncio.sleep(0.5)  # "always" would have restarted it by now
            assert state(supervisor, "svc")["state"] == "stopped"
            started = await supervisor.start_workload("svc")
            assert started["state"] == "running"
            assert started["pid"] not in (None, first)

    asyncio.run(scenario())
    assert ReasonCode.SUPERVISOR_WORKLOAD_STOPPED in recorder.codes("svc")


# -- snapshots -----------------------------------------------------------------------


def test_the_snapshot_shows_every_field_and_an_age_that_grows(tmp_path: Path) -> None:
    clock = FakeClock()
    talker = [PY, "-c", "import sys, time; print('to stdout', flush=True); "
              "print('to stderr', file=sys.stderr, flush=True); time.sleep(60)"]  # fmt: skip
    spec = workload("svc", talker, labels={"team": "ops"}, workload_kind="ingest")

    async def scenario() -> list[dict[str, Any]]:
        supervisor = Supervisor(clock, [spec], tmp_path / "logs")
        seen = []
        async with supervising(supervisor):
            await until(lambda: state(supervisor, "svc")["pid"] is not None, "svc")
            seen.append(state(supervisor, "svc"))
            clock.advance(2.5)
            seen.append(state(supervisor, "svc"))
            clock.advance(1.0)
            seen.append(state(supervisor, "svc"))
            log = tmp_path / "logs" / "svc.log"
            await until(lambda: "to stderr" in log.read_text(), "stderr in the log")
            await until(lambda: "to stdout" in log.read_text(), "stdout in the log")
        return seen

    first, later, last = asyncio.run(scenario())
    assert [s["age_s"] for s in (first, later, last)] == [0.0, 2.5, 3.5]
    assert last == {
        "name": "svc", "state": "running", "pid": first["pid"], "age_s": 3.5,
        "restarts_in_window": 0, "restarts_total": 0, "last_exit_code": None,
        "last_reason": "", "restart": "on-failure", "backoff_s": 0.05, "hang_timeout_s": None,
        "liveness": None, "last_alive_age_s": 3.5, "depends_on": [],
        "labels": {"team": "ops", "workload_kind": "ingest"},
        "log": str(tmp_path / "logs" / "svc.log"),
    }  # fmt: skip


# -- construction and the pure parts ---------------------------------------------------


def test_it_refuses_a_health_url_without_a_checker_and_a_cycle(tmp_path: Path) -> None:
    watched = workload("w", SLEEP, liveness={"health_url": "http://127.0.0.1:1/"})
    with pytest.raises(ValueError, match="check_url"):
        Supervisor(SystemClock(), [watched], tmp_path)
    a, b = workload("a", SLEEP, depends_on=["b"]), workload("b", SLEEP, depends_on=["a"])
    with pytest.raises(ValueError, match="cycle"):
        Supervisor(SystemClock(), [a, b], tmp_path)
    with pytest.raises(ValueError, match="unknown"):
        Supervisor(SystemClock(), [a], tmp_path)


def test_backoff_delay_jitters_within_its_fraction() -> None:
    spec = workload("w", SLEEP, backoff_initial_s=1, backoff_max_s=60, backoff_jitter=0.1)
    rng = random.Random(7)
    delays = [backoff_delay(spec, 3, rng) for _ in range(200)]
    assert all(3.6 <= d <= 4.4 for d in delays)
    assert len(set(delays)) > 100
    assert backoff_delay(spec, 10_000) == 60


@pytest.mark.parametrize(
    ("code", "text"),
    [(0, "exited 0"), (3, "exited 3"), (-signal.SIGSEGV, "killed by SIGSEGV")],
    ids=["clean", "code", "signal"],
)
def test_exit_reasons_read_like_the_spec(code: int, text: str) -> None:
    assert exit_reason(code) == text


# -- operator actions and the watchdog's restarts ---------------------------------------

STUBBORN = [PY, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "time.sleep(60)"]  # fmt: skip


def test_a_restart_whose_caller_gives_up_still_ends_with_the_workload_running(
    tmp_path: Path,
) -> None:
    """The watchdog waits for a restart only so long; the restart goes on to its end."""

    async def scenario() -> None:
        supervisor = Supervisor(SystemClock(), [workload("w", STUBBORN, stop_grace_s=1)],
                                tmp_path)  # fmt: skip
        async with supervising(supervisor):
            await until(lambda: state(supervisor, "w")["pid"] is not None, "w running")
            first = state(supervisor, "w")["pid"]
            await asyncio.sleep(0.5)  # until it ignores SIGTERM
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(supervisor.restart("w"), 0.2)
            await until(lambda: state(supervisor, "w")["pid"] not in (None, first),
                        "w running again")  # fmt: skip
            assert state(supervisor, "w")["state"] == "running" and gone(first)

    asyncio.run(scenario())


def test_the_watchdog_restarts_only_what_it_should(tmp_path: Path) -> None:
    from cronwarden.app import _restartable
    from cronwarden.errors import CronwardenError
    from cronwarden.services.heartbeat import NotRestarted

    async def scenario() -> None:
        supervisor = Supervisor(SystemClock(), [
            workload("up", SLEEP), workload("held", SLEEP),
            workload("broken", [PY, "-c", "import sys; sys.exit(1)"],
                     restart_budget={"max_restarts": 0}),
            workload("later", [PY, "-c", "pass"], backoff_initial_s=30, backoff_max_s=30,
                     restart="always"),
        ], tmp_path)  # fmt: skip
        async with supervising(supervisor):
            await until(lambda: state(supervisor, "broken")["state"] == "failed", "failed")
            await until(lambda: state(supervisor, "later")["state"] == "backoff", "backoff")
            await until(lambda: state(supervisor, "held")["pid"] is not None, "held running")
            await supervisor.stop_workload("held")
            _restartable("up", supervisor)  # running: yes
            with pytest.raises(CronwardenError, match="stopped by an operator"):
                _restartable("held", supervisor)
            with pytest.raises(CronwardenError, match="gave up"):
                _restartable("broken", supervisor)
            with pytest.raises(NotRestarted):
                _restartable("later", supervisor)
            with pytest.raises(CronwardenError, match="no workload"):
                _restartable("nope", supervisor)

    asyncio.run(scenario())


# -- dying with the daemon: what the group's keeper must not change --------------------


def test_a_watched_stdout_workload_that_exits_is_seen_at_once_when_it_dies_with_the_daemon(
    tmp_path: Path,
) -> None:
    """The keeper holds none of the workload's output: a workload whose stdout is piped
    to the pattern watch is seen to exit as soon as it does, and stops without
    overrunning its grace."""

    async def scenario() -> dict[str, Any]:
        spec = workload("once", "echo ready; sleep 0.3; exit 3", restart="never",
                        stop_grace_s=60, liveness={"stdout_pattern": "^ready"})  # fmt: skip
        supervisor = Supervisor(SystemClock(), [spec], tmp_path, die_with_daemon=True)
        async with supervising(supervisor):
            # held until the 60 s grace ran out, it would not be seen within 10 s
            await until(lambda: state(supervisor, "once")["last_exit_code"] == 3,
                        "the exit seen", within_s=10)  # fmt: skip
            return state(supervisor, "once")

    seen = asyncio.run(scenario())
    assert (seen["state"], seen["pid"], seen["last_exit_code"]) == ("failed", None, 3)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="zombies are read in /proc")
def test_a_group_whose_last_members_are_zombies_counts_as_gone() -> None:
    """A workload's leftover child, killed with its group, waits for init to reap it
    (seconds on some hosts); it holds nothing, so a restart need not wait for it. Here
    the zombie is this test's own unreaped child, so it stays one for as long as needed."""
    from cronwarden.services.supervisor import _group_alive

    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        assert _group_alive(sleeper.pid)
        os.kill(sleeper.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while not Path(f"/proc/{sleeper.pid}/stat").read_text().split(") ")[1].startswith("Z"):
            assert time.monotonic() < deadline, "never a zombie"
            time.sleep(0.01)
        os.killpg(sleeper.pid, 0)  # the group still exists: its zombie is not reaped
        assert not _group_alive(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait(10)
