"""Fires through the pipeline: claim, decide, commit, publish, settle (ARCHITECTURE §1).

A batch of fires (every fire of one tick) costs one claim round trip, one read of
the kill switch and the pauses, and two store transactions: one commits the
dispatch rows, one settles them with their reports. The row is committed before
anything is published: the store's unique ``(task_id, scheduled_at_ms)`` is the
second guard against a duplicate, after the claim. A row left open by an instance
that stopped between commit and settle is picked up by :meth:`Dispatcher.recover`
(the outbox). Every fire ends in exactly one OperationsReport.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from cronwarden.core.pipeline import lock_key, suppression
from cronwarden.core.report import EventType, OperationsReport
from cronwarden.errors import BackendUnavailable, CronwardenError
from cronwarden.failpoints import failpoint
from cronwarden.manifest.model import QuietHours, TaskSpec
from cronwarden.ports import Bus, Clock, DispatchRow, KillSwitch, Lock, Outcome, Pauses, Store
from cronwarden.reasons import ReasonCode
from cronwarden.services.backoff import Backoff
from cronwarden.services.report_buffer import ReportBuffer

TRIGGER_TOPIC = "cron.trigger"
#: Every recorded report is also published here (ARCHITECTURE §1), best effort: the
#: audit log in the store is the record.
REPORTS_TOPIC = "ops.reports"
LOGGER = logging.getLogger("cronwarden.scheduler")

_OUTCOME_EVENT = {
    Outcome.PUBLISHED: (EventType.DISPATCHED, ReasonCode.CRON_RUNNER_TASK_DISPATCHED),
    Outcome.FAILED: (EventType.FAILED, ReasonCode.CRON_RUNNER_BUS_PUBLISH_FAILED),
    Outcome.MISSED: (EventType.MISSED, ReasonCode.CRON_RUNNER_MISSED_FIRE),
}


@dataclass(frozen=True, slots=True)
class Fire:
    """One ``(task, scheduled instant)`` to run through the pipeline.

    A ``forced`` fire (an operator's, with ``actor`` and ``reason``) skips the pause,
    quiet-hours and grace checks; the claim, the kill switch and the commit still apply.
    A ``catch_up`` fire (``catch_up: once`` after a miss) is late by design: no grace check.
    """

    task: TaskSpec
    scheduled_at_ms: int
    trace_id: str
    forced: Mapping[str, str] | None = None
    catch_up: bool = False
    #: Tried again after another instance held its claim and never committed it.
    takeover: bool = False


#: The most fires whose triggers go out in one publish (one pipeline on Redis).
PUBLISH_CHUNK = 64

#: How long after a claim's TTL a contested fire is looked at again.
TAKEOVER_MARGIN_MS = 500


class InFlight:
    """The bound on publishes in flight (``max_concurrent_tasks``): the rest wait in order."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.slots = asyncio.Semaphore(limit)  # FIFO: an ordered queue


@dataclass(slots=True)
class _Verdict:
    event: EventType
    reason: ReasonCode
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Dispatcher:
    """Everything a fire needs from the outside world."""

    clock: Clock
    lock: Lock
    bus: Bus
    kill_switch: KillSwitch
    store: Store
    pauses: Pauses
    owner: str  # this instance, in claims and rows
    prefix: str = "cronwarden"
    claim_ttl_ms: int = 5_000  # spec 000
    publish_attempts: int = 3
    retry_delay_s: float = 0.2
    #: Whether an owner (another instance) is known to be gone, so that its open rows
    #: need not wait out the orphan delay; by default nothing is known.
    owner_gone: Callable[[str], bool] = field(default=lambda owner: False)
    #: A commit the store could not take is tried again with backoff while the batch's
    #: fires are inside their grace, for at most this long: a database restart delays
    #: fires instead of failing them. 0: one attempt.
    commit_retry_max_s: float = 30.0
    #: Reports and settlements the store could not take, written when it answers again.
    unrecorded: ReportBuffer = field(default_factory=ReportBuffer)
    #: Fires between commit and settle in this instance, whose claims it keeps renewing.
    in_flight: set[tuple[str, int]] = field(default_factory=set, init=False)
    #: Fires whose claim another instance held, to look at again once it lapsed: if that
    #: instance died before committing, nobody else would dispatch them.
    contested: dict[tuple[str, int], tuple[Fire, int]] = field(default_factory=dict, init=False)

    async def fire(
        self,
        task: TaskSpec,
        scheduled_at_ms: int,
        trace_id: str,
        windows: Sequence[QuietHours],
        *,
        forced: Mapping[str, str] | None = None,
    ) -> OperationsReport:
        """Run one fire through the pipeline; always one report."""
        fire = Fire(task, scheduled_at_ms, trace_id, forced)
        return (await self.fire_batch([fire], windows))[0]

    async def fire_batch(
        self,
        fires: Sequence[Fire],
        windows: Sequence[QuietHours],
        in_flight: InFlight | None = None,
    ) -> list[OperationsReport]:
        """Run ``fires`` through the pipeline together; one report per fire, in order.

        Backend failures never escape: a claim or commit that fails makes its fires
        ``CRON_RUNNER_BACKEND_FAILED``; a settle that fails leaves the rows open for
        :meth:`recover` and marks the reports ``recorded: false``.
        """
        if not fires:
            return []
        verdicts: list[_Verdict | None] = [None] * len(fires)
        try:
            passing = await self._decide(fires, windows, verdicts)
        except CronwardenError as err:
            passing = []
            _fail_open(verdicts, err)
        publishing: list[int] = []
        if passing:
            rows = [self._row(fires[i]) for i in passing]
            try:
                committed = await self._commit(rows, [fires[i] for i in passing])
                if any(committed):
                    failpoint("after-commit")
            except CronwardenError as err:
                committed = [False] * len(passing)
                _fail_open(verdicts, err)
            for i, won in zip(passing, committed, strict=True):
                if verdicts[i] is not None:
                    continue
                if won:
                    publishing.append(i)
                else:
                    verdicts[i] = _Verdict(
                        EventType.SUPPRESSED, ReasonCode.CRON_RUNNER_DUPLICATE_FIRE
                    )
        keys = [(fires[i].task.task_id, fires[i].scheduled_at_ms) for i in publishing]
        self.in_flight.update(keys)  # renewed and touched until settled
        try:
            outcomes = await self._publish_each([fires[i] for i in publishing], in_flight)
            for i, outcome in zip(publishing, outcomes, strict=True):
                event, reason = _OUTCOME_EVENT[outcome]
                verdicts[i] = _Verdict(event, reason, {"queued_past_grace": True} if
                                       outcome is Outcome.MISSED else {})  # fmt: skip
            reports = [
                self._report(fire, verdict) for fire, verdict in zip(fires, verdicts, strict=True)
                if verdict is not None
            ]  # fmt: skip
            settled = [
                (fires[i].task.task_id, fires[i].scheduled_at_ms, outcome)
                for i, outcome in zip(publishing, outcomes, strict=True)
            ]
            return await self.record(reports, settled)
        finally:
            self.in_flight.difference_update(keys)

    async def _commit(self, rows: list[DispatchRow], fires: Sequence[Fire]) -> list[bool]:
        """Commit ``rows``; while the store cannot be reached, again with backoff (0.1 s
        doubling to 2 s) until the earliest grace among ``fires`` would pass."""
        now_ms = self._now_ms()
        deadline_ms = now_ms + self.commit_retry_max_s * 1000
        for fire in fires:
            if fire.forced is None and not fire.catch_up:
                grace_end = fire.scheduled_at_ms + fire.task.misfire_grace_s * 1000
                deadline_ms = min(deadline_ms, grace_end)
        tries = Backoff(self.clock, max_s=2.0)
        while True:
            try:
                return await self.store.commit_dispatches(rows, now_ms)
            except BackendUnavailable as err:
                now_ms = self._now_ms()
                if now_ms + tries.next_wait_s * 1000 > deadline_ms:
                    raise
                if tries.say():
                    LOGGER.warning("the store cannot take %d fire(s) (%s); trying again while "
                                   "they are inside their grace", len(rows), err,
                                   extra={"reason_code": "CRON_RUNNER_BACKEND_FAILED"})  # fmt: skip
            await tries.wait()
            now_ms = self._now_ms()

    async def recover(
        self, grace_ms: Mapping[str, float], orphaned_after_ms: int
    ) -> list[OperationsReport]:
        """The outbox: settle rows an instance committed and never settled.

        A row its owner has not touched for ``orphaned_after_ms`` lost its instance (a
        live one touches its open rows every second). Exactly one instance adopts it;
        inside the task's grace (``grace_ms``) its triggers are published again
        (consumers dedupe on the run key), past it the fire is recorded as missed, as
        are rows of tasks no longer running. Each row is settled as soon as it is done.
        """
        reports: list[OperationsReport] = []
        untouched_since = self._now_ms() - orphaned_after_ms
        for row in await self.store.open_rows(self._now_ms() + 1):
            if (row.task_id, row.scheduled_at_ms) in self.in_flight:
                continue  # ours, still publishing
            if row.touched_at_ms >= untouched_since and not self.owner_gone(row.owner):
                continue  # touched lately: its owner may be alive
            key = lock_key(self.prefix, row.task_id, row.scheduled_at_ms)
            if not await self.lock.claim(key, self.owner, self.claim_ttl_ms):
                continue  # its instance is alive and renewing the claim
            if not await self.store.adopt(row, self.owner, self._now_ms()):
                continue  # another instance took it, or its owner touched it meanwhile
            reports += await self._recover_one(row, grace_ms.get(row.task_id))
        return reports

    async def _recover_one(
        self, row: DispatchRow, grace_ms: float | None
    ) -> list[OperationsReport]:
        key = (row.task_id, row.scheduled_at_ms)
        self.in_flight.add(key)
        try:
            if grace_ms is None or self._now_ms() - row.scheduled_at_ms > grace_ms:
                outcome = Outcome.MISSED
            else:
                outcome = await self._publish_targets(
                    row.task_id, row.targets, row.scheduled_at_ms, row.trace_id
                )
            event, reason = _OUTCOME_EVENT[outcome]
            report = OperationsReport(
                event_type=event, task_id=row.task_id, fired_at_ms=row.scheduled_at_ms,
                targets=row.targets, trace_id=row.trace_id, reason_code=reason,
                lock_mode=self.lock_mode,
                suppressed_count=0 if outcome is Outcome.PUBLISHED else len(row.targets),
                details={"recovered_from": row.owner},
            )  # fmt: skip
            return await self.record([report], [(row.task_id, row.scheduled_at_ms, outcome)])
        finally:
            self.in_flight.discard(key)

    async def renew_claims(self) -> None:
        """Keep this instance's fires in flight its own: renew their claims and touch their
        rows, so that no other instance takes them for orphans."""
        keys = list(self.in_flight)
        for task_id, scheduled_at_ms in keys:
            key = lock_key(self.prefix, task_id, scheduled_at_ms)
            await self.lock.renew(key, self.owner, self.claim_ttl_ms)
        await self.store.touch(self.owner, keys, self._now_ms())

    async def record(
        self,
        reports: list[OperationsReport],
        settled: Sequence[tuple[str, int, Outcome]] = (),
    ) -> list[OperationsReport]:
        """Store ``reports`` and close ``settled`` rows in one transaction, after anything
        still waiting in :attr:`unrecorded`; return the reports. When the store cannot
        take them they wait there too, and the reports returned say so
        (``recorded: false, buffered: true`` and the error)."""
        reports_out = [r.to_dict() for r in reports]
        now_ms = self._now_ms()
        try:
            if self.unrecorded and not await self.unrecorded.flush(self.store, self.owner, now_ms):
                raise BackendUnavailable("store: still unreachable, earlier reports wait")
            await self.store.settle(self.owner, settled, reports_out, now_ms)
        except CronwardenError as err:
            self.unrecorded.add(settled, reports_out)
            failure = {"recorded": False, "buffered": True, "store_error": f"{err.code}: {err}"}
            return [r.with_details(**failure) for r in reports]
        return reports

    async def record_misses(self, misses: list[OperationsReport]) -> list[OperationsReport]:
        """Record misses once across instances, as fires are: the instance that wins an
        instant's claim records it missed, the others record it as a duplicate
        (``CRON_RUNNER_DUPLICATE_FIRE``, ``missed: true``), so that schedulers starting
        together after an outage do not count each miss once each. When the lock cannot
        be reached every miss is recorded: a miss counted twice beats one never told."""
        if not misses:
            return []
        keys = [lock_key(self.prefix, report.task_id, report.fired_at_ms) for report in misses]
        try:
            claims = await self.lock.claim_many(keys, self.owner, self.claim_ttl_ms)
        except CronwardenError:
            return await self.record(misses)
        reports = [
            report if won else replace(
                report, event_type=EventType.SUPPRESSED,
                reason_code=ReasonCode.CRON_RUNNER_DUPLICATE_FIRE,
                details={**report.details, "missed": True})
            for report, won in zip(misses, claims, strict=True)
        ]  # fmt: skip
        return await self.record(reports)

    async def flush(self) -> bool:
        """Write the reports waiting for the store; whether none wait now."""
        return await self.unrecorded.flush(self.store, self.owner, self._now_ms())

    async def announce(self, reports: Sequence[OperationsReport]) -> None:
        """Publish ``reports`` on :data:`REPORTS_TOPIC` in one go (one round trip on
        Redis); a bus that refuses costs one warning (the reports are in the store)."""
        if not reports:
            return
        try:
            await self.bus.publish_many(REPORTS_TOPIC, [report.to_dict() for report in reports])
        except BackendUnavailable as err:
            LOGGER.warning("%d reports not all published on %s: %s", len(reports), REPORTS_TOPIC,
                           err, extra={"error": f"{err.code}: {err}"})  # fmt: skip

    @property
    def lock_mode(self) -> str:
        """Where this instance's claims are held now (``redis`` or ``local``)."""
        return self.lock.mode

    # -- steps ----------------------------------------------------------------------

    async def _decide(
        self, fires: Sequence[Fire], windows: Sequence[QuietHours], verdicts: list[_Verdict | None]
    ) -> list[int]:
        """Claim every fire and apply the rules; the indexes of the fires to commit."""
        keys = [lock_key(self.prefix, f.task.task_id, f.scheduled_at_ms) for f in fires]
        claims = await self.lock.claim_many(keys, self.owner, self.claim_ttl_ms)
        if any(claims):
            failpoint("after-claim")
        kill_switch_on = (await self.kill_switch.state()).active
        paused = await self.pauses.paused_tasks()
        passing: list[int] = []
        instants: dict[int, datetime] = {}
        for i, (fire, claimed) in enumerate(zip(fires, claims, strict=True)):
            reason: ReasonCode | None
            if not claimed:
                self._contest(fire)
                if fire.takeover:
                    continue  # still held: looked at again later, reported once already
                reason = ReasonCode.CRON_RUNNER_DUPLICATE_FIRE
            elif fire.forced is None and fire.task.task_id in paused:
                reason = ReasonCode.CRON_RUNNER_TASK_PAUSED
            else:
                at = instants.get(fire.scheduled_at_ms)
                if at is None:
                    at = instants[fire.scheduled_at_ms] = _instant(fire.scheduled_at_ms)
                rules = windows if fire.forced is None else ()
                reason = suppression(fire.task, at, kill_switch_on=kill_switch_on, windows=rules)
            if reason is None:
                passing.append(i)
            else:
                verdicts[i] = _Verdict(EventType.SUPPRESSED, reason)
        return passing

    def _contest(self, fire: Fire) -> None:
        if fire.forced is None:
            again_at = self._now_ms() + self.claim_ttl_ms + TAKEOVER_MARGIN_MS
            self.contested[(fire.task.task_id, fire.scheduled_at_ms)] = (
                replace(fire, takeover=True),
                again_at,
            )

    async def retake(
        self, grace_ms: Mapping[str, float], windows: Sequence[QuietHours]
    ) -> list[OperationsReport]:
        """Fires another instance claimed and never decided: once the claim had time to
        lapse, dispatch those still inside their grace (that instance died between its
        claim and its commit). A fire with a committed row, or an outcome another
        instance recorded (suppressed by the kill switch, say), was a true duplicate."""
        now_ms = self._now_ms()
        due = [key for key, (_, again_at) in self.contested.items() if again_at <= now_ms]
        fires = {key: self.contested.pop(key)[0] for key in due}
        live = {key: fire for key, fire in fires.items()
                if key[0] in grace_ms and now_ms - key[1] <= grace_ms[key[0]]}  # fmt: skip
        if not live:
            return []
        decided = await self.store.decided(list(live))
        orphans = [fire for key, fire in live.items() if key not in decided]
        if not orphans:
            return []
        LOGGER.warning("%d fire(s) claimed by an instance that never committed them: "
                       "taking them over", len(orphans))  # fmt: skip
        return await self.fire_batch(orphans, windows)

    def _row(self, fire: Fire) -> DispatchRow:
        return DispatchRow(fire.task.task_id, fire.scheduled_at_ms, fire.trace_id, self.owner,
                           fire.task.targets)  # fmt: skip

    async def _publish_each(
        self, fires: Sequence[Fire], in_flight: InFlight | None
    ) -> list[Outcome]:
        """Publish each fire's triggers, at most ``in_flight.limit`` publishes at once, in
        order. A publish carries a chunk of up to :data:`PUBLISH_CHUNK` fires when there
        are more fires than slots (one round trip on Redis for the chunk); a fire is
        checked against its grace when its chunk's turn comes."""
        outcomes: list[Outcome] = [Outcome.FAILED] * len(fires)
        if not fires:
            return outcomes
        bound = in_flight or InFlight(len(fires))
        size = min(PUBLISH_CHUNK, -(-len(fires) // bound.limit))
        chunks = iter([list(range(start, min(start + size, len(fires))))
                       for start in range(0, len(fires), size)])  # fmt: skip

        async def worker() -> None:
            for chunk in chunks:
                async with bound.slots:
                    if len(chunk) == 1:
                        outcomes[chunk[0]] = await self._publish_fire(fires[chunk[0]])
                    else:
                        for i, outcome in zip(chunk, await self._publish_chunk(
                                [fires[i] for i in chunk]), strict=True):  # fmt: skip
                            outcomes[i] = outcome

        count = -(-len(fires) // size)
        if count == 1:
            await worker()
        else:
            await asyncio.gather(*(worker() for _ in range(min(bound.limit, count))))
        return outcomes

    async def _publish_chunk(self, fires: Sequence[Fire]) -> list[Outcome]:
        """The triggers of ``fires`` in one publish; when the bus refuses it, fire by
        fire with the usual retries (a trigger it had taken may then go out twice: the
        workers run each run key once)."""
        now_ms = self._now_ms()
        outcomes = [Outcome.MISSED if self._queued_past_grace(fire, now_ms) else Outcome.FAILED
                    for fire in fires]  # fmt: skip
        going = [i for i, outcome in enumerate(outcomes) if outcome is Outcome.FAILED]
        payloads = [_trigger(fires[i].task.task_id, target, fires[i].scheduled_at_ms,
                             fires[i].trace_id)
                    for i in going for target in fires[i].task.targets]  # fmt: skip
        try:
            await self.bus.publish_many(TRIGGER_TOPIC, payloads)
        except Exception:  # any bus failure: each fire on its own, with retries
            for i in going:
                outcomes[i] = await self._publish_fire(fires[i])
            return outcomes
        for i in going:
            outcomes[i] = Outcome.PUBLISHED
        return outcomes

    def _queued_past_grace(self, fire: Fire, now_ms: int) -> bool:
        on_time = fire.forced is not None or fire.catch_up
        return not on_time and now_ms - fire.scheduled_at_ms > fire.task.misfire_grace_s * 1000

    async def _publish_fire(self, fire: Fire) -> Outcome:
        if self._queued_past_grace(fire, self._now_ms()):
            return Outcome.MISSED  # waited in the queue past its grace
        return await self._publish_targets(fire.task.task_id, fire.task.targets,
                                           fire.scheduled_at_ms, fire.trace_id)  # fmt: skip

    async def _publish_targets(
        self, task_id: str, targets: Sequence[str], scheduled_at_ms: int, trace_id: str
    ) -> Outcome:
        for target in targets:
            if not await self._publish(_trigger(task_id, target, scheduled_at_ms, trace_id)):
                return Outcome.FAILED
        return Outcome.PUBLISHED

    async def _publish(self, payload: dict[str, object]) -> bool:
        for attempt in range(1, self.publish_attempts + 1):
            try:
                await self.bus.publish(TRIGGER_TOPIC, payload)
                return True
            except Exception as err:  # any bus failure fails this attempt, never the loop
                if not isinstance(err, BackendUnavailable):
                    extra = {"task_id": payload["task_id"], "error": repr(err)}
                    LOGGER.warning("bus: publish failed: %r", err, extra=extra)
                if attempt < self.publish_attempts:
                    await self.clock.sleep(self.retry_delay_s * attempt)
        return False

    def _report(self, fire: Fire, verdict: _Verdict) -> OperationsReport:
        details = verdict.details
        if fire.forced is not None:
            details = {"forced": True, **fire.forced, **details}
        if fire.catch_up:
            details = {"catch_up": True, **details}
        if fire.takeover:
            details = {"taken_over": True, **details}
        dispatched = verdict.event is EventType.DISPATCHED
        return OperationsReport(
            event_type=verdict.event,
            task_id=fire.task.task_id,
            fired_at_ms=fire.scheduled_at_ms,
            targets=fire.task.targets,
            trace_id=fire.trace_id,
            reason_code=verdict.reason,
            lock_mode=self.lock_mode,
            suppressed_count=0 if dispatched else len(fire.task.targets),
            details=details,
        )

    def _now_ms(self) -> int:
        return int(self.clock.now().timestamp() * 1000)


def _trigger(task_id: str, target: str, scheduled_at_ms: int, trace_id: str) -> dict[str, object]:
    """The ``cron.trigger`` message of one target of one fire."""
    return {"task_id": task_id, "target": target, "scheduled_at": scheduled_at_ms,
            "trace_id": trace_id}  # fmt: skip


def _instant(at_ms: int) -> datetime:
    return datetime.fromtimestamp(at_ms / 1000, UTC)


def _backend_failed(err: CronwardenError) -> _Verdict:
    """A backend failed mid-fire: the fire is FAILED, with the backend's error."""
    return _Verdict(EventType.FAILED, ReasonCode.CRON_RUNNER_BACKEND_FAILED,
                    {"error": f"{err.code}: {err}"})  # fmt: skip


def _fail_open(verdicts: list[_Verdict | None], err: CronwardenError) -> None:
    for i, verdict in enumerate(verdicts):
        if verdict is None:
            verdicts[i] = _backend_failed(err)
