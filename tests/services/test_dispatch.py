"""One fire through the pipeline: spec 000's acceptance tests and failure injections
that need no Redis, on in-memory adapters and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from cronwarden.adapters.memory import (
    LocalBus,
    MemoryLock,
    MemoryStore,
)
from cronwarden.core.report import EventType, OperationsReport
from cronwarden.manifest.model import QuietHours, TaskSpec
from cronwarden.reasons import ReasonCode
from cronwarden.services.dispatch import TRIGGER_TOPIC, Dispatcher
from cronwarden.testing import FakeClock, memory_dispatcher

NINE_UTC_MS = 1_746_781_200_000  # 2025-05-09T09:00:00Z, a Friday
NINE = datetime.fromtimestamp(NINE_UTC_MS / 1000, UTC)  # the fires happen on time


def _task(**fields: Any) -> TaskSpec:
    base = {"task_id": "daily_pnl_reconcile", "cron_expression": "0 9 * * *",
            "enabled_strategies": ["gov.pnl_reporter"], "task_class": "governance"}  # fmt: skip
    return TaskSpec.model_validate({**base, **fields})


def _dispatcher(
    clock: FakeClock, *, lock: MemoryLock | None = None, owner: str = "a"
) -> Dispatcher:
    return memory_dispatcher(clock, lock=lock, owner=owner)


def _fire(
    dispatcher: Dispatcher, task: TaskSpec, windows: Sequence[QuietHours] = ()
) -> OperationsReport:
    return asyncio.run(dispatcher.fire(task, NINE_UTC_MS, "tr_abc123def456", windows))


def test_it_dispatches_to_every_target_and_reports_in_the_contract_shape() -> None:
    dispatcher = _dispatcher(FakeClock(NINE))
    report = _fire(dispatcher, _task(enabled_strategies=["gov.pnl_reporter", "gov.audit"]))
    assert report.to_dict() == {
        "report_id": f"ops_cronrunner_{NINE_UTC_MS}_daily_pnl_reconcile_dispatched",
        "bot_id": "gov.cron_runner",
        "event_type": "CRON_TASK_DISPATCHED",
        "task_id": "daily_pnl_reconcile",
        "fired_at_ms": NINE_UTC_MS,
        "targets": ["gov.pnl_reporter", "gov.audit"],
        "suppressed_count": 0,
        "trace_id": "tr_abc123def456",
        "report_kind": "OperationsReport",
        "reason_code": "CRON_RUNNER_TASK_DISPATCHED",
        "lock_mode": "local",
    }
    assert isinstance(dispatcher.bus, LocalBus)
    assert [m["target"] for m in dispatcher.bus.messages[TRIGGER_TOPIC]] == [
        "gov.pnl_reporter",
        "gov.audit",
    ]
    assert dispatcher.bus.messages[TRIGGER_TOPIC][0] == {
        "task_id": "daily_pnl_reconcile",
        "target": "gov.pnl_reporter",
        "scheduled_at": NINE_UTC_MS,
        "trace_id": "tr_abc123def456",
    }


def test_a_second_runner_sharing_the_lock_reports_a_duplicate_fire() -> None:
    clock = FakeClock(NINE)
    lock = MemoryLock(clock)
    first = _fire(_dispatcher(clock, lock=lock, owner="a"), _task())
    second = _fire(_dispatcher(clock, lock=lock, owner="b"), _task())
    assert first.event_type is EventType.DISPATCHED
    assert (second.event_type, second.reason_code) == (
        EventType.SUPPRESSED,
        ReasonCode.CRON_RUNNER_DUPLICATE_FIRE,
    )


@pytest.mark.parametrize(
    ("task_class", "event"),
    [("trading", EventType.SUPPRESSED), ("governance", EventType.DISPATCHED),
     ("health", EventType.DISPATCHED)],
    ids=["trading-suppressed", "governance-fires", "health-fires"],
)  # fmt: skip
def test_the_kill_switch_suppresses_trading_tasks_only(task_class: str, event: EventType) -> None:
    clock = FakeClock(NINE)
    dispatcher = _dispatcher(clock)
    asyncio.run(dispatcher.kill_switch.set(True, "ops", "drill", clock.now()))
    report = _fire(dispatcher, _task(task_class=task_class))
    assert report.event_type is event
    if event is EventType.SUPPRESSED:
        assert report.reason_code is ReasonCode.KILL_SWITCH_ACTIVE
        assert report.suppressed_count == 1


def test_quiet_hours_suppress_only_tasks_that_opted_in() -> None:
    window = QuietHours.model_validate({"start": "08:30", "end": "09:30", "timezone": "UTC"})
    opted_in = _fire(_dispatcher(FakeClock(NINE)), _task(disable_during_quiet_hours=True), [window])
    assert opted_in.reason_code is ReasonCode.CRON_RUNNER_QUIET_HOURS_SKIP
    regular = _fire(_dispatcher(FakeClock(NINE)), _task(), [window])
    assert regular.event_type is EventType.DISPATCHED


def test_a_task_without_targets_is_suppressed_with_no_targets() -> None:
    report = _fire(_dispatcher(FakeClock(NINE)), _task(enabled_strategies=[]))
    assert (report.event_type, report.reason_code) == (
        EventType.SUPPRESSED,
        ReasonCode.CRON_RUNNER_NO_TARGETS,
    )


def test_a_bus_that_stays_down_fails_the_fire_after_bounded_retries() -> None:
    dispatcher = _dispatcher(FakeClock(NINE))
    assert isinstance(dispatcher.bus, LocalBus)
    dispatcher.bus.down = True
    report = _fire(dispatcher, _task())
    assert (report.event_type, report.reason_code) == (
        EventType.FAILED,
        ReasonCode.CRON_RUNNER_BUS_PUBLISH_FAILED,
    )
    assert dispatcher.bus.messages == {}


def test_a_bus_that_recovers_within_the_retries_dispatches() -> None:
    clock = FakeClock(NINE)

    class FlakyBus(LocalBus):
        failures = 2  # refuses twice, then accepts

        async def publish(self, topic: str, payload: Any) -> None:
            self.down = self.failures > 0
            self.failures -= 1
            await super().publish(topic, payload)

    dispatcher = memory_dispatcher(clock, bus=FlakyBus())
    report = _fire(dispatcher, _task())
    assert report.event_type is EventType.DISPATCHED
    assert isinstance(dispatcher.bus, LocalBus)
    assert len(dispatcher.bus.messages[TRIGGER_TOPIC]) == 1


def test_the_shared_dispatch_row_stops_a_duplicate_when_claims_do_not_span_instances() -> None:
    # two runners whose locks are separate (Redis down: in-process claims) share one store
    clock = FakeClock(NINE)
    store = MemoryStore()
    reports = []
    for owner in ("a", "b"):
        dispatcher = memory_dispatcher(clock, store=store, owner=owner)
        reports.append(_fire(dispatcher, _task()))
    assert [r.reason_code for r in reports] == [
        ReasonCode.CRON_RUNNER_TASK_DISPATCHED,
        ReasonCode.CRON_RUNNER_DUPLICATE_FIRE,
    ]
    stored = asyncio.run(store.reports())
    assert [r["reason_code"] for r in stored] == [
        "CRON_RUNNER_DUPLICATE_FIRE",
        "CRON_RUNNER_TASK_DISPATCHED",
    ]


def test_a_failed_publish_settles_the_row_as_failed_and_it_is_never_republished() -> None:
    clock = FakeClock(NINE)
    dispatcher = _dispatcher(clock)
    assert isinstance(dispatcher.bus, LocalBus)
    dispatcher.bus.down = True
    report = _fire(dispatcher, _task())
    assert report.reason_code is ReasonCode.CRON_RUNNER_BUS_PUBLISH_FAILED
    dispatcher.bus.down = False
    clock.advance(20)
    assert asyncio.run(dispatcher.recover({}, orphaned_after_ms=0)) == []
    assert TRIGGER_TOPIC not in dispatcher.bus.messages


def test_a_paused_task_is_suppressed_and_recorded() -> None:
    clock = FakeClock(NINE)
    dispatcher = _dispatcher(clock)
    asyncio.run(dispatcher.pauses.set_paused("daily_pnl_reconcile", True, "ops", "", clock.now()))
    report = _fire(dispatcher, _task())
    assert (report.event_type, report.reason_code) == (
        EventType.SUPPRESSED,
        ReasonCode.CRON_RUNNER_TASK_PAUSED,
    )


def test_a_fire_claimed_by_an_instance_that_died_before_committing_is_taken_over() -> None:
    clock, store = FakeClock(NINE), MemoryStore()
    lock = MemoryLock(clock)
    survivor = memory_dispatcher(clock, lock=lock, store=store, owner="b")
    key = f"cronwarden:fire:daily_pnl_reconcile:{NINE_UTC_MS}"

    async def scenario() -> list[OperationsReport]:
        assert await lock.claim(key, "a", 5_000)  # a claimed it, then died
        lost = await survivor.fire(_task(), NINE_UTC_MS, "tr_1", ())
        assert lost.reason_code == ReasonCode.CRON_RUNNER_DUPLICATE_FIRE
        grace = {"daily_pnl_reconcile": 30_000.0}
        assert await survivor.retake(grace, ()) == []  # a's claim still holds
        clock.advance(5.5)
        return await survivor.retake(grace, ())

    (taken,) = asyncio.run(scenario())
    assert (taken.event_type, taken.details["taken_over"]) == (EventType.DISPATCHED, True)
    assert taken.trace_id == "tr_1"
    assert len(survivor.bus.messages[TRIGGER_TOPIC]) == 1  # type: ignore[attr-defined]


def test_a_true_duplicate_and_a_fire_past_its_grace_are_not_taken_over() -> None:
    clock, store = FakeClock(NINE), MemoryStore()
    lock = MemoryLock(clock)
    winner = memory_dispatcher(clock, lock=lock, store=store, owner="a")
    loser = memory_dispatcher(clock, lock=lock, store=store, owner="b")

    async def scenario() -> tuple[list[OperationsReport], list[OperationsReport]]:
        await winner.fire(_task(), NINE_UTC_MS, "tr_1", ())  # claimed and committed
        await loser.fire(_task(), NINE_UTC_MS, "tr_1", ())
        await lock.claim(f"cronwarden:fire:late:{NINE_UTC_MS}", "a", 5_000)  # a died
        await loser.fire(_task(task_id="late"), NINE_UTC_MS, "tr_2", ())
        clock.advance(6)
        committed = await loser.retake({"daily_pnl_reconcile": 30_000.0}, ())
        return committed, await loser.retake({"late": 1_000.0}, ())  # its grace is over

    assert asyncio.run(scenario()) == ([], [])


def test_a_fire_the_winner_suppressed_is_not_taken_over_and_reported_again() -> None:
    clock, store = FakeClock(NINE), MemoryStore()
    lock = MemoryLock(clock)
    winner = memory_dispatcher(clock, lock=lock, store=store, owner="a")
    loser = memory_dispatcher(clock, lock=lock, store=store, owner="b")

    async def scenario() -> tuple[OperationsReport, list[OperationsReport]]:
        for dispatcher in (winner, loser):  # one shared switch, as every instance sees it
            await dispatcher.kill_switch.set(True, "ops", "exchange halt", clock.now())
        suppressed = await winner.fire(_task(task_class="trading"), NINE_UTC_MS, "tr_1", ())
        await loser.fire(_task(task_class="trading"), NINE_UTC_MS, "tr_1", ())
        clock.advance(6)  # the winner's claim lapsed; it committed nothing
        return suppressed, await loser.retake({"daily_pnl_reconcile": 30_000.0}, ())

    suppressed, retaken = asyncio.run(scenario())
    assert suppressed.reason_code == ReasonCode.KILL_SWITCH_ACTIVE
    assert retaken == []
    outcomes = [r["reason_code"] for r in asyncio.run(store.reports())]
    assert sorted(outcomes) == ["CRON_RUNNER_DUPLICATE_FIRE", "KILL_SWITCH_ACTIVE"]


def test_a_miss_seen_by_two_instances_is_counted_missed_once() -> None:
    """Two schedulers started together after an outage: each instant is recorded missed
    by the one that wins its claim and as a duplicate by the other."""
    clock, store = FakeClock(NINE), MemoryStore()
    lock = MemoryLock(clock)
    first = memory_dispatcher(clock, lock=lock, store=store, owner="a")
    second = memory_dispatcher(clock, lock=lock, store=store, owner="b")
    misses = [OperationsReport(event_type=EventType.MISSED, task_id="daily_pnl_reconcile",
                               fired_at_ms=NINE_UTC_MS + n * 1000, targets=("gov.pnl_reporter",),
                               trace_id=f"tr_{n}", reason_code=ReasonCode.CRON_RUNNER_MISSED_FIRE)
              for n in range(3)]  # fmt: skip

    async def scenario() -> tuple[list[OperationsReport], list[OperationsReport]]:
        return await first.record_misses(misses), await second.record_misses(misses)

    won, lost = asyncio.run(scenario())
    assert [r.event_type for r in won] == [EventType.MISSED] * 3
    assert [(r.reason_code, r.details["missed"]) for r in lost] == [
        (ReasonCode.CRON_RUNNER_DUPLICATE_FIRE, True)] * 3  # fmt: skip
    assert len(asyncio.run(store.reports())) == 6  # each instance's view, one outcome each
