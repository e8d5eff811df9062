"""Pages from the watchdog to people: each report the watchdog marks ``alert: page``
(a service down, its restart budget spent, a recovery from down) goes to every
channel of ``heartbeat.notify`` (names from ``notifications.channels``; ``memory``
only records), and each delivery is recorded as a ``CRON_NOTIFICATION`` report of
the service, delivered or not. A channel that fails never stops the watchdog.

The watchdog's state machine already says each of these once per transition, so
nothing is held back here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from cronwarden.core.report import EventType, OperationsReport
from cronwarden.manifest.model import Manifest
from cronwarden.ports import Notifier
from cronwarden.reasons import ReasonCode
from cronwarden.services.notifications import deliver

LOGGER = logging.getLogger("cronwarden.heartbeat")


class Pager:
    def __init__(
        self,
        notifier: Notifier,
        manifest: Callable[[], Manifest],
        record: Callable[[Sequence[OperationsReport]], Awaitable[None]],
    ) -> None:
        self._notifier, self._manifest, self._record = notifier, manifest, record

    async def page(self, reports: Sequence[OperationsReport]) -> list[OperationsReport]:
        """Deliver the pages among ``reports``; record and return one report per delivery."""
        manifest = self._manifest()
        channels = manifest.heartbeat_settings.notify
        sent: list[OperationsReport] = []
        for report in reports:
            if not channels or report.details.get("alert") != "page":
                continue
            title = f"cronwarden: {report.task_id} {report.reason_code}"
            body = _body(report)
            sent.extend([await self._deliver(manifest, channel, report, title, body)
                         for channel in channels])  # fmt: skip
        if sent:
            await self._record(sent)
        return sent

    async def _deliver(
        self, manifest: Manifest, channel: str, report: OperationsReport, title: str, body: str
    ) -> OperationsReport:
        failure = report.reason_code is not ReasonCode.HEALTH_HEARTBEAT_BOT_RECOVERED
        error = await deliver(self._notifier, manifest.notifications.channels, channel, title,
                              body, failure=failure)  # fmt: skip
        delivered = not error
        if error:
            LOGGER.error("page to %s failed: %s", channel, error)
        code = (ReasonCode.CRON_RUNNER_NOTIFICATION_SENT if delivered
                else ReasonCode.CRON_RUNNER_NOTIFICATION_FAILED)  # fmt: skip
        details = {"channel": channel, "event": str(report.event_type), "delivered": delivered,
                   "message": body, "about_trace_id": report.trace_id}  # fmt: skip
        if error:
            details["error"] = error
        return OperationsReport(
            event_type=EventType.NOTIFICATION, task_id=report.task_id,
            fired_at_ms=report.fired_at_ms, targets=(), trace_id=report.trace_id,
            reason_code=code, bot_id=report.bot_id, details=details,
        )  # fmt: skip


def _body(report: OperationsReport) -> str:
    found = report.details
    lines = [str(found.get("message") or report.reason_code)]
    if "miss_count" in found:
        lines.append(f"{report.task_id}: {found['miss_count']} consecutive missed heartbeats; "
                     f"last error: {found.get('last_error') or '-'}")  # fmt: skip
    if "restarts_in_window" in found and "window_s" in found:
        lines.append(f"{found['restarts_in_window']} automatic restart(s) in the last "
                     f"{found['window_s']:g} s")  # fmt: skip
    if found.get("down_for_ms") is not None:
        lines.append(f"{report.task_id} was down for {found['down_for_ms'] / 1000:.0f} s")
    return "\n".join(lines)
