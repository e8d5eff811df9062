"""The scheduler's own health (spec 000 runbook.healthcheck, spec 003's health check).

Green: the manifest loaded without rejections and, whenever a task came due in
the last 15 minutes, something was dispatched in them. Red otherwise, with the
reasons listed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cronwarden.core.report import EventType, OperationsReport
from cronwarden.reasons import ReasonCode
from cronwarden.redact import redact_text

NO_DISPATCH_RED_AFTER_MS = 15 * 60 * 1000


@dataclass
class CronHealth:
    """Counts and times the health endpoint reports, fed by every OperationsReport."""

    started_ms: int
    task_count: int = 0
    manifest_problems: int = 0
    reload_failed: str = ""
    last_report_ms: int | None = None
    last_due_ms: int | None = None
    last_dispatch_ms: int | None = None
    total: int = 0
    successful: int = 0
    failed: int = 0
    next_fire_ms: Callable[[], int | None] = field(default=lambda: None)
    #: Where claims are held now (``redis`` or ``local``): the dispatcher's lock.
    lock_mode: Callable[[], str] = field(default=lambda: "local")
    #: Whether a configured shared lock cannot be reached (claims fell back to local).
    shared_lock_down: Callable[[], bool] = field(default=lambda: False)
    #: How many reports wait in memory for the store (it could not be reached).
    reports_waiting: Callable[[], int] = field(default=lambda: 0)

    def observe(self, report: OperationsReport, now_ms: int) -> None:
        self.last_report_ms = now_ms
        event = report.event_type
        if event is EventType.MANIFEST_LOADED:
            self.task_count = len(report.details.get("tasks", []))
            self.manifest_problems = len(report.details.get("problems", []))
            self.reload_failed = ""
        elif event is EventType.MANIFEST_RELOAD_FAILED:
            self.reload_failed = redact_text(str(report.details.get("error", "")))
        elif event in (EventType.DISPATCHED, EventType.FAILED, EventType.SUPPRESSED,
                       EventType.MISSED):  # fmt: skip
            self._fire(report, now_ms)

    def _fire(self, report: OperationsReport, now_ms: int) -> None:
        self.last_due_ms = now_ms
        if report.event_type is EventType.DISPATCHED:
            self.total += 1
            self.successful += 1
            self.last_dispatch_ms = now_ms
        elif report.event_type is EventType.FAILED:
            self.total += 1
            self.failed += 1

    def problems(self, now_ms: int) -> list[str]:
        found = []
        if self.manifest_problems:
            found.append(f"manifest: {self.manifest_problems} problem(s) at the last load")
        if self.reload_failed:
            found.append(f"manifest reload failed: {self.reload_failed}")
        since = self.last_dispatch_ms if self.last_dispatch_ms is not None else self.started_ms
        recently_due = (
            self.last_due_ms is not None and now_ms - self.last_due_ms < NO_DISPATCH_RED_AFTER_MS
        )
        if recently_due and now_ms - since > NO_DISPATCH_RED_AFTER_MS:
            found.append("no dispatch in 15 minutes while tasks were due")
        return found

    def warnings(self) -> list[str]:
        """What is degraded without stopping dispatch (health stays green)."""
        found = []
        if self.shared_lock_down():
            found.append(f"{ReasonCode.REDIS_LOCK_UNAVAILABLE}: claims are held in this process "
                         "until Redis answers; safe for one instance only")  # fmt: skip
        if waiting := self.reports_waiting():
            found.append(f"{ReasonCode.CRON_RUNNER_BACKEND_FAILED}: {waiting} report(s) wait in "
                         "memory until the store answers")  # fmt: skip
        return found

    def snapshot(self, now_ms: int) -> dict[str, Any]:
        problems = self.problems(now_ms)
        nxt = self.next_fire_ms()
        return {
            "status": "red" if problems else "green",
            "problems": problems,
            "uptime_s": round((now_ms - self.started_ms) / 1000, 3),
            "last_tick_ms": self.last_report_ms,
            "next_fire_ms": nxt,
            "lock_mode": self.lock_mode(),
            "warnings": self.warnings(),
            "task_count": self.task_count,
            "last_execution_ms": self.last_dispatch_ms,
            "total": self.total,
            "successful": self.successful,
            "failed": self.failed,
            "success_rate": round(self.successful / self.total, 4) if self.total else None,
        }
