"""CronRunner: the heap of next fires and the loop that runs them through the pipeline.

The loop reads only the injected Clock. Each task has exactly one entry in the
heap: its next instant, which only ever moves forward, so no
``(task_id, scheduled_at_ms)`` comes due twice whatever the wall clock does.
A wall clock stepped back makes entries wait; one stepped forward (or a stalled
loop) makes them overdue, and an instant later than its grace is recorded as
missed, never fired silently late (``catch_up: once`` fires the latest one).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cronwarden.core.report import EventType, OperationsReport
from cronwarden.cron import CronSchedule, parse
from cronwarden.errors import CronwardenError
from cronwarden.manifest.model import CatchUp, Manifest, TaskSpec
from cronwarden.reasons import ReasonCode
from cronwarden.services.dispatch import Dispatcher, Fire, InFlight

LOGGER = logging.getLogger("cronwarden.scheduler")

#: Past this many misses of one task in one tick, the rest go into one report.
MISSES_REPORTED_ONE_BY_ONE = 100
#: At most this many instants of one task are looked at in one tick (a clock jumped by
#: a year would otherwise enumerate millions); past it the task resumes from now.
MAX_INSTANTS_PER_TICK = 100_000
#: The loop wakes at least this often, so that clock jumps and stops are seen.
MAX_SLEEP_S = 1.0
#: Fires due together go through the pipeline in batches of this many (two store
#: transactions each), so that the first reports land before the last fire is decided.
BATCH = 512
#: At start, instants missed while no scheduler ran are gone through one by one back to
#: this far; older ones get one report per task.
RESTART_LOOKBACK_MS = 24 * 3600 * 1000
#: How often the claims and rows of fires in flight are renewed (the outbox is swept
#: every RECOVER_EVERY_S, the store pruned every PRUNE_EVERY_S; all three also at start).
HOUSEKEEPING_S = 1.0
RECOVER_EVERY_S = 5.0
PRUNE_EVERY_S = 86_400.0


def new_trace_id() -> str:
    return f"tr_{secrets.token_hex(6)}"


def _compile(manifest: Manifest) -> tuple[dict[str, TaskSpec], dict[str, CronSchedule]]:
    """The enabled tasks of a manifest and their compiled schedules."""
    tasks = {task.task_id: task for task in manifest.tasks if task.enabled}
    schedules = {
        task_id: parse(task.cron_expression, manifest.zone_of(task), hash_key=task_id)
        for task_id, task in tasks.items()
    }
    return tasks, schedules


class CronRunner:
    """Fires every enabled task of a manifest at its instants, each exactly once."""

    def __init__(
        self,
        manifest: Manifest,
        dispatcher: Dispatcher,
        *,
        on_report: Callable[[OperationsReport], None] = lambda report: None,
        trace_id: Callable[[], str] = new_trace_id,
    ) -> None:
        self._manifest = manifest
        self._dispatcher = dispatcher
        self._on_report = on_report
        self._trace_id = trace_id
        self._clock = dispatcher.clock
        self._in_flight = InFlight(manifest.max_concurrent_tasks)
        self._tasks, self._schedules = _compile(manifest)
        self._heap: list[tuple[int, str]] = []
        self._lost: list[OperationsReport] = []  # misses found at start, recorded at once
        self._started = False

    def start_at(self, now_ms: int, last_recorded: Mapping[str, int] | None = None) -> None:
        """Put every task's first instant on the heap: the first after ``now_ms``, or, for
        a task with an instant recorded by an earlier run (``last_recorded``: task id →
        its latest recorded instant), the first after that one.

        Instants that passed while no scheduler ran are then due at once, and the first
        tick treats them like any late instant: fired inside their grace, recorded as
        missed past it (``catch_up: once`` fires the latest). Only the last
        :data:`RESTART_LOOKBACK_MS` is gone through one by one; instants before it get
        one report for the lot.
        """
        self._heap = []
        self._lost = []
        horizon_ms = now_ms - RESTART_LOOKBACK_MS
        for task_id, schedule in self._schedules.items():
            after_ms = (last_recorded or {}).get(task_id, now_ms)
            if after_ms < horizon_ms:
                self._lost.extend(self._lost_before(task_id, after_ms, horizon_ms))
                after_ms = horizon_ms
            # a record later than now (the clock was set back since) is resumed after too:
            # an instant is never gone through twice
            self._push(task_id, schedule.next_instant(after_ms / 1000))
        self._started = True

    def _lost_before(self, task_id: str, after_ms: int, until_ms: int) -> list[OperationsReport]:
        """One report for the instants of ``task_id`` in ``(after_ms, until_ms]``, if any."""
        schedule = self._schedules[task_id]
        first, last = schedule.next_instant(after_ms / 1000), schedule.prev_instant(
            until_ms / 1000 + 0.001)  # fmt: skip
        if first is None or last is None or first > last:
            return []
        details = {"missed_from_ms": first * 1000, "scheduler_stopped": True,
                   "not_counted": "older than the restart look-back"}  # fmt: skip
        return [self._missed(self._tasks[task_id], last * 1000, details)]

    def replace(self, manifest: Manifest, now_ms: int) -> dict[str, list[str]]:
        """Swap in a new manifest at once; return the task ids added, removed and changed.

        Unchanged tasks keep their place in the heap, so a reload never fires an
        instant twice or skips one; added and changed tasks start after ``now_ms``.
        """
        tasks, schedules = _compile(manifest)
        kept = {tid for tid in tasks if tid in self._tasks and self._same(tid, tasks, manifest)}
        self._heap = [(at, tid) for at, tid in self._heap if tid in kept]
        heapq.heapify(self._heap)
        for task_id in tasks.keys() - kept:
            self._push(task_id, schedules[task_id].next_instant(now_ms / 1000))
        diff = {
            "added": sorted(tasks.keys() - self._tasks.keys()),
            "removed": sorted(self._tasks.keys() - tasks.keys()),
            "changed": sorted((tasks.keys() & self._tasks.keys()) - kept),
        }
        self._manifest, self._tasks, self._schedules = manifest, tasks, schedules
        self._in_flight = InFlight(manifest.max_concurrent_tasks)
        return diff

    def _same(self, task_id: str, tasks: dict[str, TaskSpec], manifest: Manifest) -> bool:
        old, new = self._tasks[task_id], tasks[task_id]
        return old == new and self._manifest.zone_of(old) == manifest.zone_of(new)

    async def force(self, task_id: str, actor: str, reason: str) -> OperationsReport:
        """Dispatch ``task_id`` now, on an operator's word; :class:`KeyError` if not running."""
        task = self._tasks[task_id]
        forced = {"actor": actor, "reason": reason}
        report = await self._dispatcher.fire(
            task, self._now_ms(), self._trace_id(), (), forced=forced
        )
        await self._seen([report])
        return report

    @property
    def manifest(self) -> Manifest:
        """The manifest running now (the last good one after a reload)."""
        return self._manifest

    def task_class(self, task_id: str) -> str:
        """The class of a running task (for metric labels), ``""`` for none."""
        task = self._tasks.get(task_id)
        return "" if task is None else str(task.task_class)

    def next_due_ms(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set; meanwhile renew claims and sweep the outbox."""
        if not self._started:
            self.start_at(self._now_ms())
        helpers = [asyncio.ensure_future(self._every(HOUSEKEEPING_S, self._renew, stop)),
                   asyncio.ensure_future(self._every(RECOVER_EVERY_S, self.recover, stop)),
                   asyncio.ensure_future(self._every(PRUNE_EVERY_S, self.prune, stop))]  # fmt: skip
        try:
            while not stop.is_set():
                await self._guarded("tick", self.tick)
                due = self.next_due_ms()
                wait = MAX_SLEEP_S if due is None else due / 1000 - self._clock.now().timestamp()
                await self._sleep(min(max(wait, 0), MAX_SLEEP_S), stop, precise=due is not None)
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._last_flush()

    async def _last_flush(self) -> None:
        """At stop, one more try to write the reports that wait for the store; what is
        still unwritten is said, with its count, before the process ends."""
        unrecorded = self._dispatcher.unrecorded
        if unrecorded and not await self._dispatcher.flush():
            code = str(ReasonCode.CRON_RUNNER_BACKEND_FAILED)
            LOGGER.error("%d report(s) were never written: the store did not answer before "
                         "the stop (each is in this log as it was made)", unrecorded.depth,
                         extra={"reason_code": code})  # fmt: skip

    async def _guarded(self, what: str, work: Callable[[], Awaitable[object]]) -> None:
        """Run ``work``; whatever it raises is logged, and the loop goes on."""
        try:
            await work()
        except Exception as err:  # the daemon never dies of a backend or a bug in one round
            code = getattr(err, "code", type(err).__name__)
            extra = {"reason_code": str(ReasonCode.CRON_RUNNER_BACKEND_FAILED),
                     "error": f"{code}: {err}"}  # fmt: skip
            LOGGER.error("%s: %s", what, err, exc_info=not isinstance(err, CronwardenError),
                         extra=extra)  # fmt: skip

    async def _every(
        self, seconds: float, work: Callable[[], Awaitable[object]], stop: asyncio.Event
    ) -> None:
        """Run ``work`` now and then every ``seconds`` until ``stop``."""
        while not stop.is_set():
            await self._guarded(getattr(work, "__name__", "housekeeping"), work)
            await self._sleep(seconds, stop)

    async def _renew(self) -> None:
        await self._dispatcher.renew_claims()

    async def _sleep(self, seconds: float, stop: asyncio.Event, *, precise: bool = False) -> None:
        """Sleep on the clock for ``seconds``, or until ``stop`` is set."""
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds, precise=precise))
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for pending in (sleeper, stopper):
            pending.cancel()

    async def prune(self) -> int:
        """Drop reports and settled rows older than the manifest's ``retention_days``."""
        cutoff_ms = self._now_ms() - self._manifest.retention_days * 86_400_000
        pruned = await self._dispatcher.store.prune(cutoff_ms)
        if pruned:
            LOGGER.info("pruned %d records older than %d days", pruned,
                        self._manifest.retention_days)  # fmt: skip
        return pruned

    async def recover(self) -> list[OperationsReport]:
        """Settle fires that an instance committed and never settled (the outbox), and
        dispatch those it claimed and never committed."""
        await self._dispatcher.flush()  # reports that waited for the store, first
        grace = {tid: task.misfire_grace_s * 1000 for tid, task in self._tasks.items()}
        orphaned_after_ms = 2 * self._dispatcher.claim_ttl_ms
        reports = await self._dispatcher.recover(grace, orphaned_after_ms)
        reports += await self._dispatcher.retake(grace, self._manifest.quiet_hours)
        return await self._seen(reports)

    async def tick(self) -> list[OperationsReport]:
        """Run every instant that is due now; return the reports, misses first, in order."""
        now_ms = self._now_ms()
        fires: list[Fire] = []
        misses, self._lost = self._lost, []
        while self._heap and self._heap[0][0] <= now_ms:
            scheduled_ms, task_id = heapq.heappop(self._heap)
            missed, caught_up, to_fire = self._split(
                task_id, self._due_instants(task_id, scheduled_ms, now_ms), now_ms
            )
            task = self._tasks[task_id]  # as of now
            misses.extend(self._miss_reports(task, missed))
            fires.extend(Fire(task, at, self._trace_id(), catch_up=True) for at in caught_up)
            fires.extend(Fire(task, at, self._trace_id()) for at in to_fire)
        misses += self._lost  # runs of instants skipped after a huge jump
        self._lost = []
        reports = await self._seen(await self._dispatcher.record_misses(misses)) if misses else []
        windows = self._manifest.quiet_hours  # as of now
        for start in range(0, len(fires), BATCH):
            batch = fires[start : start + BATCH]
            reports += await self._seen(
                await self._dispatcher.fire_batch(batch, windows, self._in_flight)
            )
        return reports

    async def _seen(self, reports: list[OperationsReport]) -> list[OperationsReport]:
        """Hand each report to ``on_report``, then publish them on the reports topic."""
        for report in reports:
            self._on_report(report)
        await self._dispatcher.announce(reports)
        return reports

    async def record(self, report: OperationsReport) -> OperationsReport:
        """Store, hand on and publish a report that is not a fire's (a load, a reload)."""
        (recorded,) = await self._dispatcher.record([report])
        await self._seen([recorded])
        return recorded

    # -- steps ----------------------------------------------------------------------

    def _due_instants(self, task_id: str, first_ms: int, now_ms: int) -> list[int]:
        """Every instant of the task from ``first_ms`` to now; re-arms the task after them."""
        schedule = self._schedules[task_id]
        instants = [first_ms]
        following = schedule.next_instant(first_ms / 1000)
        while following is not None and following * 1000 <= now_ms:
            if len(instants) == MAX_INSTANTS_PER_TICK:  # a huge jump: the rest in one report
                self._lost.extend(self._lost_before(task_id, instants[-1], now_ms))
                following = schedule.next_instant(now_ms / 1000)
                break
            instants.append(following * 1000)
            following = schedule.next_instant(following)
        self._push(task_id, following)
        return instants

    def _split(
        self, task_id: str, instants: list[int], now_ms: int
    ) -> tuple[list[int], list[int], list[int]]:
        """``(missed, caught up, on time)``: instants past their grace are missed, but with
        ``catch_up: once`` the latest of them is fired anyway."""
        task = self._tasks[task_id]
        grace_ms = task.misfire_grace_s * 1000
        missed = [at for at in instants if now_ms - at > grace_ms]
        on_time = [at for at in instants if now_ms - at <= grace_ms]
        caught_up = [missed.pop()] if missed and task.catch_up is CatchUp.ONCE else []
        return missed, caught_up, on_time

    def _miss_reports(self, task: TaskSpec, missed: list[int]) -> list[OperationsReport]:
        reports = [self._missed(task, at, {}) for at in missed[:MISSES_REPORTED_ONE_BY_ONE]]
        rest = missed[MISSES_REPORTED_ONE_BY_ONE:]
        if rest:
            # stamped with the last instant of the run, so that the latest recorded instant
            # of a task is always the newest fired_at_ms (a restart resumes after it)
            reports.append(self._missed(task, rest[-1], {"missed_count": len(rest),
                                                        "missed_from_ms": rest[0]}))  # fmt: skip
        return reports

    def _missed(self, task: TaskSpec, at_ms: int, details: dict[str, Any]) -> OperationsReport:
        return OperationsReport(
            event_type=EventType.MISSED,
            task_id=task.task_id,
            fired_at_ms=at_ms,
            targets=task.targets,
            trace_id=self._trace_id(),
            reason_code=ReasonCode.CRON_RUNNER_MISSED_FIRE,
            lock_mode=self._dispatcher.lock_mode,
            suppressed_count=len(task.targets),
            details=details,
        )

    def _push(self, task_id: str, instant_s: int | None) -> None:
        if instant_s is not None:
            heapq.heappush(self._heap, (instant_s * 1000, task_id))

    def _now_ms(self) -> int:
        return int(self._clock.now().timestamp() * 1000)
