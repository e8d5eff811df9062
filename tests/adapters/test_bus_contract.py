"""The Bus contract, run against every adapter: the in-process bus and Redis Streams
(a real Redis; each test under its own key prefix)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from cronwarden.adapters.memory import LocalBus
from cronwarden.adapters.redis_bus import RedisStreamBus, StreamSettings
from cronwarden.adapters.redis_client import connect
from cronwarden.errors import BackendUnavailable
from cronwarden.ports import Bus, Delivery

MakeBus = Callable[..., Bus]


class RedisBuses:
    """Makes Redis buses (inside a test's event loop) under a prefix of the test's own,
    and closes them when the test's scenario ends."""

    def __init__(self, url: str) -> None:
        self.url, self.prefix = url, f"cwtest-{secrets.token_hex(4)}"
        self.made: list[RedisStreamBus] = []

    def __call__(self, **settings: Any) -> RedisStreamBus:
        client = Redis.from_url(url=self.url, socket_timeout=5)
        self.made.append(RedisStreamBus(client, StreamSettings(prefix=self.prefix, **settings)))
        return self.made[-1]

    async def close(self) -> None:
        for bus in self.made:
            await bus.aclose()
        self.made.clear()


def run(scenario: Callable[[], Coroutine[Any, Any, None]], buses: object) -> None:
    """Run ``scenario``, then close the Redis buses it made."""

    async def whole() -> None:
        try:
            await scenario()
        finally:
            if isinstance(buses, RedisBuses):
                await buses.close()

    asyncio.run(whole())


@pytest.fixture
def redis_bus(redis_url: str) -> Iterator[RedisBuses]:
    buses = RedisBuses(redis_url)
    prefix = buses.prefix
    yield buses
    cleanup = redis.Redis.from_url(redis_url)
    for key in cleanup.scan_iter(f"{prefix}:*"):
        cleanup.delete(key)
    cleanup.close()


@pytest.fixture(params=["local", "redis"])
def make_bus(request: pytest.FixtureRequest) -> MakeBus:
    if request.param == "local":
        shared = LocalBus()
        return lambda **_: shared
    maker: RedisBuses = request.getfixturevalue("redis_bus")
    return maker


async def _take(deliveries: AsyncIterator[Delivery], count: int, timeout_s: float = 10
                ) -> list[Delivery]:  # fmt: skip
    taken = []
    async with asyncio.timeout(timeout_s):
        while len(taken) < count:
            taken.append(await anext(deliveries))
    return taken


async def _group(bus: Bus, topic: str) -> None:
    if isinstance(bus, RedisStreamBus):
        await bus.ensure_group(topic, "workers")  # as the scheduler does before publishing


def test_each_message_goes_to_one_consumer_of_the_group(make_bus: MakeBus) -> None:
    async def scenario() -> None:
        bus = make_bus()
        await _group(bus, "cron.trigger")
        got: list[Delivery] = []
        all_in = asyncio.Event()

        async def worker(name: str) -> None:
            async for delivery in bus.consume("cron.trigger", "workers", name):
                got.append(delivery)
                await delivery.ack()
                if len(got) >= 20:
                    all_in.set()

        workers = [asyncio.ensure_future(worker(name)) for name in ("w1", "w2")]
        await asyncio.sleep(0.1)
        for index in range(20):
            await bus.publish("cron.trigger", {"n": index})
        async with asyncio.timeout(10):
            await all_in.wait()
        await asyncio.sleep(0.3)  # nothing more comes
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        assert sorted(d.payload["n"] for d in got) == list(range(20))
        assert all(d.deliveries == 1 and not d.redelivered for d in got)

    run(scenario, make_bus)


def test_subscribers_each_see_every_message_published_after_they_read(
    make_bus: MakeBus,
) -> None:
    async def scenario() -> None:
        bus = make_bus(block_ms=100)
        watcher = bus.subscribe("ops.reports")
        first = asyncio.ensure_future(anext(watcher))
        await asyncio.sleep(0.3)  # the watcher's first read is waiting
        await bus.publish("ops.reports", {"report_id": "r1"})
        async with asyncio.timeout(5):
            assert await first == {"report_id": "r1"}
            for n in (2, 3):  # published back to back, between two reads
                await bus.publish("ops.reports", {"report_id": f"r{n}"})
            assert [await anext(watcher), await anext(watcher)] == [
                {"report_id": "r2"}, {"report_id": "r3"}]  # fmt: skip

    run(scenario, make_bus)


def test_many_published_at_once_arrive_in_order(make_bus: MakeBus) -> None:
    async def scenario() -> None:
        bus = make_bus(block_ms=100)
        watcher = bus.subscribe("ops.reports")
        first = asyncio.ensure_future(anext(watcher))
        await asyncio.sleep(0.3)
        await bus.publish_many("ops.reports", [{"report_id": f"r{n}"} for n in range(50)])
        await bus.publish_many("ops.reports", [])
        async with asyncio.timeout(5):
            seen = [await first] + [await anext(watcher) for _ in range(49)]
        assert [m["report_id"] for m in seen] == [f"r{n}" for n in range(50)]

    run(scenario, make_bus)


def test_a_message_given_up_is_delivered_again(make_bus: MakeBus) -> None:
    async def scenario() -> None:
        bus = make_bus(idle_ms=200, block_ms=100)
        await _group(bus, "cron.trigger")
        consumer = bus.consume("cron.trigger", "workers", "w1")
        await bus.publish("cron.trigger", {"task_id": "scan"})
        (first,) = await _take(consumer, 1)
        await first.nack()  # the worker could not handle it (its store was down)
        (again,) = await _take(consumer, 1)
        assert again.payload == {"task_id": "scan"}
        await again.ack()

    run(scenario, make_bus)


def test_a_stopped_consumers_message_is_redelivered_to_another(
    redis_bus: RedisBuses,
) -> None:
    async def scenario() -> None:
        bus = redis_bus(idle_ms=300, block_ms=100)
        await bus.ensure_group("cron.trigger", "workers")
        await bus.publish("cron.trigger", {"task_id": "scan"})
        doomed = bus.consume("cron.trigger", "workers", "w1")
        (taken,) = await _take(doomed, 1)
        await doomed.aclose()  # its worker died: no ack, and nobody keeps the entry fresh
        survivor = bus.consume("cron.trigger", "workers", "w2")
        (again,) = await _take(survivor, 1)
        assert again.payload == {"task_id": "scan"} and again.message_id == taken.message_id
        assert again.deliveries == 2 and again.redelivered
        await again.ack()
        pending: Any = await bus.client.xpending(bus.stream("cron.trigger"), "workers")
        assert pending["pending"] == 0

    run(scenario, redis_bus)


def test_a_live_consumers_long_run_is_never_taken_from_it(
    redis_bus: RedisBuses,
) -> None:
    async def scenario() -> None:
        bus = redis_bus(idle_ms=300, block_ms=100)
        await bus.ensure_group("cron.trigger", "workers")
        await bus.publish("cron.trigger", {"task_id": "slow"})
        holder = bus.consume("cron.trigger", "workers", "w1")
        (taken,) = await _take(holder, 1)
        keep_reading = asyncio.ensure_future(anext(holder))  # its reader (and keeper) run on
        other = bus.consume("cron.trigger", "workers", "w2")
        with pytest.raises(TimeoutError):
            await _take(other, 1, timeout_s=1.5)  # five idle times: still w1's
        await taken.ack()
        keep_reading.cancel()

    run(scenario, redis_bus)


def test_a_message_delivered_too_often_becomes_a_dead_letter(
    redis_bus: RedisBuses,
) -> None:
    async def scenario() -> None:
        bus = redis_bus(idle_ms=100, block_ms=50, max_deliveries=2)
        await bus.ensure_group("cron.trigger", "workers")
        await bus.publish("cron.trigger", {"task_id": "poison"})
        for name in ("w1", "w2"):  # two workers die on it
            consumer = bus.consume("cron.trigger", "workers", name)
            await _take(consumer, 1)
            await consumer.aclose()
        last = bus.consume("cron.trigger", "workers", "w3")
        with pytest.raises(TimeoutError):
            await _take(last, 1, timeout_s=1)
        dead: Any = await bus.client.xrange(bus.dead_letters("cron.trigger"))
        assert len(dead) == 1
        fields = dead[0][1]
        assert fields[b"deliveries"] == b"3" and b"poison" in fields[b"data"]

    run(scenario, redis_bus)


def test_triggers_published_before_any_worker_wait_for_the_group(
    redis_bus: RedisBuses,
) -> None:
    async def scenario() -> None:
        bus = redis_bus(block_ms=100)
        await bus.ensure_group("cron.trigger", "workers")  # the scheduler, at its start
        await bus.publish("cron.trigger", {"n": 1})
        (late,) = await _take(bus.consume("cron.trigger", "workers", "w1"), 1)
        assert late.payload == {"n": 1}

    run(scenario, redis_bus)


def test_streams_stay_bounded(redis_bus: RedisBuses) -> None:
    async def scenario() -> None:
        bus = redis_bus(max_len=100)
        for index in range(2_000):
            await bus.publish("ops.reports", {"n": index})
        assert await bus.client.xlen(bus.stream("ops.reports")) < 300

    run(scenario, redis_bus)


def test_a_redis_that_does_not_answer_is_backend_unavailable() -> None:
    async def scenario() -> None:
        client = connect("redis://127.0.0.1:9/0")  # nothing listens there
        bus = RedisStreamBus(client)
        with pytest.raises(BackendUnavailable, match="Redis refused a publish"):
            await bus.publish("cron.trigger", {"n": 1})
        await client.aclose()

    run(scenario, None)


class _CancelTurnedIntoError:
    """A Redis client whose blocking read answers a cancellation with a connection
    error, as redis-py can: the consumer must still stop."""

    async def xgroup_create(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def xinfo_consumers(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []

    async def xautoclaim(self, *args: Any, **kwargs: Any) -> list[Any]:
        return ["0-0", []]

    async def xreadgroup(self, *args: Any, **kwargs: Any) -> Any:
        from redis.exceptions import ConnectionError as RedisConnectionError

        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise RedisConnectionError("Connection closed by server.") from None
        return None


def test_a_consumer_cancelled_inside_a_redis_read_stops() -> None:
    """Once in a while a CI run hung for good here: the cancellation became a Redis
    error, the consume loop took it for an outage and retried forever."""

    async def scenario() -> None:
        bus = RedisStreamBus(_CancelTurnedIntoError(), StreamSettings())  # type: ignore[arg-type]
        deliveries = bus.consume("cron.trigger", "workers", "w1")
        reading = asyncio.ensure_future(anext(deliveries))
        await asyncio.sleep(0.1)  # inside the blocking read
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(reading, 5)
        await deliveries.aclose()

    asyncio.run(scenario())
