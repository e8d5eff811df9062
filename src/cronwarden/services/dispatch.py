"""One fire through the pipeline: claim, decide, commit, publish, report (ARCHITECTURE §1).

The dispatch row is committed before anything is published: the store's unique
``(task_id, scheduled_at_ms)`` is the second guard against a duplicate, after
the claim. Every outcome is one OperationsReport, stored and returned.
Not yet here: re-publishing rows the bus never acknowledged (the outbox loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from cronwarden.core.pipeline import lock_key, suppression
from cronwarden.core.report import EventType, OperationsReport
from cronwarden.errors import BackendUnavailable
from cronwarden.manifest.model import QuietHours, TaskSpec
from cronwarden.ports import Bus, Clock, DispatchRow, KillSwitch, Lock, Pauses, Store
from cronwarden.reasons import ReasonCode

TRIGGER_TOPIC = "cron.trigger"


@dataclass(frozen=True, slots=True)
class Dispatcher:
    """Everything a fire needs from the outside world."""

    clock: Clock
    lock: Lock
    bus: Bus
    kill_switch: KillSwitch
    store: Store
    pauses: Pauses
    owner: str  # this instance, in claims
    prefix: str = "cronwarden"
    claim_ttl_ms: int = 5_000  # spec 000
    publish_attempts: int = 3
    retry_delay_s: float = 0.2
    lock_mode: str = "local"

    async def fire(
        self,
        task: TaskSpec,
        scheduled_at_ms: int,
        trace_id: str,
        windows: Sequence[QuietHours],
        *,
        forced: dict[str, str] | None = None,
    ) -> OperationsReport:
        """Run one ``(task, scheduled instant)`` through the pipeline; always one report.

        A ``forced`` fire (an operator's, with ``actor`` and ``reason``) skips the pause
        and quiet-hours steps; the claim, the kill switch and the commit still apply.
        """
        if forced is not None:
            windows = ()
        event, reason = await self._decide(task, scheduled_at_ms, trace_id, windows, forced)
        report = self._report(event, reason, task, scheduled_at_ms, trace_id)
        if forced is not None:
            report = replace(report, details={"forced": True, **forced})
        await self.store.add_report(report.to_dict(), self._now_ms())
        return report

    async def _decide(
        self,
        task: TaskSpec,
        scheduled_at_ms: int,
        trace_id: str,
        windows: Sequence[QuietHours],
        forced: dict[str, str] | None,
    ) -> tuple[EventType, ReasonCode]:
        key = lock_key(self.prefix, task.task_id, scheduled_at_ms)
        if not await self.lock.claim(key, self.owner, self.claim_ttl_ms):
            return EventType.SUPPRESSED, ReasonCode.CRON_RUNNER_DUPLICATE_FIRE
        if forced is None and await self.pauses.paused(task.task_id):
            return EventType.SUPPRESSED, ReasonCode.CRON_RUNNER_TASK_PAUSED
        at = datetime.fromtimestamp(scheduled_at_ms / 1000, UTC)
        kill_switch_on = (await self.kill_switch.state()).active
        reason = suppression(task, at, kill_switch_on=kill_switch_on, windows=windows)
        if reason is not None:
            return EventType.SUPPRESSED, reason
        row = DispatchRow(task.task_id, scheduled_at_ms, trace_id, self.owner, task.targets, False)
        if not await self.store.commit_dispatch(row, self._now_ms()):
            return EventType.SUPPRESSED, ReasonCode.CRON_RUNNER_DUPLICATE_FIRE
        if not await self._publish_all(task, scheduled_at_ms, trace_id):
            return EventType.FAILED, ReasonCode.CRON_RUNNER_BUS_PUBLISH_FAILED
        await self.store.mark_published(task.task_id, scheduled_at_ms, self._now_ms())
        return EventType.DISPATCHED, ReasonCode.CRON_RUNNER_TASK_DISPATCHED

    def _now_ms(self) -> int:
        return int(self.clock.now().timestamp() * 1000)

    async def _publish_all(self, task: TaskSpec, scheduled_at_ms: int, trace_id: str) -> bool:
        for target in task.targets:
            payload = {
                "task_id": task.task_id,
                "target": target,
                "scheduled_at": scheduled_at_ms,
                "trace_id": trace_id,
            }
            if not await self._publish(payload):
                return False
        return True

    async def _publish(self, payload: dict[str, object]) -> bool:
        for attempt in range(1, self.publish_attempts + 1):
            try:
                await self.bus.publish(TRIGGER_TOPIC, payload)
                return True
            except BackendUnavailable:
                if attempt < self.publish_attempts:
                    await self.clock.sleep(self.retry_delay_s * attempt)
        return False

    def _report(
        self,
        event: EventType,
        reason: ReasonCode,
        task: TaskSpec,
        scheduled_at_ms: int,
        trace_id: str,
    ) -> OperationsReport:
        suppressed = 0 if event is EventType.DISPATCHED else len(task.targets)
        return OperationsReport(
            event_type=event,
            task_id=task.task_id,
            fired_at_ms=scheduled_at_ms,
            targets=task.targets,
            trace_id=trace_id,
            reason_code=reason,
            lock_mode=self.lock_mode,
            suppressed_count=suppressed,
        )
