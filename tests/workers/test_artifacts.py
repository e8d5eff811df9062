"""Artifact retention: at most ``max_runs`` folders per task, none older than
``max_age_days``; the latest successful run and live runs are always kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cronwarden.adapters.memory import MemoryStore
from cronwarden.manifest import validate_document
from cronwarden.manifest.model import ArtifactRetention
from cronwarden.ports import Delivery
from cronwarden.services.worker import Worker
from cronwarden.testing import FakeClock
from cronwarden.workers.artifacts import prune
from cronwarden.workers.command import CommandResult

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _folders(task_dir: Path, *days_ago: float) -> list[Path]:
    made = []
    for index, age in enumerate(days_ago):
        started = NOW - timedelta(days=age)
        folder = task_dir / f"{started:%Y%m%dT%H%M%S}Z_run_{index:012x}"
        folder.mkdir(parents=True)
        (folder / "stdout.log").write_text("x")
        made.append(folder)
    return made


def test_the_oldest_folders_beyond_the_count_go_first(tmp_path: Path) -> None:
    folders = _folders(tmp_path, 5, 4, 3, 2, 1)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "handmade").mkdir()
    removed = prune(tmp_path, ArtifactRetention(max_runs=2, max_age_days=0), NOW)
    assert removed == folders[:3]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["notes.txt", "handmade", folders[3].name, folders[4].name]
    )


def test_folders_older_than_the_age_go_except_those_kept(tmp_path: Path) -> None:
    folders = _folders(tmp_path, 40, 31, 29, 0.5)
    removed = prune(tmp_path, ArtifactRetention(max_runs=0, max_age_days=30), NOW,
                    keep={str(folders[0])})  # fmt: skip
    assert removed == [folders[1]]
    assert prune(tmp_path / "no-such-task", ArtifactRetention(), NOW) == []


class Folders:
    """An ``execute`` that writes its output folder and answers the given statuses."""

    def __init__(self, *statuses: str) -> None:
        self.statuses = list(statuses)

    async def __call__(self, argv: tuple[str, ...], *, out_dir: Path, **_: Any) -> CommandResult:
        await asyncio.to_thread(out_dir.mkdir, parents=True)
        status = self.statuses.pop(0)
        return CommandResult(status, 0 if status == "succeeded" else 1, 1, "", "", "")


def test_the_worker_keeps_the_count_and_the_last_good_run(tmp_path: Path) -> None:
    manifest = validate_document({
        "artifact_retention": {"max_runs": 10, "max_age_days": 0},
        "targets": {"job": {"type": "command", "command": ["true"]}},
        "tasks": [{"task_id": "scan", "cron": "* * * * *", "targets": ["job"],
                   "artifact_retention": {"max_runs": 2}}],
    }).manifest  # fmt: skip
    clock = FakeClock(NOW)
    execute = Folders("succeeded", "failed", "failed", "failed", "failed")
    worker = Worker(clock, MemoryStore(), lambda: manifest, tmp_path, execute=execute)

    async def five_fires() -> list[str]:
        dirs = []
        for _ in range(5):
            clock.advance(60)
            trigger = {"task_id": "scan", "target": "job", "trace_id": "tr",
                       "scheduled_at": int(clock.now().timestamp() * 1000)}  # fmt: skip
            (run,) = await worker.handle(trigger)
            dirs.append(run.artifact_dir)
        return dirs

    dirs = asyncio.run(five_fires())
    left = sorted(str(p) for p in (tmp_path / "scan").iterdir())
    assert left == sorted([dirs[0], dirs[3], dirs[4]])  # the good one, then the newest two


def test_a_worker_starting_sweeps_every_task_folder(tmp_path: Path) -> None:
    manifest = validate_document({"artifact_retention": {"max_age_days": 7}}).manifest
    old = _folders(tmp_path / "removed_task", 9, 1)
    worker = Worker(FakeClock(NOW), MemoryStore(), lambda: manifest, tmp_path)

    async def nothing() -> AsyncIterator[Delivery]:
        await asyncio.Event().wait()
        yield Delivery({})

    async def start_and_stop() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.5, stop.set)  # the sweep runs meanwhile
        await worker.run(nothing(), stop)

    asyncio.run(start_and_stop())
    assert [p.name for p in (tmp_path / "removed_task").iterdir()] == [old[1].name]
