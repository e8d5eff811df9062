"""The Lock contract, run against every adapter: the in-process lock (on a fake clock)
and Redis (a real one, real expiry, short TTLs; each test under its own prefix)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from cronwarden.adapters.memory import MemoryLock
from cronwarden.adapters.redis_client import connect
from cronwarden.adapters.redis_lock import RedisLock
from cronwarden.errors import BackendUnavailable
from cronwarden.ports import Lock
from cronwarden.testing import FakeClock


@dataclass
class Claims:
    """Makes locks that share one backend (as instances do), and lets time pass."""

    make: Callable[[], Lock]
    lapse: Callable[[float], Awaitable[None]]
    prefix: str
    close: Callable[[], Awaitable[None]]


def _memory() -> Claims:
    clock = FakeClock()
    shared = MemoryLock(clock)

    async def lapse(seconds: float) -> None:
        clock.advance(seconds)

    async def nothing() -> None:
        return None

    return Claims(lambda: shared, lapse, "cw", nothing)


@pytest.fixture(params=["memory", "redis"])
def claims(request: pytest.FixtureRequest) -> Iterator[Callable[[], Claims]]:
    if request.param == "memory":
        yield _memory
        return
    url: str = request.getfixturevalue("redis_url")
    prefix = f"cwtest-{secrets.token_hex(4)}"
    made: list[Redis] = []

    def redis_claims() -> Claims:
        def make() -> Lock:
            made.append(Redis.from_url(url, socket_timeout=5))
            return RedisLock(made[-1])

        async def close() -> None:
            for client in made:
                await client.aclose()
            made.clear()

        return Claims(make, asyncio.sleep, prefix, close)

    yield redis_claims
    cleanup = redis.Redis.from_url(url)
    for key in cleanup.scan_iter(f"{prefix}:*"):
        cleanup.delete(key)
    cleanup.close()


def run(claims: Callable[[], Claims],
        scenario: Callable[[Claims], Coroutine[Any, Any, None]]) -> None:  # fmt: skip
    async def whole() -> None:
        made = claims()
        try:
            await scenario(made)
        finally:
            await made.close()

    asyncio.run(whole())


def test_a_claim_is_exclusive_until_it_lapses(claims: Callable[[], Claims]) -> None:
    async def scenario(c: Claims) -> None:
        one, two = c.make(), c.make()
        key = f"{c.prefix}:fire:scan:1000"
        assert await one.claim(key, "host-a:1", 300)
        assert not await two.claim(key, "host-b:2", 300)
        await c.lapse(0.5)  # the holder died and never renewed
        assert await two.claim(key, "host-b:2", 300)

    run(claims, scenario)


def test_only_the_holder_renews_or_releases(claims: Callable[[], Claims]) -> None:
    async def scenario(c: Claims) -> None:
        one, two = c.make(), c.make()
        key = f"{c.prefix}:fire:scan:2000"
        await one.claim(key, "host-a:1", 400)
        assert not await two.renew(key, "host-b:2", 400)
        await two.release(key, "host-b:2")
        assert not await two.claim(key, "host-b:2", 400)  # still held by a
        await c.lapse(0.25)
        assert await one.renew(key, "host-a:1", 400)
        await c.lapse(0.25)
        assert not await two.claim(key, "host-b:2", 400)  # renewed: still held
        await one.release(key, "host-a:1")
        assert await two.claim(key, "host-b:2", 400)
        assert not await one.renew(key, "host-a:1", 400)  # no longer its claim

    run(claims, scenario)


def test_claim_many_answers_each_key_in_order(claims: Callable[[], Claims]) -> None:
    async def scenario(c: Claims) -> None:
        one, two = c.make(), c.make()
        keys = [f"{c.prefix}:fire:t{n}:3000" for n in range(5)]
        assert await one.claim_many(keys[1:4:2], "host-a:1", 5_000) == [True, True]
        assert await two.claim_many(keys, "host-b:2", 5_000) == [True, False, True, False, True]
        assert await one.claim_many([], "host-a:1", 5_000) == []

    run(claims, scenario)


def test_a_restarted_process_with_the_same_name_is_another_holder(redis_url: str) -> None:
    async def scenario() -> None:
        key = f"cwtest-{secrets.token_hex(4)}:fire:scan:4000"
        first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
        try:
            before, after = RedisLock(first), RedisLock(second)  # one pid, two lives
            assert await before.claim(key, "host:42", 5_000)
            assert not await after.renew(key, "host:42", 5_000)
            await after.release(key, "host:42")
            assert await first.get(key) == before.holder("host:42").encode()
            await before.release(key, "host:42")
        finally:
            await first.aclose()
            await second.aclose()

    asyncio.run(scenario())


def test_a_redis_that_does_not_answer_is_backend_unavailable() -> None:
    async def scenario() -> None:
        client = connect("redis://127.0.0.1:9/0")  # nothing listens there
        lock = RedisLock(client)
        for attempt in (lock.claim("k", "me", 100), lock.claim_many(["k"], "me", 100),
                        lock.renew("k", "me", 100), lock.release("k", "me")):  # fmt: skip
            with pytest.raises(BackendUnavailable, match="lock: Redis did not answer"):
                await attempt
        await client.aclose()

    asyncio.run(scenario())
