"""One fire through the pipeline: claim, decide, publish, report (ARCHITECTURE §1).

Not yet here (the rest of the CronRunner issue): the shared dispatch row
committed before publishing (the outbox) and the store the report goes to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cronwarden.core.pipeline import lock_key, suppression
from cronwarden.core.report import EventType, OperationsReport
from cronwarden.errors import BackendUnavailable
from cronwarden.manifest.model import QuietHours, TaskSpec
from cronwarden.ports import Bus, Clock, KillSwitch, Lock
from cronwarden.reasons import ReasonCode

TRIGGER_TOPIC = "cron.trigger"


@dataclass(frozen=True, slots=True)
class Dispatcher:
    """Everything a fire needs from the outside world."""

    clock: Clock
    lock: Lock
    bus: Bus
    kill_switch: KillSwitch
    owner: str  # this instance, in claims
    prefix: str = "cronwarden"
    claim_ttl_ms: int = 5_000  # spec 000
    publish_attempts: int = 3
    retry_delay_s: float = 0.2
    lock_mode: str = "local"

    async def fire(
        self, task: TaskSpec, scheduled_at_ms: int, trace_id: str, windows: Sequence[QuietHours]
    ) -> OperationsReport:
        """Run one ``(task, scheduled instant)`` through the pipeline; always one report."""
        key = lock_key(self.prefix, task.task_id, scheduled_at_ms)
        if not await self.lock.claim(key, self.owner, self.claim_ttl_ms):
            return self._report(EventType.SUPPRESSED, ReasonCode.CRON_RUNNER_DUPLICATE_FIRE,
                                task, scheduled_at_ms, trace_id)  # fmt: skip
        at = datetime.fromtimestamp(scheduled_at_ms / 1000, UTC)
        kill_switch_on = (await self.kill_switch.state()).active
        reason = suppression(task, at, kill_switch_on=kill_switch_on, windows=windows)
        if reason is not None:
            return self._report(EventType.SUPPRESSED, reason, task, scheduled_at_ms, trace_id)
        if not await self._publish_all(task, scheduled_at_ms, trace_id):
            return self._report(EventType.FAILED, ReasonCode.CRON_RUNNER_BUS_PUBLISH_FAILED,
                                task, scheduled_at_ms, trace_id)  # fmt: skip
        return self._report(EventType.DISPATCHED, ReasonCode.CRON_RUNNER_TASK_DISPATCHED,
                            task, scheduled_at_ms, trace_id)  # fmt: skip

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
