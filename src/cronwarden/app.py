"""The composition root: settings and manifest → adapters → services. The only place
that knows every adapter."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path

from cronwarden.adapters.memory import LocalBus, MemoryLock
from cronwarden.adapters.sql.controls import SqlKillSwitch, SqlPauses
from cronwarden.adapters.sql.store import SqlStore, sqlite_url
from cronwarden.adapters.system import SystemClock
from cronwarden.core.report import EventType, OperationsReport
from cronwarden.manifest import LoadResult, Manifest
from cronwarden.ports import Clock
from cronwarden.reasons import ReasonCode
from cronwarden.services.dispatch import Dispatcher
from cronwarden.services.scheduler import CronRunner, new_trace_id

STATE_DIR_ENV = "CRONWARDEN_STATE_DIR"


def state_dir(manifest_path: Path, manifest: Manifest | None) -> Path:
    """Where state lives: ``$CRONWARDEN_STATE_DIR``, else the manifest's ``state_dir``
    (relative to the manifest's folder), else ``.cronwarden`` beside the manifest."""
    from_env = os.environ.get(STATE_DIR_ENV)
    if from_env:
        return Path(from_env)
    folder = manifest_path.resolve().parent
    if manifest is not None and manifest.state_dir:
        return folder / manifest.state_dir
    return folder / ".cronwarden"


def open_store(directory: Path) -> SqlStore:
    return SqlStore(sqlite_url(directory))


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _loaded_report(result: LoadResult, now_ms: int) -> OperationsReport:
    manifest = result.manifest
    return OperationsReport(
        event_type=EventType.MANIFEST_LOADED,
        task_id="",
        fired_at_ms=now_ms,
        targets=(),
        trace_id=new_trace_id(),
        reason_code=ReasonCode.CRON_RUNNER_MANIFEST_RELOAD_OK,
        details={
            "tasks": [task.task_id for task in manifest.tasks],
            "problems": [str(problem) for problem in result.problems],
            "trigger": "start",
        },
    )


async def run_scheduler(
    result: LoadResult,
    store: SqlStore,
    stop: asyncio.Event,
    *,
    on_report: Callable[[OperationsReport], None],
    clock: Clock | None = None,
) -> None:
    """Run the scheduler of ``result``'s manifest on the embedded backends until ``stop``."""
    clock = clock or SystemClock()
    now_ms = int(clock.now().timestamp() * 1000)
    loaded = _loaded_report(result, now_ms)
    await store.add_report(loaded.to_dict(), now_ms)
    on_report(loaded)
    dispatcher = Dispatcher(
        clock=clock,
        lock=MemoryLock(clock),
        bus=LocalBus(),
        kill_switch=SqlKillSwitch(store),
        store=store,
        pauses=SqlPauses(store),
        owner=instance_name(),
    )
    await CronRunner(result.manifest, dispatcher, on_report=on_report).run(stop)


def control_report(
    event: EventType, reason: ReasonCode, task_id: str, actor: str, why: str, now_ms: int
) -> OperationsReport:
    """The report of an operator's action (kill switch, pause, resume)."""
    return OperationsReport(
        event_type=event,
        task_id=task_id,
        fired_at_ms=now_ms,
        targets=(),
        trace_id=new_trace_id(),
        reason_code=reason,
        details={"actor": actor, "reason": why},
    )
