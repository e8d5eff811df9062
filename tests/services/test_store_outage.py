"""A store that cannot be reached for a while: commits are tried again with backoff
inside the fire's grace, reports wait in a bounded buffer and are written, in order,
when the store answers; what the buffer gives up is logged and counted, never lost
silently. In-memory adapters on the fake clock; the real PostgreSQL outage is in
tests/distributed/test_postgres_faults.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cronwarden.adapters.memory import MemoryStore
from cronwarden.core.report import EventType
from cronwarden.errors import BackendUnavailable
from cronwarden.manifest.model import TaskSpec
from cronwarden.ports import DispatchRow, Outcome
from cronwarden.reasons import ReasonCode
from cronwarden.services.dispatch import Dispatcher, Fire
from cronwarden.services.report_buffer import ReportBuffer
from cronwarden.testing import FakeClock, memory_dispatcher

NINE = datetime(2026, 5, 8, 9, tzinfo=UTC)
NINE_MS = int(NINE.timestamp() * 1000)


class OutageStore(MemoryStore):
    """The in-memory store, unreachable while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.commit_attempts = 0

    def _check(self) -> None:
        if self.down:
            raise BackendUnavailable("store: connection refused")

    async def commit_dispatches(self, rows: Sequence[DispatchRow], now_ms: int) -> list[bool]:
        self.commit_attempts += 1
        self._check()
        return await super().commit_dispatches(rows, now_ms)

    async def settle(self, owner: str, outcomes: Sequence[tuple[str, int, Outcome]],
                     reports: Sequence[Mapping[str, Any]], now_ms: int) -> None:  # fmt: skip
        self._check()
        await asyncio.sleep(0)  # as a call to a database server: other tasks run meanwhile
        await super().settle(owner, outcomes, reports, now_ms)


def _task(grace_s: int = 30) -> TaskSpec:
    return TaskSpec.model_validate({"task_id": "sweep", "cron": "0 9 * * *",
                                    "targets": ["gov.sweeper"],
                                    "misfire_grace_s": grace_s})  # fmt: skip


async def _advance_until(clock: FakeClock, done: asyncio.Future[Any], step_s: float) -> None:
    while not done.done():
        await asyncio.sleep(0)
        clock.advance(step_s)


def test_a_store_back_inside_the_grace_delays_the_fire_instead_of_failing_it() -> None:
    clock, store = FakeClock(NINE), OutageStore()
    dispatcher = memory_dispatcher(clock, store=store)
    store.down = True

    async def scenario() -> Any:
        fire = asyncio.ensure_future(dispatcher.fire_batch([Fire(_task(), NINE_MS, "tr1")], ()))
        while clock.now().timestamp() * 1000 < NINE_MS + 3_000:  # a 3 s restart
            await asyncio.sleep(0)
            clock.advance(0.05)
        store.down = False
        await _advance_until(clock, fire, 0.05)
        return fire.result()

    (report,) = asyncio.run(scenario())
    assert report.event_type is EventType.DISPATCHED
    assert store.commit_attempts >= 4  # backoff: 0.1, 0.2, 0.4, 0.8, 1.6 … s
    stored = asyncio.run(store.reports())
    assert [r["trace_id"] for r in stored] == ["tr1"]


def test_a_store_still_down_when_the_grace_ends_fails_the_fire_and_keeps_its_report() -> None:
    clock, store = FakeClock(NINE), OutageStore()
    dispatcher = memory_dispatcher(clock, store=store)
    store.down = True

    async def scenario() -> Any:
        fire = asyncio.ensure_future(dispatcher.fire_batch([Fire(_task(2), NINE_MS, "tr1")], ()))
        await _advance_until(clock, fire, 0.05)
        return fire.result()

    (report,) = asyncio.run(scenario())
    assert (report.event_type, report.reason_code) == (
        EventType.FAILED, ReasonCode.CRON_RUNNER_BACKEND_FAILED)  # fmt: skip
    assert report.details["buffered"] is True and report.details["recorded"] is False
    assert clock.now().timestamp() * 1000 - NINE_MS <= 2_000  # gave up inside the grace
    assert dispatcher.unrecorded.depth == 1
    store.down = False
    assert asyncio.run(dispatcher.flush())
    (stored,) = asyncio.run(store.reports())
    assert stored["trace_id"] == "tr1" and stored["event_type"] == "CRON_TASK_FAILED"
    assert "buffered" not in stored.get("details", {})  # stored as it was made
    assert dispatcher.unrecorded.depth == 0


def test_buffered_reports_are_written_first_and_in_order_when_the_store_returns() -> None:
    clock, store = FakeClock(NINE), OutageStore()
    dispatcher = replace_retry(memory_dispatcher(clock, store=store))
    store.down = True
    for n in range(3):
        asyncio.run(dispatcher.fire_batch([Fire(_task(), NINE_MS + n * 1000, f"tr{n}")], ()))
    assert dispatcher.unrecorded.depth == 3
    store.down = False
    asyncio.run(dispatcher.fire_batch([Fire(_task(), NINE_MS + 3000, "tr3")], ()))
    stored = asyncio.run(store.reports(limit=10))
    assert [r["trace_id"] for r in reversed(stored)] == ["tr0", "tr1", "tr2", "tr3"]


def test_a_full_buffer_gives_up_the_oldest_loudly(caplog: pytest.LogCaptureFixture) -> None:
    buffer = ReportBuffer(capacity=3)
    with caplog.at_level(logging.ERROR, logger="cronwarden.store"):
        for n in range(5):
            buffer.add([], [{"report_id": f"r{n}", "event_type": "CRON_TASK_DISPATCHED"}])
    assert (buffer.depth, buffer.dropped) == (3, 2)
    dropped = [record.getMessage() for record in caplog.records]
    assert len(dropped) == 2 and "r0" in dropped[0] and "r1" in dropped[1]


def replace_retry(dispatcher: Dispatcher) -> Dispatcher:
    """One commit attempt: the fire fails at once while the store is down."""
    return replace(dispatcher, commit_retry_max_s=0)


@settings(max_examples=60)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 3)), min_size=1, max_size=25),
       st.integers(1, 12))  # fmt: skip
def test_every_report_is_stored_once_or_counted_as_dropped(
    steps: list[tuple[bool, int]], capacity: int
) -> None:
    """Whatever the store's ups and downs: stored + dropped = made, no report stored
    twice, and those stored are in the order they were made."""
    clock, store = FakeClock(NINE), OutageStore()
    dispatcher = replace_retry(memory_dispatcher(clock, store=store))
    dispatcher.unrecorded.capacity = capacity
    made: list[str] = []

    async def scenario() -> None:
        at = NINE_MS
        for down, fires in steps:
            store.down = down
            batch = []
            for _ in range(fires):
                at += 1000
                batch.append(Fire(_task(), at, f"tr{at}"))
                made.append(f"tr{at}")
            await dispatcher.fire_batch(batch, ())
        store.down = False
        await dispatcher.flush()

    logging.disable(logging.ERROR)
    try:
        asyncio.run(scenario())
    finally:
        logging.disable(logging.NOTSET)
    stored = [r["trace_id"] for r in reversed(asyncio.run(store.reports(limit=10_000)))]
    assert len(stored) == len(set(stored))
    assert len(stored) + dispatcher.unrecorded.dropped == len(made)
    assert stored == [trace for trace in made if trace in set(stored)]
    assert dispatcher.unrecorded.depth == 0


def test_two_flushes_at_once_write_each_waiting_report_once() -> None:
    """The tick and the outbox round both flush when the store comes back."""
    clock, store = FakeClock(NINE), OutageStore()
    dispatcher = replace_retry(memory_dispatcher(clock, store=store))
    store.down = True
    for n in range(4):
        asyncio.run(dispatcher.fire_batch([Fire(_task(), NINE_MS + n * 1000, f"tr{n}")], ()))
    store.down = False

    async def both() -> list[bool]:
        return list(await asyncio.gather(dispatcher.flush(), dispatcher.flush()))

    assert asyncio.run(both()) == [True, True]
    stored = [r["trace_id"] for r in reversed(asyncio.run(store.reports(limit=10)))]
    assert stored == ["tr0", "tr1", "tr2", "tr3"]
    assert dispatcher.unrecorded.depth == 0
