"""One command attempt, with real processes: exit codes, output files and tails, a
timeout that leaves no descendant behind, what a command left when it exited (killed,
or left running with ``kill_orphans=False``), and a job's whole group dying with a
worker killed by SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cronwarden.workers import command
from cronwarden.workers.command import TAIL_BYTES, CommandResult, dying_with_parent, run_command
from processes import gone_within, group_members, running

PY = sys.executable


def _run(
    argv: list[str],
    tmp_path: Path,
    *,
    timeout_s: float = 30.0,
    kill_grace_s: float = 5.0,
    shell: bool = False,
    kill_orphans: bool = True,
    die_with_worker: bool = False,
) -> CommandResult:
    return asyncio.run(run_command(argv, env=dict(os.environ), cwd=None, out_dir=tmp_path,
                                   timeout_s=timeout_s, kill_grace_s=kill_grace_s,
                                   shell=shell, kill_orphans=kill_orphans,
                                   die_with_worker=die_with_worker))  # fmt: skip


@pytest.fixture
def pids() -> Iterator[list[int]]:
    """Pids a test may leave running on purpose; SIGKILLed at its end."""
    left: list[int] = []
    yield left
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


#: A shell line that backgrounds a long sleep in its own group, prints its pid, exits 0.
BACKGROUNDS = "sleep 60 >/dev/null 2>&1 & echo $!"

#: For what only ``setpriv --pdeathsig`` and the group's keeper give.
needs_launcher = pytest.mark.skipif(
    not dying_with_parent(), reason="no setpriv with --pdeathsig (util-linux, Linux only)"
)


def test_a_command_that_succeeds_keeps_its_output_in_files_and_tails(tmp_path: Path) -> None:
    result = _run([PY, "-c", "import sys; print('hello'); print('oops', file=sys.stderr)"],
                  tmp_path)  # fmt: skip
    assert (result.status, result.exit_code) == ("succeeded", 0)
    assert (tmp_path / "stdout.log").read_text() == "hello\n"
    assert result.stderr_tail == "oops\n"


def test_a_non_zero_exit_is_a_failure_with_its_code(tmp_path: Path) -> None:
    result = _run([PY, "-c", "raise SystemExit(3)"], tmp_path)
    assert (result.status, result.exit_code, result.error) == ("failed", 3, "exit code 3")


def test_a_missing_program_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    result = _run(["/nonexistent/program"], tmp_path)
    assert result.status == "failed" and "cannot start" in result.error


def test_a_timeout_stops_the_whole_process_group_grandchildren_included(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    result = _run([PY, "-c", script], tmp_path, timeout_s=1.0, kill_grace_s=0.5)
    assert result.status == "timed_out" and result.exit_code is None
    assert time.monotonic() - started < 20
    grandchild = int((tmp_path / "stdout.log").read_text().split()[0])
    assert gone_within(grandchild)


def test_what_a_job_left_in_its_group_is_killed_once_it_exits(tmp_path: Path) -> None:
    result = _run(["sh", "-c", BACKGROUNDS], tmp_path)
    assert result.status == "succeeded"
    assert gone_within(int(result.stdout_tail))  # no orphans


@pytest.mark.parametrize("code", [0, 3])
def test_without_kill_orphans_what_the_command_started_runs_on(
    tmp_path: Path, pids: list[int], code: int
) -> None:
    """A restart script that started its service and then failed on a later step has
    still started it: the exit code does not decide what is left running."""
    result = _run(["sh", "-c", f"{BACKGROUNDS}; exit {code}"], tmp_path, kill_orphans=False)
    pids.append(int(result.stdout_tail))
    assert result.exit_code == code
    time.sleep(0.3)
    assert running(pids[0])


@pytest.mark.parametrize("die_with_worker", [False, True])
def test_without_kill_orphans_a_command_that_hangs_is_stopped_with_its_group(
    tmp_path: Path, pids: list[int], die_with_worker: bool
) -> None:
    result = _run(["sh", "-c", f"{BACKGROUNDS}; sleep 60"], tmp_path, timeout_s=1.0,
                  kill_grace_s=0.5, kill_orphans=False,
                  die_with_worker=die_with_worker)  # fmt: skip
    pids.append(int(result.stdout_tail))
    assert result.status == "timed_out" and "process group stopped" in result.error
    assert gone_within(pids[0])


def test_without_kill_orphans_a_command_still_running_at_a_stop_is_stopped_with_its_group(
    tmp_path: Path, pids: list[int]
) -> None:
    """The daemon's shutdown cancels a restart command still running: its group goes."""

    async def cancelled_midway() -> None:
        attempt = asyncio.ensure_future(run_command(
            ["sh", "-c", f"{BACKGROUNDS}; sleep 60"], env=dict(os.environ), cwd=None,
            out_dir=tmp_path, timeout_s=60, kill_grace_s=0.5, kill_orphans=False))  # fmt: skip
        log = tmp_path / "stdout.log"
        for _ in range(1000):  # the child's pid is written once it runs
            if log.exists() and log.read_text().endswith("\n"):
                break
            await asyncio.sleep(0.02)
        pids.append(int(log.read_text()))
        attempt.cancel()
        with pytest.raises(asyncio.CancelledError):
            await attempt

    asyncio.run(asyncio.wait_for(cancelled_midway(), 30))
    assert gone_within(pids[0])


@needs_launcher
def test_a_job_dying_with_its_worker_leaves_only_what_it_started_when_it_exits(
    tmp_path: Path, pids: list[int]
) -> None:
    """The group's keeper goes away with the job; what the job left stays, alone."""
    result = _run(["sh", "-c", BACKGROUNDS], tmp_path, kill_orphans=False, die_with_worker=True)
    child = int(result.stdout_tail)
    pids.append(child)
    group = os.getpgid(child)
    deadline = time.monotonic() + 5
    while group_members(group) != [child] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert group_members(group) == [child]
    time.sleep(0.3)
    assert running(child)


@pytest.mark.parametrize("die_with_worker", [False, True])
def test_a_command_gets_its_environment_exactly(tmp_path: Path, die_with_worker: bool) -> None:
    """Names a shell would drop (dots, dashes) reach the command, and nothing is added."""
    env = {"PATH": os.environ["PATH"], "spring.profiles.active": "prod", "MY-VAR": "x"}
    script = "import json, os; print(json.dumps(dict(os.environ)))"
    result = asyncio.run(run_command([PY, "-c", script], env=env, cwd=str(tmp_path),
                                     out_dir=tmp_path, timeout_s=30,
                                     die_with_worker=die_with_worker))  # fmt: skip
    seen = json.loads(result.stdout_tail)
    seen.pop("LC_CTYPE", None)  # Python's own locale coercion, not the launcher's
    assert seen == env


@pytest.mark.parametrize("die_with_worker", [False, True])
def test_a_command_that_waits_for_all_its_children_is_not_held_up(
    tmp_path: Path, die_with_worker: bool
) -> None:
    """Nothing the launcher adds is a child of the command: one that reaps until it has
    no children left exits as it would alone."""
    script = ("import os, subprocess, sys\n"
              "subprocess.Popen([sys.executable, '-c', 'pass'])\n"
              "while True:\n"
              "    try:\n"
              "        os.wait()\n"
              "    except ChildProcessError:\n"
              "        break\n")  # fmt: skip
    result = _run([PY, "-c", script], tmp_path, timeout_s=10, die_with_worker=die_with_worker)
    assert result.status == "succeeded", result


def test_an_appended_log_past_its_cap_is_started_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(command, "APPENDED_LOG_CAP", 100)
    _run(["sh", "-c", "head -c 150 /dev/zero | tr '\\0' x"], tmp_path, kill_orphans=False)
    assert (tmp_path / "stdout.log").stat().st_size == 150
    result = _run(["echo", "after"], tmp_path, kill_orphans=False)
    assert (tmp_path / "stdout.log").read_text() == "after\n" == result.stdout_tail


@pytest.fixture
def endless_stdin() -> Iterator[None]:
    """This process's standard input replaced by a pipe that never ends (as a terminal
    would be): a command that inherited it would block reading it."""
    read_end, write_end = os.pipe()
    saved = os.dup(0)
    os.dup2(read_end, 0)
    try:
        yield
    finally:
        os.dup2(saved, 0)
        for fd in (saved, read_end, write_end):
            os.close(fd)


@pytest.mark.usefixtures("endless_stdin")
@pytest.mark.parametrize("die_with_worker", [False, True])
def test_a_command_reads_nothing_from_the_daemon_s_input(
    tmp_path: Path, die_with_worker: bool
) -> None:
    result = _run(["sh", "-c", "cat; echo end"], tmp_path, timeout_s=5,
                  die_with_worker=die_with_worker)  # fmt: skip
    assert (result.status, result.stdout_tail) == ("succeeded", "end\n")


def test_without_kill_orphans_logs_are_appended_and_tails_are_this_run_s(
    tmp_path: Path,
) -> None:
    """The folder of a restart command is the same every time, and a service an earlier
    run left may still write to its logs: they are appended to, never truncated under
    it, and each result's tail is its own run's output."""
    first = _run(["sh", "-c", "echo first; echo oops >&2"], tmp_path, kill_orphans=False)
    second = _run(["sh", "-c", "echo second"], tmp_path, kill_orphans=False)
    assert (first.stdout_tail, first.stderr_tail) == ("first\n", "oops\n")
    assert (second.stdout_tail, second.stderr_tail) == ("second\n", "")
    assert (tmp_path / "stdout.log").read_text() == "first\nsecond\n"


def test_a_command_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    result = _run([PY, "-c", script], tmp_path, timeout_s=0.5, kill_grace_s=0.5)
    assert result.status == "timed_out"


def test_a_huge_output_is_streamed_to_disk_and_only_its_tail_kept(tmp_path: Path) -> None:
    script = "import sys\nfor _ in range(20_000): sys.stdout.write('x' * 999 + '\\n')\nprint('end')"
    result = _run([PY, "-c", script], tmp_path)
    assert (tmp_path / "stdout.log").stat().st_size == 20_000 * 1000 + 4
    assert len(result.stdout_tail) == TAIL_BYTES and result.stdout_tail.endswith("end\n")


def test_shell_lines_run_only_when_asked(tmp_path: Path) -> None:
    result = _run(["echo", "$((1 + 2))"], tmp_path, shell=True)
    assert result.stdout_tail == "3\n"
    literal = _run(["echo", "$((1 + 2))"], tmp_path)
    assert literal.stdout_tail == "$((1 + 2))\n"


WORKER_SCRIPT = """
import asyncio, os, sys
from pathlib import Path
from cronwarden.workers.command import run_command
out = Path(sys.argv[1])
script = "import os, subprocess, sys, time\\n" \\
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\\n" \\
    "print(os.getpid(), child.pid, flush=True)\\n" \\
    "time.sleep(60)\\n"
asyncio.run(run_command([sys.executable, "-c", script], env=dict(os.environ), cwd=None,
                        out_dir=out, timeout_s=120, die_with_worker=sys.argv[2] == "1",
                        kill_orphans=sys.argv[3] == "1"))
"""


@needs_launcher
@pytest.mark.parametrize(
    ("dies", "kill_orphans", "whole_group"),
    [(True, True, False), (True, False, False), (False, True, False), (True, True, True)],
)
def test_a_job_and_its_children_die_with_a_worker_killed_by_sigkill_when_asked(
    tmp_path: Path, pids: list[int], dies: bool, kill_orphans: bool, whole_group: bool
) -> None:
    """The kernel kills the job itself (``setpriv --pdeathsig``); the child it started is
    killed by the group's keeper, also when the SIGKILL went to the worker's whole
    process group (the keeper is not in it). ``kill_orphans`` is about what is left
    once a job has exited, not about a job still running when its worker died."""
    worker = subprocess.Popen([PY, "-c", WORKER_SCRIPT, str(tmp_path), "1" if dies else "0",
                               "1" if kill_orphans else "0"], start_new_session=True)  # fmt: skip
    log = tmp_path / "stdout.log"
    deadline = time.monotonic() + 30
    while not (log.exists() and log.read_text().endswith("\n")):
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    job, child = (int(pid) for pid in log.read_text().split())
    pids.extend((job, child))
    if whole_group:
        os.killpg(worker.pid, signal.SIGKILL)
    else:
        worker.kill()
    worker.wait(timeout=30)
    assert gone_within(job) is dies
    assert gone_within(child, 1.0 if not dies else 5.0) is dies
