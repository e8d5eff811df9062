"""Reports the store could not take, held in memory until it can.

While the database is unreachable (a restart, a failover, a network cut), the
outcomes of fires and the reports that explain them wait here, in order, and are
written at the next store call that succeeds: the next fire's, or the outbox round
every few seconds. The buffer is bounded: past ``capacity`` reports the oldest are
given up, each one logged at ERROR with its report id and counted
(``reports_dropped``), never silently. ``depth`` is exported as a gauge.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from cronwarden.errors import CronwardenError
from cronwarden.ports import Outcome, Store

LOGGER = logging.getLogger("cronwarden.store")
#: Enough for about three minutes of 50 fires a second.
DEFAULT_CAPACITY = 10_000

_Settled = Sequence[tuple[str, int, Outcome]]


class ReportBuffer:
    """Settlements and reports waiting for the store, oldest first."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._entries: deque[tuple[_Settled, list[Mapping[str, Any]]]] = deque()
        #: Reports waiting.
        self.depth = 0
        #: Reports given up because the buffer was full, since start.
        self.dropped = 0
        # One flush at a time: the tick and the outbox round both flush, and two
        # writing the same entry would store its reports twice.
        self._flushing = asyncio.Lock()

    def __bool__(self) -> bool:
        return bool(self._entries)

    def add(self, settled: _Settled, reports: Sequence[Mapping[str, Any]]) -> None:
        """Hold one store call's worth; the oldest are given up past ``capacity``."""
        self._entries.append((settled, list(reports)))
        self.depth += len(reports)
        while self.depth > self.capacity and len(self._entries) > 1:
            _, lost = self._entries.popleft()
            self.depth -= len(lost)
            self.dropped += len(lost)
            for report in lost:
                LOGGER.error(
                    "report %s (%s %s at %s) dropped: the store has been unreachable for "
                    "longer than %d buffered reports last", report.get("report_id"),
                    report.get("event_type"), report.get("task_id"), report.get("fired_at_ms"),
                    self.capacity, extra={"report_id": report.get("report_id")},
                )  # fmt: skip

    async def flush(self, store: Store, owner: str, now_ms: int) -> bool:
        """Write what waits, in order; whether the buffer is empty now."""
        async with self._flushing:
            while self._entries:
                entry = self._entries[0]
                try:
                    await store.settle(owner, entry[0], entry[1], now_ms)
                except CronwardenError:
                    return False
                if self._entries and self._entries[0] is entry:  # not dropped meanwhile
                    self._entries.popleft()
                    self.depth -= len(entry[1])
                if not self._entries:
                    LOGGER.warning("the store answers again: every buffered report is written")
            return True
