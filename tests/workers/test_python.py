"""Python targets, isolated in a fresh interpreter and inline: sync and async functions,
one that raises and one that hangs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from cronwarden.adapters.memory import MemoryStore
from cronwarden.manifest import validate_document
from cronwarden.ports import RunRecord
from cronwarden.services.worker import Worker
from cronwarden.testing import FakeClock

JOBS = """
import asyncio, json, time

def report(ctx):
    (ctx.artifact_dir / "summary.json").write_text(json.dumps(dict(ctx.config)))
    ctx.logger.info("wrote the summary")
    return {"task": ctx.task_id, "attempt": ctx.attempt, "at": ctx.scheduled_at.isoformat()}

async def fetch(ctx):
    await asyncio.sleep(0)
    return "fetched " + ctx.trace_id

def broken(ctx):
    raise ValueError("the exchange said no")

def stuck(ctx):
    time.sleep(30)
"""


@pytest.fixture
def jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "jobs_mod.py").write_text(JOBS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _run(jobs: Path, function: str, isolation: str, **extra: Any) -> RunRecord:
    target = {"type": "python", "function": f"jobs_mod:{function}", "isolation": isolation,
              "env": {"PYTHONPATH": str(jobs)}, **extra}  # fmt: skip
    manifest = validate_document({
        "targets": {"py": target},
        "tasks": [{"task_id": "daily", "cron": "0 0 * * *", "targets": ["py"],
                   "config": {"depth": 2}}],
    }).manifest  # fmt: skip
    worker = Worker(FakeClock(), MemoryStore(), lambda: manifest, jobs / "artifacts")
    trigger = {"task_id": "daily", "target": "py", "scheduled_at": 1_767_225_600_000,
               "trace_id": "tr_py"}  # fmt: skip
    (run,) = asyncio.run(worker.handle(trigger))
    return run


@pytest.mark.parametrize("isolation", ["process", "inline"])
def test_a_sync_function_gets_its_context_and_writes_artifacts(jobs: Path, isolation: str) -> None:
    run = _run(jobs, "report", isolation)
    assert run.status == "succeeded", run.error + run.output_tail
    assert "'task': 'daily'" in run.output_tail and "'attempt': 1" in run.output_tail
    assert "2026-01-01T00:00:00+00:00" in run.output_tail
    assert json.loads((Path(run.artifact_dir) / "summary.json").read_text()) == {"depth": 2}


@pytest.mark.parametrize("isolation", ["process", "inline"])
def test_an_async_function_is_awaited(jobs: Path, isolation: str) -> None:
    run = _run(jobs, "fetch", isolation)
    assert (run.status, run.output_tail) == ("succeeded", "'fetched tr_py'\n")


@pytest.mark.parametrize("isolation", ["process", "inline"])
def test_a_function_that_raises_fails_with_its_traceback(jobs: Path, isolation: str) -> None:
    run = _run(jobs, "broken", isolation)
    assert run.status == "failed"
    assert "ValueError: the exchange said no" in run.output_tail


@pytest.mark.parametrize("isolation", ["process", "inline"])
def test_a_function_that_hangs_times_out(jobs: Path, isolation: str) -> None:
    run = _run(jobs, "stuck", isolation, timeout_s=1, kill_grace_s=0.5)
    assert run.status == "timed_out"


def test_a_missing_function_is_a_failed_run_not_a_crash(jobs: Path) -> None:
    assert _run(jobs, "nowhere", "inline").status == "failed"
    assert _run(jobs, "nowhere", "process").status == "failed"


def test_a_malformed_reference_is_rejected_at_load() -> None:
    result = validate_document({
        "targets": {"py": {"type": "python", "function": "no colon here"}},
        "tasks": [{"task_id": "a", "cron": "* * * * *", "targets": ["py"]}],
    })  # fmt: skip
    assert not result.manifest.tasks
