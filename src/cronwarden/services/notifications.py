"""After a run: tell the task's channels, once per event within a window, and record it.

Events (a task's ``notify_on``; default failure and retry_exhausted): ``failure`` when
an attempt failed and another follows, ``retry_exhausted`` when the last attempt
failed, ``success`` when the run succeeded. Channels are names from
``notifications.channels`` (apprise URLs); ``memory`` only records. The same
(task, target, event, channel) is held back within ``dedupe_window_s``, read from
the recorded notifications, so a restart or another worker on the same store does
not send it again. Every
notification is a ``CRON_NOTIFICATION`` report naming the channel, never its URL;
a delivery that fails is recorded and never fails the run.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence

from cronwarden.core.report import EventType, OperationsReport
from cronwarden.errors import CronwardenError
from cronwarden.manifest.model import Manifest, NotifyOn, TaskSpec
from cronwarden.ports import Clock, Notifier, RunRecord, Store
from cronwarden.reasons import ReasonCode

LOGGER = logging.getLogger("cronwarden.worker")
MEMORY = "memory"


class Notifications:
    def __init__(
        self, clock: Clock, store: Store, notifier: Notifier, manifest: Callable[[], Manifest]
    ) -> None:
        self._clock, self._store, self._notifier, self._manifest = clock, store, notifier, manifest
        self._sent: dict[tuple[str, str, str, str], int] = {}  # key -> when sent (ms)

    async def after(self, task: TaskSpec, runs: Sequence[RunRecord]) -> list[OperationsReport]:
        """Notify about ``runs`` (one fire's attempts of one target); the reports."""
        if not task.notify or not runs:
            return []
        reports = []
        for event, run in _events(runs):
            if event in task.notify_on:
                for channel in task.notify:
                    report = await self._one(task, run, event, channel)
                    if report is not None:
                        reports.append(report)
        return reports

    async def _one(
        self, task: TaskSpec, run: RunRecord, event: NotifyOn, channel: str
    ) -> OperationsReport | None:
        manifest = self._manifest()
        key = (task.task_id, run.target, str(event), channel)
        now_ms = int(self._clock.now().timestamp() * 1000)
        window_ms = int(manifest.notifications.dedupe_window_s * 1000)
        last = await self._last_sent(key, now_ms - window_ms) if window_ms else None
        if last is not None and now_ms - last < window_ms:
            LOGGER.info("notification held back (sent %.0f s ago): %s", (now_ms - last) / 1000,
                        key, extra={"task_id": task.task_id, "trace_id": run.trace_id})  # fmt: skip
            return None
        title = f"cronwarden: {task.task_id} {run.target} {event}"
        body = (f"{task.task_id} → {run.target}, attempt {run.attempt}: {run.status}"
                f"{' (' + run.error + ')' if run.error else ''}. Run {run.run_id}, "
                f"trace {run.trace_id}.")  # fmt: skip
        error = await deliver(self._notifier, manifest.notifications.channels, channel, title,
                              body, failure=event is not NotifyOn.SUCCESS)  # fmt: skip
        delivered = not error
        code = (ReasonCode.CRON_RUNNER_NOTIFICATION_SENT if delivered
                else ReasonCode.CRON_RUNNER_NOTIFICATION_FAILED)  # fmt: skip
        details = {"channel": channel, "event": str(event), "run_id": run.run_id,
                   "delivered": delivered, "message": body}  # fmt: skip
        if error:
            details["error"] = error
        report = OperationsReport(
            event_type=EventType.NOTIFICATION, task_id=task.task_id,
            fired_at_ms=run.scheduled_at_ms, targets=(run.target,), trace_id=run.trace_id,
            reason_code=code, details=details,
        )  # fmt: skip
        if delivered:
            self._sent[key] = now_ms
        wire = report.to_dict() | {"report_id": _report_id(), "sent_at_ms": now_ms}
        await self._store.add_report(wire, now_ms)
        return report

    async def _last_sent(self, key: tuple[str, str, str, str], since_ms: int) -> int | None:
        """When the notification ``key`` was last sent since ``since_ms``: this worker's
        memory, else the recorded notifications (another process, or before a restart)."""
        if key in self._sent and self._sent[key] >= since_ms:
            return self._sent[key]
        task_id, target, event, channel = key
        try:
            recorded = await self._store.reports(
                task_id, since_ms=since_ms, limit=1_000, event_type=EventType.NOTIFICATION
            )
        except Exception:  # the store is down: better a repeat than a lost alert
            LOGGER.warning("cannot read past notifications; sending", exc_info=True)
            return None
        wanted = (True, channel, event, [target])
        for body in recorded:  # newest first
            seen = (body.get("delivered"), body.get("channel"), body.get("event"),
                    body.get("targets"))  # fmt: skip
            if seen == wanted:
                return int(body.get("sent_at_ms", since_ms))
        return None


async def deliver(
    notifier: Notifier, channels: Mapping[str, str], channel: str, title: str, body: str,
    *, failure: bool,
) -> str:  # fmt: skip
    """Send to ``channel`` (a name of ``channels``; ``memory`` only records); ``""`` when
    delivered, else why not. Never raises: a channel's failure is recorded, never fatal."""
    if channel == MEMORY:
        return ""
    url = channels.get(channel)
    try:
        if url is None:
            raise CronwardenError(f"channel {channel!r} is not defined",
                                  code="CRONWARDEN_UNKNOWN_CHANNEL")  # fmt: skip
        await notifier.send(url, title, body, failure=failure)
    except Exception as err:  # any channel failure
        return f"{getattr(err, 'code', type(err).__name__)}: {err}"
    return ""


def _events(runs: Sequence[RunRecord]) -> list[tuple[NotifyOn, RunRecord]]:
    """The worker stops at a success, a failure no attempt can help, or the last allowed
    attempt: a failed last record is the end of the retries."""
    events = []
    for run in runs:
        if run.status == "succeeded":
            events.append((NotifyOn.SUCCESS, run))
        elif run.status != "skipped":
            final = run is runs[-1]
            events.append((NotifyOn.RETRY_EXHAUSTED if final else NotifyOn.FAILURE, run))
    return events


def _report_id() -> str:
    return f"ops_notification_{secrets.token_hex(6)}"
