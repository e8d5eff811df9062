"""CronRunner on a fake clock: every instant ends in exactly one recorded outcome."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cronwarden.adapters.memory import LocalBus, MemoryStore
from cronwarden.core.report import EventType, OperationsReport
from cronwarden.cron import parse
from cronwarden.errors import BackendUnavailable
from cronwarden.manifest import validate_document
from cronwarden.ports import DispatchRow
from cronwarden.reasons import ReasonCode
from cronwarden.services.dispatch import REPORTS_TOPIC
from cronwarden.services.scheduler import CronRunner
from cronwarden.testing import FakeClock, memory_dispatcher


def _runner(tasks: list[dict[str, Any]], clock: FakeClock, **settings: Any) -> CronRunner:
    manifest = validate_document({**settings, "tasks": tasks}).manifest
    dispatcher = memory_dispatcher(clock)
    runner = CronRunner(manifest, dispatcher)
    runner.start_at(int(clock.now().timestamp() * 1000))
    return runner


def _every_second(task_id: str = "ping", **fields: Any) -> dict[str, Any]:
    return {"task_id": task_id, "cron": "* * * * * *", "targets": ["t"], **fields}


def _ticks(runner: CronRunner, clock: FakeClock, steps: list[tuple[str, float]]) -> list[Any]:
    async def scenario() -> list[OperationsReport]:
        reports: list[OperationsReport] = []
        for kind, seconds in steps:
            getattr(clock, kind)(seconds)
            reports.extend(await runner.tick())
        return reports

    return asyncio.run(scenario())


def test_it_fires_each_instant_once_as_time_passes() -> None:
    clock = FakeClock()
    runner = _runner([_every_second()], clock)
    start = int(clock.now().timestamp() * 1000)
    reports = _ticks(runner, clock, [("advance", 0.5)] * 20)
    assert [r.event_type for r in reports] == [EventType.DISPATCHED] * 10
    assert [r.fired_at_ms for r in reports] == [start + 1000 * n for n in range(1, 11)]


def test_a_forward_jump_records_instants_past_their_grace_as_missed() -> None:
    clock = FakeClock()
    runner = _runner([_every_second(misfire_grace_s=30)], clock)
    reports = _ticks(runner, clock, [("jump", 100)])
    events = Counter(r.event_type for r in reports)
    assert events == {EventType.MISSED: 69, EventType.DISPATCHED: 31}
    missed = [r for r in reports if r.event_type is EventType.MISSED]
    assert all(r.reason_code is ReasonCode.CRON_RUNNER_MISSED_FIRE for r in missed)


def test_catch_up_once_fires_the_latest_missed_instant() -> None:
    clock = FakeClock()
    runner = _runner([{"task_id": "hourly", "cron": "0 * * * *", "targets": ["t"],
                       "catch_up": "once"}], clock)  # fmt: skip
    reports = _ticks(runner, clock, [("jump", 3 * 3600 + 600)])  # suspended for 3h10m
    assert [(r.event_type, r.fired_at_ms % 86_400_000 // 3_600_000) for r in reports] == [
        (EventType.MISSED, 1),
        (EventType.MISSED, 2),
        (EventType.DISPATCHED, 3),
    ]
    assert reports[-1].details == {"catch_up": True}


def test_a_backward_jump_never_fires_an_instant_twice() -> None:
    clock = FakeClock()
    runner = _runner([_every_second()], clock)
    reports = _ticks(runner, clock, [("advance", 5), ("jump", -4), ("advance", 6)])
    fired = [r.fired_at_ms for r in reports]
    assert len(fired) == len(set(fired)) == 7


def test_simultaneous_fires_beyond_the_bound_wait_their_turn_and_all_run() -> None:
    clock = FakeClock()
    tasks = [{"task_id": f"t{n}", "cron": "* * * * *", "targets": ["x"]} for n in range(30)]
    runner = _runner(tasks, clock, max_concurrent_tasks=5)
    reports = _ticks(runner, clock, [("advance", 60)])
    assert [r.event_type for r in reports] == [EventType.DISPATCHED] * 30


def test_disabled_tasks_are_not_scheduled() -> None:
    clock = FakeClock()
    runner = _runner([_every_second(enabled=False)], clock)
    assert runner.next_due_ms() is None
    assert _ticks(runner, clock, [("advance", 5)]) == []


def test_the_run_loop_stops_when_asked() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        runner = _runner([_every_second()], clock)
        stop = asyncio.Event()
        loop = asyncio.create_task(runner.run(stop))
        for _ in range(3):
            await asyncio.sleep(0)
            clock.advance(1)
            await asyncio.sleep(0)
        stop.set()
        await asyncio.wait_for(loop, timeout=5)

    asyncio.run(scenario())


_STEPS = st.lists(
    st.tuples(st.sampled_from(["advance", "jump"]), st.floats(-120, 400).map(round)),
    min_size=1,
    max_size=25,
)
_EXPRESSIONS = st.sampled_from(["* * * * * *", "*/7 * * * * *", "* * * * *", "*/2 * * * *"])


@settings(max_examples=60, deadline=None)
@given(steps=_STEPS, expr=_EXPRESSIONS, grace=st.sampled_from([1, 30, 300]))
def test_every_instant_ends_in_exactly_one_outcome(
    steps: list[tuple[str, float]], expr: str, grace: int
) -> None:
    clock = FakeClock()
    start_s = clock.now().timestamp()
    runner = _runner([{"task_id": "t", "cron": expr, "targets": ["x"],
                       "misfire_grace_s": grace}], clock)  # fmt: skip
    steps = [(kind, abs(s) if kind == "advance" else s) for kind, s in steps]
    reached = start_s
    reports: list[OperationsReport] = []

    async def scenario() -> None:
        nonlocal reached
        for kind, seconds in steps:
            getattr(clock, kind)(seconds)
            reached = max(reached, clock.now().timestamp())
            reports.extend(await runner.tick())

    asyncio.run(scenario())
    schedule = parse(expr)

    def instants(first_s: float, last_s: float) -> list[int]:
        found, at = [], schedule.next_instant(first_s - 1)
        while at is not None and at <= last_s:
            found.append(at * 1000)
            at = schedule.next_instant(at)
        return found

    outcomes: Counter[int] = Counter()
    for report in reports:
        if "missed_count" in report.details:  # one report standing for a run of misses
            run = instants(report.details["missed_from_ms"] / 1000, report.fired_at_ms / 1000)
            assert len(run) == report.details["missed_count"]
            outcomes.update(run)
        else:
            outcomes[report.fired_at_ms] += 1
    assert all(count == 1 for count in outcomes.values()), "an instant had two outcomes"
    assert sorted(outcomes) == instants(start_s + 1, reached)  # nothing silent or invented


def test_a_reload_keeps_unchanged_tasks_in_step_and_rearms_the_rest() -> None:
    clock = FakeClock()
    runner = _runner([_every_second("kept"), _every_second("changed"), _every_second("gone")],
                     clock)  # fmt: skip
    first = _ticks(runner, clock, [("advance", 2)])
    new = validate_document({"tasks": [
        _every_second("kept"),
        {"task_id": "changed", "cron": "*/2 * * * * *", "targets": ["t"]},
        _every_second("added"),
    ]}).manifest  # fmt: skip
    diff = runner.replace(new, int(clock.now().timestamp() * 1000))
    assert diff == {"added": ["added"], "removed": ["gone"], "changed": ["changed"]}
    later = _ticks(runner, clock, [("advance", 2)])
    kept = [r.fired_at_ms for r in first + later if r.task_id == "kept"]
    assert kept == sorted(set(kept)) and len(kept) == 4  # no instant skipped or repeated
    assert {r.task_id for r in later} == {"kept", "changed", "added"}
    assert all(r.fired_at_ms % 2000 == 0 for r in later if r.task_id == "changed")


def test_a_store_that_fails_mid_fire_is_reported_and_the_loop_goes_on() -> None:
    clock = FakeClock()

    class BrokenStore(MemoryStore):
        async def commit_dispatches(self, rows: Any, now_ms: int) -> list[bool]:
            raise BackendUnavailable("store: disk full")

        async def settle(self, owner: str, outcomes: Any, reports: Any, now_ms: int) -> None:
            raise BackendUnavailable("store: disk full")

    manifest = validate_document({"tasks": [_every_second()]}).manifest
    dispatcher = replace(memory_dispatcher(clock, store=BrokenStore()), commit_retry_max_s=0)
    runner = CronRunner(manifest, dispatcher)
    runner.start_at(int(clock.now().timestamp() * 1000))
    reports = _ticks(runner, clock, [("advance", 1), ("advance", 1)])
    assert [(r.event_type, r.details["recorded"], r.details["buffered"]) for r in reports] == [
        (EventType.FAILED, False, True),
        (EventType.FAILED, False, True),
    ]
    assert dispatcher.unrecorded.depth == 2
    assert "BACKEND_UNAVAILABLE: store: disk full" in reports[0].details["error"]
    assert reports[0].reason_code is ReasonCode.CRON_RUNNER_BACKEND_FAILED


def test_the_run_loop_settles_a_fire_an_earlier_instance_left_open() -> None:
    async def scenario() -> list[OperationsReport]:
        clock = FakeClock()
        store = MemoryStore()
        now_ms = int(clock.now().timestamp() * 1000)
        orphan = DispatchRow("ping", now_ms - 15_000, "tr_old", "gone:1", ("t",))
        await store.commit_dispatches([orphan], now_ms - 15_000)
        seen: list[OperationsReport] = []
        manifest = validate_document({"tasks": [_every_second()]}).manifest
        runner = CronRunner(manifest, memory_dispatcher(clock, store=store), on_report=seen.append)
        stop = asyncio.Event()
        loop = asyncio.create_task(runner.run(stop))
        for _ in range(3):
            await asyncio.sleep(0)
        stop.set()
        clock.advance(1)
        await asyncio.wait_for(loop, timeout=5)
        return [r for r in seen if r.trace_id == "tr_old"]

    (recovered,) = asyncio.run(scenario())
    assert recovered.event_type is EventType.DISPATCHED
    assert recovered.details == {"recovered_from": "gone:1"}


def _restarted(task: dict[str, Any], clock: FakeClock, stopped_s: int) -> list[OperationsReport]:
    """The first tick of a runner whose task last had an instant recorded ``stopped_s`` ago."""
    manifest = validate_document({"tasks": [task]}).manifest
    runner = CronRunner(manifest, memory_dispatcher(clock))
    now_ms = int(clock.now().timestamp() * 1000)
    runner.start_at(now_ms, {task["task_id"]: now_ms - stopped_s * 1000})
    return asyncio.run(runner.tick())


def test_a_restart_records_what_passed_while_no_scheduler_ran() -> None:
    clock = FakeClock(datetime(2026, 3, 2, 9, 0, 10, tzinfo=UTC))  # 10 s after 09:00
    hourly = {"task_id": "hourly", "cron": "0 * * * *", "targets": ["t"]}
    reports = _restarted(hourly, clock, stopped_s=3 * 3600 + 10)  # last recorded: 06:00
    assert [(r.event_type, r.fired_at_ms // 1000 % 86_400 // 3600) for r in reports] == [
        (EventType.MISSED, 7), (EventType.MISSED, 8),
        (EventType.DISPATCHED, 9),  # 10 s late: inside its 30 s grace
    ]  # fmt: skip


def test_a_restart_catches_up_once_when_asked() -> None:
    clock = FakeClock(datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
    task = {"task_id": "hourly", "cron": "0 * * * *", "targets": ["t"], "catch_up": "once"}
    reports = _restarted(task, clock, stopped_s=3 * 3600 + 1800)
    assert [(r.event_type, r.details) for r in reports] == [
        (EventType.MISSED, {}), (EventType.MISSED, {}),
        (EventType.DISPATCHED, {"catch_up": True}),  # 09:00, the latest missed
    ]  # fmt: skip


def test_instants_older_than_the_restart_look_back_get_one_report() -> None:
    clock = FakeClock(datetime(2026, 3, 5, 12, 30, tzinfo=UTC))
    hourly = {"task_id": "hourly", "cron": "0 * * * *", "targets": ["t"]}
    reports = _restarted(hourly, clock, stopped_s=3 * 86_400)  # stopped three days ago
    lost, *rest = reports
    assert lost.details["scheduler_stopped"] and "not_counted" in lost.details
    assert (lost.details["missed_from_ms"], lost.fired_at_ms) == (
        int(datetime(2026, 3, 2, 13, tzinfo=UTC).timestamp() * 1000),
        int(datetime(2026, 3, 4, 12, tzinfo=UTC).timestamp() * 1000),
    )
    assert len(rest) == 24 and {r.event_type for r in rest} == {EventType.MISSED}
    assert rest[0].fired_at_ms == int(datetime(2026, 3, 4, 13, tzinfo=UTC).timestamp() * 1000)


def test_every_report_is_also_published_on_the_reports_topic() -> None:
    clock = FakeClock()
    bus = LocalBus()
    manifest = validate_document({"tasks": [_every_second()]}).manifest
    runner = CronRunner(manifest, memory_dispatcher(clock, bus=bus))
    runner.start_at(int(clock.now().timestamp() * 1000))
    reports = _ticks(runner, clock, [("advance", 1), ("advance", 1)])
    assert list(bus.messages[REPORTS_TOPIC]) == [r.to_dict() for r in reports]


def test_a_bus_refusing_reports_costs_a_warning_not_the_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class TriggersOnly(LocalBus):
        async def publish(self, topic: str, payload: Any) -> None:
            if topic == REPORTS_TOPIC:
                raise BackendUnavailable("bus: ops.reports is full")
            await super().publish(topic, payload)

    clock, store = FakeClock(), MemoryStore()
    manifest = validate_document({"tasks": [_every_second()]}).manifest
    runner = CronRunner(manifest, memory_dispatcher(clock, bus=TriggersOnly(), store=store))
    runner.start_at(int(clock.now().timestamp() * 1000))
    with caplog.at_level(logging.WARNING, logger="cronwarden.scheduler"):
        (report,) = _ticks(runner, clock, [("advance", 1)])
    assert report.event_type is EventType.DISPATCHED
    assert len(asyncio.run(store.reports())) == 1
    assert "1 reports not all published on ops.reports" in caplog.text


def test_reports_older_than_the_retention_are_pruned() -> None:
    clock, store = FakeClock(), MemoryStore()
    now_ms = int(clock.now().timestamp() * 1000)
    day_ms = 86_400_000
    for age_days in (40, 29, 1):
        asyncio.run(store.add_report({"report_id": f"r{age_days}", "event_type": "E"},
                                     now_ms - age_days * day_ms))  # fmt: skip
    manifest = validate_document({"retention_days": 30, "tasks": [_every_second()]}).manifest
    runner = CronRunner(manifest, memory_dispatcher(clock, store=store))
    assert asyncio.run(runner.prune()) == 1
    assert [r["report_id"] for r in asyncio.run(store.reports())] == ["r1", "r29"]


def test_a_round_that_raises_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    seen: list[OperationsReport] = []
    manifest = validate_document({"tasks": [_every_second()]}).manifest
    runner = CronRunner(manifest, memory_dispatcher(clock), on_report=seen.append)
    original, failures = runner.tick, [1]

    async def flaky() -> list[OperationsReport]:
        if failures:
            failures.pop()
            raise RuntimeError("a bug in one round")
        return await original()

    runner.tick = flaky  # type: ignore[method-assign]

    async def scenario() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(runner.run(stop))
        for _ in range(4):
            for _ in range(5):
                await asyncio.sleep(0)
            clock.advance(1)
        for _ in range(5):
            await asyncio.sleep(0)
        stop.set()
        clock.advance(1)
        await asyncio.wait_for(loop, timeout=5)

    with caplog.at_level(logging.ERROR, logger="cronwarden.scheduler"):
        asyncio.run(scenario())
    assert "tick: a bug in one round" in caplog.text
    assert any(r.event_type is EventType.DISPATCHED for r in seen)


def test_a_jump_past_the_instants_limit_reports_the_rest_in_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("cronwarden.services.scheduler.MAX_INSTANTS_PER_TICK", 10)
    clock = FakeClock()
    runner = _runner([_every_second()], clock)
    start_ms = int(clock.now().timestamp() * 1000)
    reports = _ticks(runner, clock, [("jump", 60)])
    one_by_one = [r for r in reports if "missed_from_ms" not in r.details]
    (rest,) = [r for r in reports if "missed_from_ms" in r.details]
    assert [r.fired_at_ms for r in one_by_one] == [start_ms + 1000 * n for n in range(1, 11)]
    assert (rest.details["missed_from_ms"], rest.fired_at_ms) == (start_ms + 11_000,
                                                                   start_ms + 60_000)  # fmt: skip
    assert {r.event_type for r in reports} == {EventType.MISSED}
