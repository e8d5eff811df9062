"""Pages to people: each report that pages goes to every channel of
``heartbeat.notify`` (names from ``notifications.channels``; ``memory`` only records),
and each delivery is recorded as a ``CRON_NOTIFICATION`` report, delivered or not.

A report pages when it says so (``alert: page``: a service down, its restart budget
spent, a recovery from down), or, when it does not say, when its reason code pages
(the supervisor's ``SUPERVISOR_RESTART_BUDGET_EXHAUSTED``). The watchdog and the
supervisor say each of these once per transition, so nothing is held back here.

Pages go out in the background (:meth:`Pager.send`), each delivery within
:data:`DELIVERY_TIMEOUT_S`: a channel that is slow or down during an incident never
delays a sweep, and never stops the watchdog.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from cronwarden.core.report import EventType, OperationsReport
from cronwarden.manifest.model import Manifest
from cronwarden.ports import Notifier
from cronwarden.reasons import AlertLevel, ReasonCode, reason
from cronwarden.services.notifications import deliver

LOGGER = logging.getLogger("cronwarden.heartbeat")


#: How long one delivery to one channel may take.
DELIVERY_TIMEOUT_S = 30.0


class Pager:
    def __init__(
        self,
        notifier: Notifier,
        manifest: Callable[[], Manifest],
        record: Callable[[Sequence[OperationsReport]], Awaitable[None]],
    ) -> None:
        self._notifier, self._manifest, self._record = notifier, manifest, record
        self._sending: set[asyncio.Task[list[OperationsReport]]] = set()

    def send(self, reports: Sequence[OperationsReport]) -> None:
        """Deliver the pages among ``reports`` in the background."""
        if not self._manifest().heartbeat_settings.notify or not any(map(pages, reports)):
            return
        task = asyncio.ensure_future(self.page(reports))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def aclose(self, grace_s: float = 5.0) -> None:
        """Let the pages under way finish for ``grace_s``, then give them up (logged)."""
        if not self._sending:
            return
        done, pending = await asyncio.wait(set(self._sending), timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            LOGGER.error("%d page(s) still going out at shutdown were given up", len(pending))
        await asyncio.gather(*done, *pending, return_exceptions=True)

    async def page(self, reports: Sequence[OperationsReport]) -> list[OperationsReport]:
        """Deliver the pages among ``reports``; record and return one report per delivery."""
        manifest = self._manifest()
        channels = manifest.heartbeat_settings.notify
        sent: list[OperationsReport] = []
        for report in reports:
            if not channels or not pages(report):
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
        try:
            async with asyncio.timeout(DELIVERY_TIMEOUT_S):
                error = await deliver(self._notifier, manifest.notifications.channels, channel,
                                      title, body, failure=failure)  # fmt: skip
        except TimeoutError:
            error = f"no delivery within {DELIVERY_TIMEOUT_S:g} s"
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


def pages(report: OperationsReport) -> bool:
    """Whether ``report`` pages: its own ``alert``, else its reason code's."""
    said = report.details.get("alert")
    if said is not None:
        return bool(said == "page")
    try:
        return reason(report.reason_code).alert is AlertLevel.PAGE
    except KeyError:
        return False


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
