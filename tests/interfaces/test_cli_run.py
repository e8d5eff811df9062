"""`cronwarden run TASK` as a user sees it: live progress on a terminal, and a job
that prints 200 MB without the command's memory growing."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def _on_a_terminal(args: list[str], timeout_s: float = 60) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin, stdout and stderr; its exit code
    and everything it drew, escape sequences removed."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "LINES": "40", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen([sys.executable, "-m", "cronwarden", *args], stdin=follower,
                               stdout=follower, stderr=follower, env=env)  # fmt: skip
    os.close(follower)
    drawn = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the other side closed: the process is done
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    code = process.wait(timeout=timeout_s)
    return code, _ANSI.sub("", drawn.decode("utf-8", "replace"))


def test_run_on_a_terminal_shows_attempts_elapsed_time_output_and_artifacts(
    tmp_path: Path,
) -> None:
    script = (
        "import os, pathlib, sys, time\n"
        "folder = pathlib.Path(os.environ['CRONWARDEN_ARTIFACT_DIR'])\n"
        "(folder / 'signals.csv').write_text('a,b')\n"
        "print('scanning', flush=True)\n"
        "time.sleep(1.5)\n"
        "print('problem', file=sys.stderr, flush=True)\n"
        "sys.exit(0 if os.environ['CRONWARDEN_ATTEMPT'] == '2' else 1)\n"
    )
    (tmp_path / "job.py").write_text(script)
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text(
        f"targets: {{scan: {{type: command, command: ['{sys.executable}', job.py],"
        f" cwd: '{tmp_path}', retry: {{max_attempts: 2}}}}}}\n"
        "tasks: [{task_id: hot_scan, cron: '0 0 * * *', targets: [scan], task_class: governance}]\n"
    )
    code, drawn = _on_a_terminal(["run", "hot_scan", "--manifest", str(manifest)])
    assert code == 0, drawn
    for seen in ("attempt 1/2", "attempt 2/2", "elapsed 00:0", "artifacts 1 (signals.csv)",
                 "scanning", "problem", "scan attempt 1/2: failed",
                 "scan attempt 2/2: succeeded"):  # fmt: skip
        assert seen in drawn, (seen, drawn)


def _peak_rss_kb(args: list[str]) -> int:
    """The peak resident memory of the CLI run with ``args`` (its output discarded), read
    from the rusage of a parent that runs nothing else."""
    probe = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    command = [sys.executable, "-c", probe, sys.executable, "-m", "cronwarden", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    code, peak = done.stdout.split()
    assert code == "0", done.stderr
    return int(peak)


def test_a_job_printing_200_mb_does_not_grow_the_run_commands_memory(tmp_path: Path) -> None:
    megabytes = 200
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text(
        "targets:\n"
        f"  big: {{type: command, command: [head, -c, '{megabytes << 20}', /dev/zero]}}\n"
        "  small: {type: command, command: [echo, hi]}\n"
        "tasks:\n"
        "  - {task_id: big, cron: '0 0 * * *', targets: [big], task_class: governance}\n"
        "  - {task_id: small, cron: '0 0 * * *', targets: [small], task_class: governance}\n"
    )
    baseline = _peak_rss_kb(["run", "small", "--manifest", str(manifest)])
    peak = _peak_rss_kb(["run", "big", "--manifest", str(manifest)])
    runs = subprocess.run([sys.executable, "-m", "cronwarden", "runs", "big", "--json",
                           "--manifest", str(manifest)], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    (run,) = json.loads(runs)
    assert (Path(run["artifact_dir"]) / "stdout.log").stat().st_size == megabytes << 20
    assert len(run["output_tail"]) == 4096
    grown_mb = (peak - baseline) / 1024
    assert grown_mb < 24, f"the run command grew by {grown_mb:.1f} MB for {megabytes} MB of output"


def test_running_a_rejected_task_says_why_it_was_rejected(tmp_path: Path) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text("tasks: [{task_id: scan, cron: '0 0 * * *', task_class: research}]\n")
    done = subprocess.run([sys.executable, "-m", "cronwarden", "run", "scan", "--manifest",
                           str(manifest)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("CRON_RUNNER_UNKNOWN_TASK: 'scan' was rejected by ")
    assert "CRON_RUNNER_MANIFEST_ENTRY_INVALID task_class: Input should be" in done.stderr
