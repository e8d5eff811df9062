"""The worker: runs what a ``cron.trigger`` asks for, once per run key, and records it.

For each trigger it looks the target up in the running manifest. A bus-only target is
someone else's to act on; a command target is run here: each attempt in its own
artifact folder (``{artifacts_dir}/{task_id}/{UTC start}_{run_id}/`` with
``stdout.log``, ``stderr.log``, ``run.json`` and whatever the job writes to
``$CRONWARDEN_ARTIFACT_DIR``), retried by the target's policy with the waits read
from the injected clock, and each attempt is a :class:`~cronwarden.ports.RunRecord`.
The run key ``(task_id, scheduled_at_ms, target, attempt)`` is unique in the store,
so a trigger published twice (the outbox) runs once. The task's overlap policy
decides what a trigger does while the previous run of the same target still runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cronwarden.errors import BackendUnavailable
from cronwarden.manifest.model import Manifest, Overlap, TaskSpec
from cronwarden.manifest.targets import (
    CommandTarget,
    HttpTarget,
    PythonTarget,
    RunnableTarget,
    retriable_status,
)
from cronwarden.ports import Clock, Delivery, RunRecord, Store
from cronwarden.reasons import ReasonCode
from cronwarden.redact import redact_text
from cronwarden.services.backoff import Backoff
from cronwarden.services.notifications import Notifications
from cronwarden.services.overlap import Lease, OverlapLeases
from cronwarden.workers.artifacts import prune, task_dirs
from cronwarden.workers.command import CommandResult, run_command
from cronwarden.workers.python import run_inline

LOGGER = logging.getLogger("cronwarden.worker")
#: Seconds between two artifact-retention passes over one task's folder.
PRUNE_EVERY_S = 60.0
#: The longest wait between two tries of a store call that must not be given up
#: (the end of an attempt that has run; a trigger that could not be begun).
STORE_RETRY_MAX_S = 10.0


class Execute(Protocol):
    """How one command attempt runs (:func:`~cronwarden.workers.command.run_command`)."""

    def __call__(
        self,
        argv: tuple[str, ...],
        *,
        env: Mapping[str, str],
        cwd: str | None,
        out_dir: Path,
        timeout_s: float,
        kill_grace_s: float,
        shell: bool,
        die_with_worker: bool,
        kill_orphans: bool,
    ) -> Awaitable[CommandResult]: ...


class Request(Protocol):
    """How one HTTP-target attempt is made (:func:`~cronwarden.workers.http.send`)."""

    def __call__(
        self, target: HttpTarget, trigger: Mapping[str, Any], *, env: Mapping[str, str],
        out_dir: Path,
    ) -> Awaitable[CommandResult]: ...  # fmt: skip


def new_run_id() -> str:
    return f"run_{secrets.token_hex(6)}"


class Worker:
    """Consumes triggers and runs their command targets."""

    def __init__(
        self,
        clock: Clock,
        store: Store,
        manifest: Callable[[], Manifest],
        artifacts_dir: Path,
        *,
        execute: Execute = run_command,
        request: Request | None = None,
        notifications: Notifications | None = None,
        on_run: Callable[[RunRecord], None] = lambda run: None,
        on_start: Callable[[RunRecord], None] = lambda run: None,
        rng: random.Random | None = None,
        leases: OverlapLeases | None = None,
        die_with_worker: bool = False,
    ) -> None:
        self._clock, self._store, self._manifest = clock, store, manifest
        self._leases = leases  # overlap across workers (a shared bus); None: this one only
        # a shared bus runs a dead worker's trigger again: its jobs must die with it
        self._die_with_worker = die_with_worker
        self._artifacts = artifacts_dir
        self._execute, self._request, self._notifications = execute, request, notifications
        self._on_run, self._on_start = on_run, on_start
        self._rng = rng or random.Random()
        self._slots = asyncio.Semaphore(manifest().max_concurrent_runs)
        self._running: dict[tuple[str, str], _Run] = {}
        self._waiting: set[tuple[str, str]] = set()
        self._handling: set[asyncio.Task[list[RunRecord]]] = set()
        self._live_folders: set[str] = set()
        self._pruned_at: dict[str, float] = {}

    async def run(self, triggers: AsyncIterator[Delivery], stop: asyncio.Event) -> None:
        """Handle each trigger from ``triggers`` until ``stop``, acknowledging each once
        its run records are stored; then cancel what still runs (each process group is
        stopped and its run recorded as cancelled; those triggers stay unacknowledged, for
        another worker to take)."""
        stopper = asyncio.ensure_future(stop.wait())
        sweeping = asyncio.ensure_future(self._sweep_artifacts())  # never delays a trigger
        try:
            while not stop.is_set():
                next_trigger = asyncio.ensure_future(anext(triggers))
                await asyncio.wait({next_trigger, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if not next_trigger.done():
                    next_trigger.cancel()
                    await asyncio.gather(next_trigger, return_exceptions=True)
                    break
                handling = asyncio.ensure_future(self._handle_and_ack(next_trigger.result()))
                self._handling.add(handling)
                handling.add_done_callback(self._handling.discard)
        finally:
            stopper.cancel()
            sweeping.cancel()
            for handling in list(self._handling):
                handling.cancel()
            await asyncio.gather(*self._handling, return_exceptions=True)

    async def _sweep_artifacts(self) -> None:
        for folder in await asyncio.to_thread(task_dirs, self._artifacts):
            await self.prune_artifacts(folder.name)

    async def _handle_and_ack(self, delivery: Delivery) -> list[RunRecord]:
        """Handle one delivery and acknowledge it; a delivery whose run the worker's own
        stop interrupted stays unacknowledged, to be delivered again.

        While the store cannot be reached the delivery stays with this worker and is
        handled again, as a redelivery (an attempt begun is resumed, never run twice),
        when it answers: handing it back would spend its deliveries towards the
        dead-letter stream on an outage that is nobody's fault."""
        tries, deliveries = Backoff(self._clock, max_s=STORE_RETRY_MAX_S), delivery.deliveries
        while True:
            try:
                records = await self.handle(delivery.payload, deliveries=deliveries)
            except asyncio.CancelledError:
                raise
            except BackendUnavailable as err:
                if tries.say():
                    LOGGER.warning("trigger %s waits for the store (%s)", delivery.message_id,
                                   err)  # fmt: skip
                deliveries += 1
                await tries.wait()
                continue
            except Exception:  # a bad trigger: logged; the worker goes on
                task_id = str(delivery.payload.get("task_id", ""))
                LOGGER.exception("trigger %s of %s could not be handled", delivery.message_id,
                                 task_id, extra={"task_id": task_id})  # fmt: skip
                await delivery.nack()
                return []
            await delivery.ack()
            return records

    async def handle(self, trigger: Mapping[str, Any], *, deliveries: int = 1) -> list[RunRecord]:
        """Run one trigger's target per its task's overlap policy; the attempts' records
        (none for a bus-only target or a duplicate trigger).

        A trigger delivered again (``deliveries`` > 1: its worker stopped) resumes the
        run from what the store holds: an attempt left running is recorded abandoned,
        and the next attempt runs unless the run had already ended.
        """
        manifest = self._manifest()
        target_name = str(trigger["target"])
        target = manifest.target(target_name)
        if not isinstance(target, CommandTarget | HttpTarget | PythonTarget):
            return []  # bus only: an outside consumer acts on the trigger
        task = _task_or_default(manifest, str(trigger["task_id"]))
        resuming = deliveries > 1  # begun on a worker that stopped: never skipped
        if not await self._may_start_here(task, target_name, resuming):
            return [await self._skipped(task, target_name, trigger)]
        lease = None
        if self._leases is not None and task.overlap is not Overlap.ALLOW:
            lease = await self._leases.acquire(task.task_id, target_name, task.overlap,
                                               resuming=resuming)  # fmt: skip
            if lease is None:
                return [await self._skipped(task, target_name, trigger, elsewhere=True)]
        run = await self._run(task, target_name, target, trigger, deliveries, lease)
        records = run.records
        if self._notifications is not None:
            await self._notifications.after(task, records)
        if records and self._prune_due(task.task_id):
            await self.prune_artifacts(task.task_id)
        return records

    async def _may_start_here(self, task: TaskSpec, target: str, resuming: bool) -> bool:
        """The overlap policy inside this worker: whether a trigger of ``target`` may
        start now (after waiting for or stopping the run going, as the policy says); a
        ``resuming`` trigger waits for the run going, whatever the policy."""
        key = (task.task_id, target)
        current = self._running.get(key)
        if current is None or current.attempts.done() or task.overlap is Overlap.ALLOW:
            return True
        if resuming:
            await asyncio.gather(current.attempts, return_exceptions=True)
            return True
        if task.overlap is Overlap.FORBID or key in self._waiting:
            return False
        if task.overlap is Overlap.REPLACE:
            current.replace()
            await asyncio.gather(current.attempts, return_exceptions=True)
            return True
        self._waiting.add(key)  # queue_one: the one waiting
        try:
            await asyncio.gather(current.attempts, return_exceptions=True)
        finally:
            self._waiting.discard(key)
        return True

    async def _run(
        self, task: TaskSpec, name: str, target: RunnableTarget, trigger: Mapping[str, Any],
        deliveries: int, lease: Lease | None,
    ) -> _Run:  # fmt: skip
        """The attempts of one trigger, holding the task's place (and its lease) while
        they go; a run stopped by a newer trigger ends, one stopped by the worker raises."""
        key = (task.task_id, name)
        run = _Run()
        run.attempts = asyncio.ensure_future(
            self._attempts(task, name, target, trigger, run, deliveries)
        )
        if task.overlap is not Overlap.ALLOW:
            self._running[key] = run
        if lease is not None:
            lease.keep(run.replace)
        try:
            await run.attempts
        except asyncio.CancelledError:
            if not run.replaced:
                raise  # the worker stops: this trigger is left to be delivered again
        finally:
            if self._running.get(key) is run:
                del self._running[key]
            if lease is not None:
                await lease.release()
        return run

    def _prune_due(self, task_id: str) -> bool:
        """Retention runs after a task's run at most once a minute: listing a folder of
        a thousand runs after every run of an every-second task would cost more than
        the run."""
        now = self._clock.monotonic()
        last = self._pruned_at.get(task_id)
        if last is not None and now - last < PRUNE_EVERY_S:
            return False
        self._pruned_at[task_id] = now
        return True

    async def prune_artifacts(self, task_id: str) -> None:
        """Apply the task's artifact retention to its folder; the task's latest
        successful run and the runs still going are kept. Never raises."""
        manifest = self._manifest()
        rule = manifest.retention_of(_task_or_default(manifest, task_id))
        try:
            latest = await self._store.runs(task_id, status="succeeded", limit=1)
            going = await self._store.runs(task_id, status="running", limit=10_000)
            keep = self._live_folders | {run.artifact_dir for run in (*latest, *going)}
            await asyncio.to_thread(prune, self._artifacts / task_id, rule, self._clock.now(),
                                    keep)  # fmt: skip
        except Exception:  # retention must never stop a worker
            LOGGER.exception("artifact retention of %s failed", task_id,
                             extra={"task_id": task_id})  # fmt: skip

    async def _attempts(
        self, task: TaskSpec, name: str, target: RunnableTarget, trigger: Mapping[str, Any],
        run: _Run, deliveries: int,
    ) -> None:  # fmt: skip
        first, abandoned, wait = 1, 0, False
        if deliveries > 1:
            resumed = await self._resume(task, name, target, trigger)
            if resumed is None:
                return  # the run had ended before its worker stopped: nothing is left
            first, abandoned, wait = resumed
        for attempt in range(first, target.retry.max_attempts + abandoned + 1):
            counted = attempt - abandoned  # abandoned attempts do not count
            if attempt > first or wait:
                await self._clock.sleep(target.retry.delay_before(counted, self._rng))
            async with self._slots:
                done = await self._attempt(task, name, target, trigger, attempt, run, deliveries)
            if done is None:
                return  # this attempt of this fire was run already: a duplicate trigger
            record, retriable = done
            if record.status == "succeeded" or not retriable:
                return

    async def _resume(
        self, task: TaskSpec, name: str, target: RunnableTarget, trigger: Mapping[str, Any]
    ) -> tuple[int, int, bool] | None:
        """Where a redelivered trigger's run goes on: (next attempt, attempts abandoned,
        whether to wait the retry delay first); ``None`` when the run had ended."""
        prior = await self._store.fire_runs(task.task_id, int(trigger["scheduled_at"]), name)
        if not prior:
            return 1, 0, False
        ended = []
        for record in prior:
            if record.status == "running":  # its worker stopped in the middle of it
                record = replace(
                    record, status="cancelled", finished_at_ms=_ms(self._clock.now()),
                    reason_code=str(ReasonCode.CRON_RUNNER_RUN_ABANDONED),
                    error="the worker running this attempt stopped before it finished",
                )  # fmt: skip
                await self._store.finish_run(record)
                self._on_run(record)
            ended.append(record)
        abandoned = sum(r.reason_code == ReasonCode.CRON_RUNNER_RUN_ABANDONED for r in ended)
        last = ended[-1]
        was_abandoned = last.reason_code == ReasonCode.CRON_RUNNER_RUN_ABANDONED
        if last.status in ("succeeded", "skipped") or (
            not was_abandoned and (last.status == "cancelled" or not _retriable(target, last))
        ):
            return None
        following = last.attempt + 1
        if following - abandoned > target.retry.max_attempts:
            return None
        trace_id = str(trigger.get("trace_id", ""))
        LOGGER.warning("%s %s: trigger delivered again; resuming at attempt %d", task.task_id,
                       name, following,
                       extra={"task_id": task.task_id, "trace_id": trace_id})  # fmt: skip
        return following, abandoned, not was_abandoned

    async def _attempt(
        self,
        task: TaskSpec,
        name: str,
        target: RunnableTarget,
        trigger: Mapping[str, Any],
        attempt: int,
        run: _Run,
        deliveries: int,
    ) -> tuple[RunRecord, bool] | None:
        run_id = new_run_id()
        started = self._clock.now()
        folder = self._artifacts / task.task_id / f"{started:%Y%m%dT%H%M%S}Z_{run_id}"
        record = RunRecord(
            run_id=run_id, task_id=task.task_id, target=name,
            trace_id=str(trigger.get("trace_id", "")),
            scheduled_at_ms=int(trigger["scheduled_at"]), attempt=attempt, status="running",
            started_at_ms=_ms(started), artifact_dir=str(folder), deliveries=deliveries,
        )  # fmt: skip
        if not await self._store.begin_run(record):
            return None
        self._on_start(record)
        self._live_folders.add(str(folder))
        try:
            env = await self._environment(task, target, record, target.retry.max_attempts)
            try:
                result = await self._perform(target, record, env, folder)
            except asyncio.CancelledError:  # replaced by a newer run, or the worker stops
                why = (ReasonCode.CRON_RUNNER_RUN_REPLACED if run.replaced
                       else ReasonCode.CRON_RUNNER_RUN_ABANDONED)  # fmt: skip
                cancelled = CommandResult("cancelled", None, 0, "", "", "cancelled")
                run.records.append(await self._finish(record, cancelled, why))
                raise
            done = await self._finish(record, result)
            run.records.append(done)
            return done, result.retriable
        finally:
            self._live_folders.discard(str(folder))

    async def _perform(
        self, target: RunnableTarget, run: RunRecord, env: Mapping[str, str], folder: Path
    ) -> CommandResult:
        if isinstance(target, CommandTarget):
            task = _task_or_default(self._manifest(), run.task_id)
            started = datetime.fromtimestamp(run.started_at_ms / 1000, UTC)
            argv = target.argv(
                skill=task.skill or "", persona=task.persona or "",
                inputs_json=json.dumps(dict(task.inputs), default=str),
                session_id=f"cron-{task.skill or task.task_id}-{started:%Y%m%d-%H%M%S}",
            )  # fmt: skip
            return await self._execute(
                argv, env=env, cwd=target.cwd, out_dir=folder,
                timeout_s=target.timeout_s, kill_grace_s=target.kill_grace_s, shell=target.shell,
                die_with_worker=self._die_with_worker, kill_orphans=target.kill_orphans,
            )  # fmt: skip
        if isinstance(target, PythonTarget):
            if target.isolation == "inline":
                return await run_inline(target.function, env, folder, target.timeout_s)
            argv = (sys.executable, "-m", "cronwarden.workers.python", target.function)
            return await self._execute(
                argv, env=env, cwd=target.cwd, out_dir=folder, timeout_s=target.timeout_s,
                kill_grace_s=target.kill_grace_s, shell=False,
                die_with_worker=self._die_with_worker, kill_orphans=target.kill_orphans,
            )  # fmt: skip
        if self._request is None:
            return CommandResult("failed", None, 0, "", "",
                                 "this worker has no HTTP client", retriable=False)  # fmt: skip
        fields = {
            "task_id": run.task_id, "target": run.target, "scheduled_at": run.scheduled_at_ms,
            "trace_id": run.trace_id, "run_id": run.run_id, "attempt": run.attempt,
        }  # fmt: skip
        return await self._request(target, fields, env=env, out_dir=folder)

    async def _finish(
        self, run: RunRecord, result: CommandResult, why: ReasonCode | None = None
    ) -> RunRecord:
        failed = result.status != "succeeded"
        reason = why or (ReasonCode.CRON_RUNNER_RUN_FAILED if failed else None)
        done = replace(
            run, status=result.status, finished_at_ms=_ms(self._clock.now()),
            exit_code=result.exit_code, error=redact_text(result.error),
            reason_code=str(reason) if reason else "",
            output_tail=redact_text(
                result.stderr_tail if failed and result.stderr_tail else result.stdout_tail),
        )  # fmt: skip
        await asyncio.to_thread(_write_run_json, done)
        await self._finish_run(done)
        self._on_run(done)
        log = LOGGER.warning if failed else LOGGER.info
        log("%s %s attempt %d: %s", done.task_id, done.target, done.attempt, done.status,
            extra={"task_id": done.task_id, "trace_id": done.trace_id,
                   "reason_code": done.reason_code or None})  # fmt: skip
        return done

    async def _finish_run(self, done: RunRecord) -> None:
        """Record the end of an attempt that has run; while the store cannot be reached,
        again with backoff until it answers or the worker stops. Giving up would have
        the trigger delivered again and the attempt, which did run, run a second time."""
        tries = Backoff(self._clock, max_s=STORE_RETRY_MAX_S)
        while True:
            try:
                await self._store.finish_run(done)
                if tries.count:
                    LOGGER.warning("run %s recorded after the store came back", done.run_id)
                return
            except BackendUnavailable as err:
                if tries.say():
                    LOGGER.warning("run %s of %s ended %s but the store cannot record it (%s); "
                                   "trying again until it answers", done.run_id, done.task_id,
                                   done.status, err, extra={"task_id": done.task_id})  # fmt: skip
            await tries.wait()

    async def _skipped(
        self, task: TaskSpec, name: str, trigger: Mapping[str, Any], *, elsewhere: bool = False
    ) -> RunRecord:
        now_ms = _ms(self._clock.now())
        run = RunRecord(
            run_id=new_run_id(), task_id=task.task_id, target=name,
            trace_id=str(trigger.get("trace_id", "")),
            scheduled_at_ms=int(trigger["scheduled_at"]), attempt=1, status="skipped",
            started_at_ms=now_ms, finished_at_ms=now_ms,
            reason_code=str(ReasonCode.CRON_RUNNER_OVERLAP_SKIP),
            error=f"the previous run of {name} is still running"
            f"{' on another worker' if elsewhere else ''} (overlap: {task.overlap})",
        )  # fmt: skip
        if await self._store.begin_run(run):
            self._on_run(run)
        return run

    async def _environment(
        self, task: TaskSpec, target: RunnableTarget, run: RunRecord, attempts: int
    ) -> dict[str, str]:
        try:
            previous = await self._store.runs(task.task_id, status="succeeded", limit=1)
        except BackendUnavailable:  # begun already: run without the last good artifacts
            previous = []
        scheduled = datetime.fromtimestamp(run.scheduled_at_ms / 1000, UTC)
        return {
            **os.environ,
            **(target.env if isinstance(target, CommandTarget | PythonTarget) else {}),
            "CRONWARDEN_TASK_ID": task.task_id,
            "CRONWARDEN_TARGET": run.target,
            "CRONWARDEN_SCHEDULED_AT": scheduled.isoformat(),
            "CRONWARDEN_TRACE_ID": run.trace_id,
            "CRONWARDEN_RUN_ID": run.run_id,
            "CRONWARDEN_ATTEMPT": str(run.attempt),
            "CRONWARDEN_MAX_ATTEMPTS": str(attempts),
            "CRONWARDEN_ARTIFACT_DIR": run.artifact_dir,
            "CRONWARDEN_PREVIOUS_ARTIFACT_DIR": previous[0].artifact_dir if previous else "",
            "CRONWARDEN_CONFIG": json.dumps(dict(task.config), default=str),
        }


@dataclass
class _Run:
    """One trigger's attempts as they go: its records so far, kept when it is cancelled."""

    records: list[RunRecord] = field(default_factory=list)
    attempts: asyncio.Future[None] = field(init=False)
    #: Cancelled by a newer trigger (overlap: replace), not by the worker stopping.
    replaced: bool = False

    def replace(self) -> None:
        """Stop this run for a newer trigger of its task (overlap: replace)."""
        self.replaced = True
        self.attempts.cancel()


def _retriable(target: RunnableTarget, record: RunRecord) -> bool:
    """Whether another attempt could help after ``record`` ended: a command or Python
    target always; an HTTP target unless its answer was a final 4xx."""
    if isinstance(target, HttpTarget):
        return retriable_status(record.exit_code)
    return True


def _task_or_default(manifest: Manifest, task_id: str) -> TaskSpec:
    """The task as the manifest has it now; a task removed since its dispatch runs with
    the defaults (its trigger was dispatched and is honoured)."""
    try:
        return manifest.task(task_id)
    except KeyError:
        return TaskSpec(task_id=task_id)


def _write_run_json(run: RunRecord) -> None:
    folder = Path(run.artifact_dir)
    if folder.is_dir():
        (folder / "run.json").write_text(json.dumps(run.to_dict(), indent=2) + "\n")


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)
