"""The in-memory adapters: claims with owners and time to live, the bus, the kill switch."""

from __future__ import annotations

import asyncio

from cronwarden.adapters.memory import LocalBus, MemoryKillSwitch, MemoryLock
from cronwarden.errors import BackendUnavailable
from cronwarden.testing import FakeClock


def test_a_claim_is_exclusive_until_it_lapses() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        lock = MemoryLock(clock)
        assert await lock.claim("k", "a", 5_000)
        assert not await lock.claim("k", "b", 5_000)
        clock.advance(4.999)
        assert not await lock.claim("k", "b", 5_000)
        clock.advance(0.001)  # the holder died: the claim lapses after its TTL
        assert await lock.claim("k", "b", 5_000)

    asyncio.run(scenario())


def test_only_the_holder_renews_or_releases() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        lock = MemoryLock(clock)
        await lock.claim("k", "a", 1_000)
        assert not await lock.renew("k", "b", 1_000)
        await lock.release("k", "b")
        assert not await lock.claim("k", "b", 1_000)
        clock.advance(0.9)
        assert await lock.renew("k", "a", 1_000)
        clock.advance(0.9)
        assert not await lock.claim("k", "b", 1_000)  # renewed: still held
        await lock.release("k", "a")
        assert await lock.claim("k", "b", 1_000)

    asyncio.run(scenario())


def test_lapsed_claims_do_not_accumulate_over_a_long_run() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        lock = MemoryLock(clock)
        for minute in range(200):  # 200 minutes of 500 fires a minute: 100,000 keys
            keys = [f"cw:fire:task{n}:{minute}" for n in range(500)]
            assert await lock.claim_many(keys, "me", 5_000) == [True] * 500
            clock.advance(60)
        assert lock.held <= 2_048  # not 100,000
        assert await lock.claim("cw:fire:task0:199", "other", 5_000)  # lapsed long ago

    asyncio.run(scenario())


def test_the_bus_keeps_order_and_refuses_when_down() -> None:
    async def scenario() -> None:
        bus = LocalBus()
        await bus.publish("t", {"n": 1})
        await bus.publish("t", {"n": 2})
        assert list(bus.messages["t"]) == [{"n": 1}, {"n": 2}]
        bus.down = True
        try:
            await bus.publish("t", {"n": 3})
        except BackendUnavailable as err:
            assert "not accepting" in str(err)
        else:
            raise AssertionError("a down bus accepted a message")

    asyncio.run(scenario())


def test_the_kill_switch_records_who_why_and_when() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        switch = MemoryKillSwitch()
        assert not (await switch.state()).active
        state = await switch.set(True, "alice", "exchange outage", clock.now())
        assert (state.active, state.actor, state.reason, state.changed_at) == (
            True,
            "alice",
            "exchange outage",
            clock.now(),
        )
        assert await switch.state() == state

    asyncio.run(scenario())


def test_the_fake_clock_wakes_sleepers_when_advanced() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        woke: list[float] = []

        async def sleeper(seconds: float) -> None:
            await clock.sleep(seconds)
            woke.append(seconds)

        tasks = [asyncio.create_task(sleeper(s)) for s in (1.0, 2.0)]
        await asyncio.sleep(0)
        clock.advance(1.5)
        await asyncio.sleep(0)
        assert woke == [1.0]
        clock.jump(3600)  # a wall-clock jump wakes nobody
        await asyncio.sleep(0)
        assert woke == [1.0]
        clock.advance(0.5)
        await asyncio.gather(*tasks)
        assert woke == [1.0, 2.0]

    asyncio.run(scenario())
