"""`cronwarden validate` and `cronwarden schema`, run as a real subprocess."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

Run = Callable[..., CompletedProcess[str]]  # the `cli` fixture of conftest.py


@pytest.mark.parametrize(
    "name", ["cronwarden.yaml", "spec000-manifest.json", "scheduler.yaml", "config.json"]
)
def test_it_validates_every_example_cleanly(name: str, cli: Run) -> None:
    done = cli("validate", str(EXAMPLES / name))
    assert done.returncode == 0, done.stdout + done.stderr
    # spec 003's file notifies a `slack` channel it never defines: warned, still valid
    warnings = 1 if name == "config.json" else 0
    assert f"0 rejected, {warnings} warning(s)" in done.stdout


def test_it_prints_one_line_per_problem_and_exits_1(tmp_path: Path, cli: Run) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "tasks:\n"
        "  - {task_id: good, cron_expression: '0 9 * * *', targets: [a]}\n"
        "  - {task_id: bad, cron_expression: '99 * * * *', targets: [a]}\n"
        "  - {task_id: hourly, targets: [a]}\n"
    )
    done = cli("validate", str(manifest))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ERROR CRON_RUNNER_INVALID_EXPRESSION tasks[1] 'bad':")
    assert lines[1].startswith("WARNING CRON_RUNNER_DEFAULT_EXPRESSION tasks[2] 'hourly':")
    assert lines[2] == "2 task(s) valid, 1 rejected, 1 warning(s)"


def test_warnings_alone_exit_0_and_json_lists_them(tmp_path: Path, cli: Run) -> None:
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"max_concurrent_tasks": 30, "tasks": []}))
    done = cli("validate", str(manifest), "--json")
    assert done.returncode == 0
    report = json.loads(done.stdout)
    assert report["rejected"] is False
    assert report["problems"][0]["code"] == "CRON_RUNNER_PARAMETER_WARNING"


def test_an_unreadable_file_is_one_line_and_exit_1(tmp_path: Path, cli: Run) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("tasks: [")
    done = cli("validate", str(manifest))
    assert done.returncode == 1
    assert done.stdout.startswith("ERROR CRON_RUNNER_MANIFEST_UNREADABLE")
    assert done.stdout.count("\n") == 1 and "Traceback" not in done.stderr


def test_it_prints_the_json_schema(cli: Run) -> None:
    done = cli("schema")
    assert done.returncode == 0
    schema = json.loads(done.stdout)
    assert "tasks" in schema["properties"]
    assert "TaskSpec" in schema["$defs"]


def test_next_takes_a_task_id_in_its_own_zone_and_hash_key(cli: Run) -> None:
    manifest = str(EXAMPLES / "cronwarden.yaml")
    done = cli(
        "next", "quote_cycle", "--manifest", manifest, "-n", "2",
        "--after", "2026-03-06T00:00:00Z", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["2026-03-06T09:00:00-05:00", "2026-03-06T09:05:00-05:00"]
    hashed = cli("next", "rebalance", "--manifest", manifest, "--json", "-n", "1")
    direct = cli("next", "H(0-29) 15 * * FRI", "--hash-key", "rebalance", "--json", "-n", "1")
    assert json.loads(hashed.stdout) == json.loads(direct.stdout)


def test_next_says_when_a_name_is_neither_task_nor_expression(cli: Run) -> None:
    done = cli("next", "nope", "--manifest", str(EXAMPLES / "cronwarden.yaml"))
    assert done.returncode == 2
    assert done.stderr.startswith("CRON_RUNNER_INVALID_EXPRESSION: 'nope' is neither a task")


def test_run_dry_run_walks_every_step_without_side_effects(tmp_path: Path, cli: Run) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text(
        "quiet_hours: [{start: '00:00', end: '00:00'}]\n"  # quiet all day, every day
        "tasks:\n"
        "  - {task_id: quiet, cron: '* * * * *', targets: [a], disable_during_quiet_hours: true}\n"
        "  - {task_id: loud, cron: '* * * * *', targets: [a, b], task_class: health}\n"
    )
    quiet = cli("run", "quiet", "--dry-run", "--manifest", str(manifest))
    assert quiet.returncode == 0, quiet.stderr
    assert "quiet_hours  CRON_RUNNER_QUIET_HOURS_SKIP" in quiet.stdout
    assert quiet.stdout.rstrip().endswith("=> suppressed")
    loud = cli("run", "loud", "--dry-run", "--manifest", str(manifest))
    assert "publish      cron.trigger to a, b" in loud.stdout
    assert loud.stdout.rstrip().endswith("=> would be dispatched")
    assert not (tmp_path / ".cronwarden").exists()  # nothing written


def test_run_runs_the_targets_now_and_exits_with_the_jobs_code(tmp_path: Path, cli: Run) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    script = "import time; print('step 1', flush=True); time.sleep(0.5); print('step 2'); exit(3)"
    manifest.write_text(
        "targets:\n"
        f'  job: {{type: command, command: [{sys.executable}, -c, "{script}"],'
        " retry: {max_attempts: 2}}\n"
        "  ok: {type: command, command: ['true']}\n"
        "tasks:\n"
        "  - {task_id: report, cron: '0 0 * * *', targets: [ok, job, elsewhere],"
        " task_class: governance}\n"
    )
    done = cli("run", "report", "--manifest", str(manifest))
    assert done.returncode == 3, done.stderr
    assert done.stdout.count("step 2") == 2  # streamed, once per attempt
    assert "job attempt 2/2: failed" in done.stderr and "elsewhere: bus only" in done.stderr
    runs = json.loads(cli("runs", "report", "--manifest", str(manifest), "--json").stdout)
    assert sorted((r["target"], r["attempt"], r["status"]) for r in runs) == [
        ("job", 1, "failed"), ("job", 2, "failed"), ("ok", 1, "succeeded")]  # fmt: skip
    job_run = next(r for r in runs if r["target"] == "job")
    logs = cli("logs", job_run["run_id"][:10], "--manifest", str(manifest))
    assert logs.returncode == 0 and logs.stdout == "step 1\nstep 2\n"
    unknown = cli("logs", "run_nope", "--manifest", str(manifest))
    assert unknown.returncode == 2 and unknown.stderr.startswith("CRONWARDEN_UNKNOWN_RUN:")


def test_run_refuses_a_trading_task_while_the_kill_switch_is_on(tmp_path: Path, cli: Run) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text("targets: {job: {type: command, command: ['true']}}\n"
                        "tasks: [{task_id: buy, cron: '0 0 * * *', targets: [job]}]\n")  # fmt: skip
    assert cli("killswitch", "on", "--reason", "drill", "--manifest", str(manifest)).returncode == 0
    done = cli("run", "buy", "--manifest", str(manifest))
    assert done.returncode == 2
    assert done.stderr.startswith("KILL_SWITCH_ACTIVE: buy is a trading task")
