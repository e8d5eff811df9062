"""A fire is never lost between commit and publish: the outbox, claim renewal, the
in-flight queue's grace and the publish timeout, on in-memory adapters."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from cronwarden.adapters.memory import LocalBus, MemoryLock, MemoryStore
from cronwarden.adapters.timed import TimedBus
from cronwarden.core.pipeline import lock_key
from cronwarden.core.report import EventType
from cronwarden.errors import BackendUnavailable
from cronwarden.manifest.model import TaskSpec
from cronwarden.ports import DispatchRow
from cronwarden.reasons import ReasonCode
from cronwarden.services.dispatch import TRIGGER_TOPIC, Fire, InFlight
from cronwarden.testing import FakeClock, memory_dispatcher

NINE = datetime(2026, 5, 8, 9, tzinfo=UTC)
NINE_MS = int(NINE.timestamp() * 1000)


def _task(task_id: str = "sweep", **fields: Any) -> TaskSpec:
    return TaskSpec.model_validate({"task_id": task_id, "cron": "0 9 * * *",
                                    "targets": ["gov.sweeper"], **fields})  # fmt: skip


def _orphan(store: MemoryStore, at_ms: int = NINE_MS) -> None:
    """A row committed by an instance that died before publishing it."""
    row = DispatchRow("sweep", at_ms, "tr_dead00000000", "dead-host:1", ("gov.sweeper",))
    asyncio.run(store.commit_dispatches([row], at_ms))


def test_a_row_left_open_by_a_dead_instance_is_published_by_another_inside_its_grace() -> None:
    clock, store, bus = FakeClock(NINE), MemoryStore(), LocalBus()
    _orphan(store)
    clock.advance(11)  # past the orphan threshold (2 claim TTLs), inside the 30 s grace
    survivor = memory_dispatcher(clock, store=store, bus=bus, owner="alive")
    (report,) = asyncio.run(survivor.recover({"sweep": 30_000}, orphaned_after_ms=10_000))
    assert (report.event_type, report.trace_id) == (EventType.DISPATCHED, "tr_dead00000000")
    assert report.details == {"recovered_from": "dead-host:1"}
    assert [m["trace_id"] for m in bus.messages[TRIGGER_TOPIC]] == ["tr_dead00000000"]
    assert asyncio.run(store.open_rows(2**62)) == []  # settled: never re-published again
    assert asyncio.run(survivor.recover({"sweep": 30_000}, orphaned_after_ms=0)) == []
    assert [r["event_type"] for r in asyncio.run(store.reports())] == ["CRON_TASK_DISPATCHED"]


def test_a_row_of_a_task_no_longer_running_is_recorded_as_missed() -> None:
    clock, store, bus = FakeClock(NINE), MemoryStore(), LocalBus()
    _orphan(store)
    clock.advance(11)
    survivor = memory_dispatcher(clock, store=store, bus=bus, owner="alive")
    (report,) = asyncio.run(survivor.recover({"other": 30_000}, orphaned_after_ms=10_000))
    assert report.event_type is EventType.MISSED and bus.messages == {}


def test_a_row_its_live_owner_keeps_touching_is_never_adopted() -> None:
    clock, store = FakeClock(NINE), MemoryStore()
    owner = memory_dispatcher(clock, store=store, owner="slow")  # its own lock: another host
    row = DispatchRow("sweep", NINE_MS, "tr_slow", "slow", ("gov.sweeper",))
    asyncio.run(store.commit_dispatches([row], NINE_MS))
    owner.in_flight.add(("sweep", NINE_MS))  # a slow bus: still publishing
    other = memory_dispatcher(clock, store=store, owner="other")
    for _ in range(30):
        clock.advance(1)
        asyncio.run(owner.renew_claims())  # touches the row every second
        assert asyncio.run(other.recover({"sweep": 60_000}, orphaned_after_ms=10_000)) == []


def test_a_row_found_past_its_grace_is_recorded_as_missed_not_fired_late() -> None:
    clock, store, bus = FakeClock(NINE), MemoryStore(), LocalBus()
    _orphan(store)
    clock.advance(45)
    survivor = memory_dispatcher(clock, store=store, bus=bus, owner="alive")
    (report,) = asyncio.run(survivor.recover({"sweep": 30_000}, orphaned_after_ms=10_000))
    assert (report.event_type, report.reason_code) == (
        EventType.MISSED, ReasonCode.CRON_RUNNER_MISSED_FIRE)  # fmt: skip
    assert bus.messages == {}


def test_a_live_instance_keeps_its_fires_by_renewing_their_claims() -> None:
    clock, store = FakeClock(NINE), MemoryStore()
    lock = MemoryLock(clock)
    owner = memory_dispatcher(clock, store=store, lock=lock, owner="busy")
    assert asyncio.run(lock.claim(lock_key("cronwarden", "sweep", NINE_MS), "busy", 5_000))
    row = DispatchRow("sweep", NINE_MS, "tr_busy", "busy", ("gov.sweeper",))
    asyncio.run(store.commit_dispatches([row], NINE_MS))
    owner.in_flight.add(("sweep", NINE_MS))  # still publishing (a slow bus)
    other = memory_dispatcher(clock, store=store, lock=lock, owner="other")
    for _ in range(4):  # 12 s in all: the claim's TTL is 5 s, renewed every 3 s
        clock.advance(3)
        asyncio.run(owner.renew_claims())
        assert asyncio.run(other.recover({}, orphaned_after_ms=10_000)) == []
    assert asyncio.run(owner.recover({}, orphaned_after_ms=10_000)) == []  # its own: in flight


def test_only_one_of_several_survivors_adopts_an_orphan() -> None:
    clock, store, bus = FakeClock(NINE), MemoryStore(), LocalBus()
    lock = MemoryLock(clock)
    _orphan(store)
    clock.advance(11)
    survivors = [memory_dispatcher(clock, store=store, lock=lock, bus=bus, owner=f"s{n}")
                 for n in range(3)]  # fmt: skip

    async def everyone() -> list[Any]:
        return await asyncio.gather(*(s.recover({"sweep": 30_000}, 10_000) for s in survivors))

    assert sorted(len(reports) for reports in asyncio.run(everyone())) == [0, 0, 1]
    assert len(bus.messages[TRIGGER_TOPIC]) == 1


def test_a_fire_that_waits_in_the_queue_past_its_grace_is_missed_and_settled() -> None:
    clock = FakeClock(NINE)
    started, release = asyncio.Event(), asyncio.Event()

    class SlowBus(LocalBus):
        async def publish(self, topic: str, payload: Any) -> None:
            if payload["task_id"] == "first":
                started.set()
                await release.wait()
            await super().publish(topic, payload)

    store = MemoryStore()
    dispatcher = memory_dispatcher(clock, bus=SlowBus(), store=store)
    fires = [Fire(_task("first"), NINE_MS, "tr_1"), Fire(_task("second"), NINE_MS, "tr_2")]

    async def scenario() -> list[Any]:
        slots = InFlight(1)  # one publish at a time, across the batches of a tick
        batch = asyncio.ensure_future(dispatcher.fire_batch(fires[:1], (), slots))
        await started.wait()
        later = asyncio.ensure_future(dispatcher.fire_batch(fires[1:], (), slots))
        for _ in range(5):
            await asyncio.sleep(0)  # "second" waits for the slot
        clock.advance(31)  # past its 30 s grace
        release.set()
        return [*await batch, *await later]

    first, second = asyncio.run(scenario())
    assert first.event_type is EventType.DISPATCHED
    assert (second.event_type, second.reason_code) == (
        EventType.MISSED, ReasonCode.CRON_RUNNER_MISSED_FIRE)  # fmt: skip
    assert second.details == {"queued_past_grace": True}
    assert asyncio.run(store.open_rows(2**62)) == []


def test_a_publish_that_hangs_fails_after_the_timeout_and_the_fire_reports_it() -> None:
    class HangingBus(LocalBus):
        async def publish(self, topic: str, payload: Any) -> None:
            await asyncio.Event().wait()

    with pytest.raises(BackendUnavailable, match="within 0.02 s"):
        asyncio.run(TimedBus(HangingBus(), timeout_s=0.02).publish("t", {}))
    dispatcher = memory_dispatcher(FakeClock(NINE), bus=TimedBus(HangingBus(), timeout_s=0.02))
    report = asyncio.run(dispatcher.fire(_task(), NINE_MS, "tr_x", ()))
    assert report.reason_code is ReasonCode.CRON_RUNNER_BUS_PUBLISH_FAILED


def test_a_batch_of_a_thousand_fires_ends_in_a_thousand_reports_in_order() -> None:
    clock = FakeClock(NINE)
    store, bus = MemoryStore(), LocalBus()
    dispatcher = memory_dispatcher(clock, store=store, bus=bus)
    fires = [Fire(_task(f"t{n}"), NINE_MS, f"tr_{n}") for n in range(1_000)]
    reports = asyncio.run(dispatcher.fire_batch(fires, (), InFlight(20)))
    assert [r.task_id for r in reports] == [f"t{n}" for n in range(1_000)]
    assert {r.event_type for r in reports} == {EventType.DISPATCHED}
    assert len(asyncio.run(store.reports(limit=2_000))) == 1_000
    triggers = [m["task_id"] for m in bus.messages[TRIGGER_TOPIC]]
    assert sorted(triggers) == sorted(f"t{n}" for n in range(1_000))  # each once


def test_a_chunk_the_bus_refuses_goes_out_fire_by_fire_with_retries() -> None:
    class RefusesChunks(LocalBus):
        async def publish_many(self, topic: str, payloads: Any) -> None:
            if len(payloads) > 1:
                raise BackendUnavailable("bus: pipeline refused")
            await super().publish_many(topic, payloads)

    clock, bus = FakeClock(NINE), RefusesChunks()
    dispatcher = memory_dispatcher(clock, bus=bus)
    fires = [Fire(_task(f"t{n}"), NINE_MS, f"tr_{n}") for n in range(10)]
    reports = asyncio.run(dispatcher.fire_batch(fires, (), InFlight(2)))  # chunks of 5
    assert {r.event_type for r in reports} == {EventType.DISPATCHED}
    assert len(bus.messages[TRIGGER_TOPIC]) == 10


def test_a_row_whose_owner_is_known_gone_is_taken_over_at_once() -> None:
    clock, store, bus = FakeClock(NINE), MemoryStore(), LocalBus()
    _orphan(store)  # committed just now by "dead-host:1"
    survivor = replace(memory_dispatcher(clock, store=store, bus=bus, owner="alive"),
                       owner_gone=lambda owner: owner == "dead-host:1")  # fmt: skip
    (report,) = asyncio.run(survivor.recover({"sweep": 30_000}, orphaned_after_ms=10_000))
    assert report.event_type is EventType.DISPATCHED
    assert [m["trace_id"] for m in bus.messages[TRIGGER_TOPIC]] == ["tr_dead00000000"]
