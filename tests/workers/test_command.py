"""One command attempt, with real processes: exit codes, output files and tails,
and a timeout that leaves no descendant behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cronwarden.workers.command import TAIL_BYTES, CommandResult, run_command

PY = sys.executable


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _run(
    argv: list[str],
    tmp_path: Path,
    *,
    timeout_s: float = 30.0,
    kill_grace_s: float = 5.0,
    shell: bool = False,
) -> CommandResult:
    return asyncio.run(run_command(argv, env=dict(os.environ), cwd=None, out_dir=tmp_path,
                                   timeout_s=timeout_s, kill_grace_s=kill_grace_s,
                                   shell=shell))  # fmt: skip


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
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


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
job = [sys.executable, "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(60)"]
asyncio.run(run_command(job, env=dict(os.environ), cwd=None, out_dir=out, timeout_s=120,
                        die_with_worker=sys.argv[2] == "1"))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("dies", [True, False])
def test_a_job_dies_with_a_worker_killed_by_sigkill_when_asked(tmp_path: Path, dies: bool) -> None:
    worker = subprocess.Popen([PY, "-c", WORKER_SCRIPT, str(tmp_path), "1" if dies else "0"])
    log = tmp_path / "stdout.log"
    deadline = time.monotonic() + 30
    while not (log.exists() and log.read_text().strip()):
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    job = int(log.read_text())
    worker.kill()
    worker.wait(timeout=30)
    deadline = time.monotonic() + 5
    while _running(job) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert _running(job) is not dies
    finally:
        if _running(job):
            os.kill(job, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
