"""In-process adapters: the embedded default, and the doubles every test uses."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from cronwarden.errors import BackendUnavailable
from cronwarden.ports import Clock, Delivery, DispatchRow, KillSwitchState, Outcome, RunRecord


class MemoryLock:
    """Claims in a dict, timed by a :class:`~cronwarden.ports.Clock`'s monotonic time.

    Every fire claims a key of its own, never asked for again once it lapses: lapsed
    claims are swept out whenever the dict has doubled since the last sweep, so a
    daemon's memory stays flat however long it runs (amortized O(1) per claim).
    """

    mode = "local"

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._claims: dict[str, tuple[str, float]] = {}  # key -> (owner, expires at)
        self._sweep_at = 1_024

    @property
    def held(self) -> int:
        """Claims held (lapsed ones not yet swept included). Not ``__len__``: an empty
        lock must stay truthy."""
        return len(self._claims)

    def _sweep(self) -> None:
        if len(self._claims) < self._sweep_at:
            return
        now = self._clock.monotonic()
        self._claims = {key: claim for key, claim in self._claims.items() if claim[1] > now}
        self._sweep_at = max(1_024, 2 * len(self._claims))

    def _holder(self, key: str) -> str | None:
        claim = self._claims.get(key)
        if claim is None or claim[1] <= self._clock.monotonic():
            self._claims.pop(key, None)
            return None
        return claim[0]

    async def claim(self, key: str, owner: str, ttl_ms: int) -> bool:
        if self._holder(key) is not None:
            return False
        self._claims[key] = (owner, self._clock.monotonic() + ttl_ms / 1000)
        self._sweep()
        return True

    async def claim_many(self, keys: Sequence[str], owner: str, ttl_ms: int) -> list[bool]:
        return [await self.claim(key, owner, ttl_ms) for key in keys]

    async def renew(self, key: str, owner: str, ttl_ms: int) -> bool:
        if self._holder(key) != owner:
            return False
        self._claims[key] = (owner, self._clock.monotonic() + ttl_ms / 1000)
        return True

    async def release(self, key: str, owner: str) -> None:
        if self._holder(key) == owner:
            del self._claims[key]


class LocalBus:
    """The in-process bus: the latest messages per topic, in order, bounded.

    ``down`` makes it refuse, as a broken bus would (failure injection).
    """

    def __init__(self, keep: int = 10_000) -> None:
        self.messages: dict[str, deque[dict[str, Any]]] = {}
        self.down = False
        self._keep = keep
        self._subscribers: dict[str, list[asyncio.Queue[dict[str, Any]]]] = {}
        self._groups: dict[tuple[str, str], asyncio.Queue[dict[str, Any]]] = {}

    async def publish(self, topic: str, payload: Mapping[str, Any]) -> None:
        if self.down:
            raise BackendUnavailable(f"bus: topic {topic!r} is not accepting messages")
        queues = self._subscribers.get(topic, ())
        if any(queue.full() for queue in queues):
            raise BackendUnavailable(f"bus: a subscriber of {topic!r} is {self._keep} behind")
        message = dict(payload)
        self.messages.setdefault(topic, deque(maxlen=self._keep)).append(message)
        for queue in queues:
            queue.put_nowait(dict(message))

    async def publish_many(self, topic: str, payloads: Sequence[Mapping[str, Any]]) -> None:
        for payload in payloads:
            await self.publish(topic, payload)

    def subscribe(self, topic: str) -> AsyncIterator[dict[str, Any]]:
        """Messages from this call on (the subscription exists before the first read)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=self._keep)
        self._subscribers.setdefault(topic, []).append(queue)
        return self._drain(topic, queue)

    async def _drain(
        self, topic: str, queue: asyncio.Queue[dict[str, Any]]
    ) -> AsyncIterator[dict[str, Any]]:
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers[topic].remove(queue)

    def consume(self, topic: str, group: str, consumer: str) -> AsyncGenerator[Delivery, None]:
        """The group's share of ``topic`` from its first consumer on. One process has no
        consumer that could stop without the group: only a delivery given up (nack) is
        delivered again."""
        key = (topic, group)
        if key not in self._groups:
            self._groups[key] = asyncio.Queue(maxsize=self._keep)
            self._subscribers.setdefault(topic, []).append(self._groups[key])
        return self._take(self._groups[key])

    @staticmethod
    async def _take(queue: asyncio.Queue[dict[str, Any]]) -> AsyncGenerator[Delivery, None]:
        while True:
            payload = await queue.get()

            async def again(payload: dict[str, Any] = payload) -> None:
                queue.put_nowait(payload)  # given up: delivered again, to this group

            yield Delivery(payload, nack=again)


class MemoryKillSwitch:
    """The kill-switch flag of one process."""

    def __init__(self) -> None:
        self._state = KillSwitchState(active=False)

    async def state(self) -> KillSwitchState:
        return self._state

    async def set(self, active: bool, actor: str, reason: str, at: datetime) -> KillSwitchState:
        self._state = KillSwitchState(active, actor, reason, at)
        return self._state


class MemoryStore:
    """Dispatch rows and reports in a dict and a list: the store of tests."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, int], DispatchRow] = {}
        self._committed: dict[tuple[str, int], int] = {}
        self._runs: dict[str, RunRecord] = {}  # in the order they began
        self._run_keys: set[tuple[str, int, str, int]] = set()
        self._reports: list[tuple[int, dict[str, Any]]] = []

    async def commit_dispatches(self, rows: Sequence[DispatchRow], now_ms: int) -> list[bool]:
        committed = []
        for row in rows:
            key = (row.task_id, row.scheduled_at_ms)
            committed.append(key not in self._rows)
            if committed[-1]:
                self._rows[key] = replace(row, outcome=None, touched_at_ms=now_ms)
                self._committed[key] = now_ms
        return committed

    async def settle(
        self,
        owner: str,
        outcomes: Sequence[tuple[str, int, Outcome]],
        reports: Sequence[Mapping[str, Any]],
        now_ms: int,
    ) -> None:
        theirs = set()
        for task_id, scheduled_at_ms, outcome in outcomes:
            row = self._rows.get((task_id, scheduled_at_ms))
            if row is not None and row.outcome is None and row.owner == owner:
                self._rows[task_id, scheduled_at_ms] = replace(row, outcome=outcome)
            elif row is not None and row.owner != owner:  # adopted: the adopter reports it
                theirs.add((task_id, scheduled_at_ms))
        self._reports.extend(
            (now_ms, dict(report)) for report in reports
            if (report.get("task_id"), report.get("fired_at_ms")) not in theirs
            or report.get("event_type") not in _OUTCOME_EVENTS
        )  # fmt: skip

    async def touch(self, owner: str, keys: Sequence[tuple[str, int]], now_ms: int) -> None:
        for key in keys:
            row = self._rows.get(key)
            if row is not None and row.outcome is None and row.owner == owner:
                self._rows[key] = replace(row, touched_at_ms=now_ms)

    async def open_rows(self, untouched_since_ms: int) -> list[DispatchRow]:
        rows = [
            row
            for row in self._rows.values()
            if row.outcome is None and row.touched_at_ms < untouched_since_ms
        ]
        return sorted(rows, key=lambda row: row.scheduled_at_ms)

    async def decided(self, keys: Sequence[tuple[str, int]]) -> set[tuple[str, int]]:
        wanted = set(keys)
        reported = {
            (report.get("task_id"), report.get("fired_at_ms")) for _, report in self._reports
            if report.get("event_type") in _OUTCOME_EVENTS
            and report.get("reason_code") != "CRON_RUNNER_DUPLICATE_FIRE"
        }  # fmt: skip
        return {key for key in wanted if key in self._rows or key in reported}

    async def adopt(self, row: DispatchRow, owner: str, now_ms: int) -> bool:
        key = (row.task_id, row.scheduled_at_ms)
        current = self._rows.get(key)
        if (current is None or current.outcome is not None or current.owner != row.owner
                or current.touched_at_ms != row.touched_at_ms):  # fmt: skip
            return False
        self._rows[key] = replace(current, owner=owner, touched_at_ms=now_ms)
        return True

    async def add_report(self, report: Mapping[str, Any], recorded_at_ms: int) -> None:
        self._reports.append((recorded_at_ms, dict(report)))

    async def begin_run(self, run: RunRecord) -> bool:
        key = (run.task_id, run.scheduled_at_ms, run.target, run.attempt)
        if key in self._run_keys:
            return False
        self._run_keys.add(key)
        self._runs[run.run_id] = run
        return True

    async def finish_run(self, run: RunRecord) -> None:
        self._runs[run.run_id] = run

    async def fire_runs(self, task_id: str, scheduled_at_ms: int, target: str) -> list[RunRecord]:
        found = [run for run in self._runs.values()
                 if (run.task_id, run.scheduled_at_ms, run.target)
                 == (task_id, scheduled_at_ms, target)]  # fmt: skip
        return sorted(found, key=lambda run: run.attempt)

    async def runs(
        self, task_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[RunRecord]:
        found = [run for run in reversed(self._runs.values())
                 if (task_id is None or run.task_id == task_id)
                 and (status is None or run.status == status)]  # fmt: skip
        return found[:limit]

    async def reports(
        self, task_id: str | None = None, since_ms: int | None = None, limit: int = 100,
        event_type: str | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        found = [
            report
            for recorded, report in reversed(self._reports)
            if (task_id is None or report.get("task_id") == task_id)
            and (since_ms is None or recorded >= since_ms)
            and (event_type is None or report.get("event_type") == event_type)
        ]
        return found[:limit]

    async def prune(self, recorded_before_ms: int) -> int:
        before = len(self._reports) + len(self._rows)
        self._reports = [(t, r) for t, r in self._reports if t >= recorded_before_ms]
        self._rows = {
            key: row
            for key, row in self._rows.items()
            if self._committed[key] >= recorded_before_ms or row.outcome is None
        }
        self._committed = {key: self._committed[key] for key in self._rows}
        return before - len(self._reports) - len(self._rows)


class MemoryPauses:
    """Paused tasks of one process."""

    def __init__(self) -> None:
        self._paused: set[str] = set()

    async def paused(self, task_id: str) -> bool:
        return task_id in self._paused

    async def paused_tasks(self) -> frozenset[str]:
        return frozenset(self._paused)

    async def set_paused(
        self, task_id: str, paused: bool, actor: str, reason: str, at: datetime
    ) -> None:
        if paused:
            self._paused.add(task_id)
        else:
            self._paused.discard(task_id)


#: The reports that are the outcome of a fire (as the SQL store's ``OUTCOME_EVENTS``).
_OUTCOME_EVENTS = frozenset({"CRON_TASK_DISPATCHED", "CRON_TASK_FAILED",
                             "CRON_TASK_SUPPRESSED", "CRON_TASK_MISSED"})  # fmt: skip
