"""The OperationsReport (ARCHITECTURE §3, contract): one per outcome of a fire."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from cronwarden.reasons import ReasonCode
from cronwarden.redact import redact

CRON_RUNNER_BOT_ID = "gov.cron_runner"
HEALTH_HEARTBEAT_BOT_ID = "gov.health_heartbeat"
SUPERVISOR_BOT_ID = "gov.supervisor"


class EventType(StrEnum):
    DISPATCHED = "CRON_TASK_DISPATCHED"
    SUPPRESSED = "CRON_TASK_SUPPRESSED"
    FAILED = "CRON_TASK_FAILED"
    MISSED = "CRON_TASK_MISSED"
    MANIFEST_LOADED = "CRON_MANIFEST_LOADED"
    MANIFEST_RELOAD_FAILED = "CRON_MANIFEST_RELOAD_FAILED"
    KILL_SWITCH_CHANGED = "KILL_SWITCH_CHANGED"
    TASK_PAUSED = "CRON_TASK_PAUSED"
    TASK_RESUMED = "CRON_TASK_RESUMED"
    NOTIFICATION = "CRON_NOTIFICATION"
    # the watchdog (spec 002): one per sweep, one per transition of a service
    HEALTH_SWEEP_COMPLETE = "HEALTH_SWEEP_COMPLETE"
    HEALTH_BOT_MISS = "HEALTH_BOT_MISS"
    HEALTH_BOT_DOWN = "HEALTH_BOT_DOWN"
    HEALTH_BOT_RECOVERED = "HEALTH_BOT_RECOVERED"
    HEALTH_AUTO_RESTART = "HEALTH_AUTO_RESTART"
    HEALTH_RESTART_BUDGET_EXHAUSTED = "HEALTH_RESTART_BUDGET_EXHAUSTED"
    HEALTH_RESTART_PAUSED = "HEALTH_RESTART_PAUSED"  # an operator's action
    HEALTH_RESTART_RESUMED = "HEALTH_RESTART_RESUMED"
    # the supervisor (spec 004): one per state change of a workload
    WORKLOAD_STATE = "SUPERVISOR_WORKLOAD_STATE"


_REPORT_PREFIX = {HEALTH_HEARTBEAT_BOT_ID: "ops_health", SUPERVISOR_BOT_ID: "ops_supervisor"}


@dataclass(frozen=True, slots=True)
class OperationsReport:
    """What happened to one scheduled instant of one task, and why.

    ``fired_at_ms`` is the scheduled instant (spec 000's pseudocode sets it to
    ``scheduled_at_ms``); ``report_id`` keeps the spec's ``ops_cronrunner_``
    prefix and adds the task and event so that it is unique.
    """

    event_type: EventType
    task_id: str
    fired_at_ms: int
    targets: tuple[str, ...]
    trace_id: str
    reason_code: ReasonCode
    lock_mode: str = "local"
    suppressed_count: int = 0
    bot_id: str = CRON_RUNNER_BOT_ID
    details: dict[str, Any] = field(default_factory=dict)

    def with_details(self, **details: Any) -> OperationsReport:
        """This report with ``details`` added."""
        return replace(self, details={**self.details, **details})

    @property
    def report_id(self) -> str:
        if self.event_type is EventType.HEALTH_SWEEP_COMPLETE:
            return f"ops_health_{self.fired_at_ms}"  # spec 002 §11, exactly
        prefix = _REPORT_PREFIX.get(self.bot_id, "ops_cronrunner")
        kind = self.event_type.removeprefix("CRON_TASK_").lower()
        if self.event_type is EventType.WORKLOAD_STATE:  # one event type, many changes
            kind = self.reason_code.removeprefix("SUPERVISOR_").lower()
        return f"{prefix}_{self.fired_at_ms}_{self.task_id}_{kind}"

    def to_dict(self) -> dict[str, Any]:
        """The contract's wire shape, plus ``reason_code``, ``lock_mode`` and any details
        (with credentials masked: :mod:`cronwarden.redact`)."""
        return {
            "report_id": self.report_id,
            "bot_id": self.bot_id,
            "event_type": str(self.event_type),
            "task_id": self.task_id,
            "fired_at_ms": self.fired_at_ms,
            "targets": list(self.targets),
            "suppressed_count": self.suppressed_count,
            "trace_id": self.trace_id,
            "report_kind": "OperationsReport",
            "reason_code": str(self.reason_code),
            "lock_mode": self.lock_mode,
            **(redact(self.details) if self.details else {}),
        }
