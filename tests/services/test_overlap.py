"""Overlap policies across workers: two or three workers share one lock (as they share
Redis), each trigger of one task lands on another worker. Real time, short leases."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cronwarden.adapters.memory import MemoryLock, MemoryStore
from cronwarden.adapters.system import SystemClock
from cronwarden.manifest import validate_document
from cronwarden.manifest.model import Manifest
from cronwarden.ports import RunRecord
from cronwarden.reasons import ReasonCode
from cronwarden.services import overlap
from cronwarden.services.overlap import OverlapLeases
from cronwarden.services.worker import Worker
from cronwarden.workers.command import CommandResult

AT_MS = 1_767_225_600_000


@pytest.fixture(autouse=True)
def _quick_leases(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(overlap, "RENEW_S", 0.05)
    monkeypatch.setattr(overlap, "POLL_S", 0.05)
    yield


class Gated:
    """An ``execute`` that runs until its gate opens (or it is cancelled)."""

    def __init__(self) -> None:
        self.gate, self.started = asyncio.Event(), asyncio.Event()

    async def __call__(self, argv: Any, **_: Any) -> CommandResult:
        self.started.set()
        await self.gate.wait()
        return CommandResult("succeeded", 0, 1, "", "", "")


def _manifest(policy: str) -> Manifest:
    return validate_document({
        "targets": {"job": {"type": "command", "command": ["x"]}},
        "tasks": [{"task_id": "scan", "cron": "* * * * *", "targets": ["job"],
                   "overlap": policy}],
    }).manifest  # fmt: skip


def _trigger(n: int) -> dict[str, Any]:
    return {"task_id": "scan", "target": "job", "scheduled_at": AT_MS + n * 60_000,
            "trace_id": f"tr_{n}"}  # fmt: skip


async def _workers(policy: str, tmp_path: Path, count: int) -> tuple[list[Worker], list[Gated]]:
    clock, shared, store = SystemClock(), MemoryLock(SystemClock()), MemoryStore()
    manifest = _manifest(policy)
    executes = [Gated() for _ in range(count)]
    workers = [Worker(clock, store, lambda: manifest, tmp_path / f"w{n}", execute=executes[n],
                      leases=OverlapLeases(shared, clock, "cw", f"host:{n}"))
               for n in range(count)]  # fmt: skip
    return workers, executes


def test_forbid_skips_a_trigger_that_lands_on_another_worker(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[RunRecord], list[RunRecord]]:
        (one, two), (first, _) = await _workers("forbid", tmp_path, 2)
        running = asyncio.ensure_future(one.handle(_trigger(0)))
        await first.started.wait()
        skipped = await two.handle(_trigger(1))
        first.gate.set()
        return await running, skipped

    ran, (skipped,) = asyncio.run(scenario())
    assert [r.status for r in ran] == ["succeeded"]
    assert skipped.status == "skipped"
    assert skipped.reason_code == ReasonCode.CRON_RUNNER_OVERLAP_SKIP
    assert "on another worker" in skipped.error


def test_queue_one_waits_across_workers_and_skips_a_third(tmp_path: Path) -> None:
    async def scenario() -> list[list[RunRecord]]:
        workers, executes = await _workers("queue_one", tmp_path, 3)
        running = asyncio.ensure_future(workers[0].handle(_trigger(0)))
        await executes[0].started.wait()
        waiting = asyncio.ensure_future(workers[1].handle(_trigger(1)))
        await asyncio.sleep(0.2)  # it holds the one waiting place
        third = await workers[2].handle(_trigger(2))
        assert not executes[1].started.is_set()  # still waiting
        executes[0].gate.set()
        await executes[1].started.wait()
        executes[1].gate.set()
        return [await running, await waiting, third]

    first, second, third = asyncio.run(scenario())
    assert [r.status for r in first + second + third] == ["succeeded", "succeeded", "skipped"]


def test_replace_stops_the_run_on_another_worker(tmp_path: Path) -> None:
    async def scenario() -> list[list[RunRecord]]:
        (one, two), (first, second) = await _workers("replace", tmp_path, 2)
        running = asyncio.ensure_future(one.handle(_trigger(0)))
        await first.started.wait()
        newer = asyncio.ensure_future(two.handle(_trigger(1)))
        await second.started.wait()  # started once the first stopped
        second.gate.set()
        return [await asyncio.wait_for(running, 5), await newer]

    (replaced,), (newer,) = asyncio.run(scenario())
    assert replaced.status == "cancelled"
    assert replaced.reason_code == ReasonCode.CRON_RUNNER_RUN_REPLACED
    assert newer.status == "succeeded"
