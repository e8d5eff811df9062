"""The shared claim with the in-process one behind it (spec 000 REDIS_LOCK_UNAVAILABLE):
claims never wait for a dead Redis, each outage warns once, and sharing resumes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from cronwarden.adapters.fallback import FallbackLock
from cronwarden.adapters.memory import MemoryLock
from cronwarden.errors import BackendUnavailable
from cronwarden.testing import FakeClock


class SharedLock(MemoryLock):
    """A lock shared by several instances that can be taken down (a Redis outage)."""

    mode = "redis"
    down = False

    def _check(self) -> None:
        if self.down:
            raise BackendUnavailable("lock: Redis did not answer a claim: refused")

    async def claim(self, key: str, owner: str, ttl_ms: int) -> bool:
        self._check()
        return await super().claim(key, owner, ttl_ms)

    async def claim_many(self, keys: Sequence[str], owner: str, ttl_ms: int) -> list[bool]:
        self._check()
        return await super().claim_many(keys, owner, ttl_ms)

    async def renew(self, key: str, owner: str, ttl_ms: int) -> bool:
        self._check()
        return await super().renew(key, owner, ttl_ms)


def test_an_outage_falls_back_at_once_warns_once_and_sharing_resumes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        shared = SharedLock(clock)
        one = FallbackLock(shared, MemoryLock(clock), clock, retry_after_s=5)
        two = FallbackLock(shared, MemoryLock(clock), clock, retry_after_s=5)
        assert await one.claim("k1", "a", 5_000) and not await two.claim("k1", "b", 5_000)
        assert one.mode == "redis"
        shared.down = True
        with caplog.at_level(logging.WARNING, logger="cronwarden.lock"):
            assert await one.claim_many(["k2", "k3"], "a", 5_000) == [True, True]
            assert await one.claim("k4", "a", 5_000)
            assert await two.claim("k2", "b", 5_000)  # weakened: each holds its own
        assert one.mode == "local" and one.shared_down
        warnings = [r for r in caplog.records if "REDIS_LOCK_UNAVAILABLE" in r.getMessage()]
        assert len(warnings) == 2  # one per instance, not one per claim
        assert await one.renew("k2", "a", 5_000)  # a claim of the outage renews locally
        shared.down = False
        assert await one.claim("k5", "a", 5_000)  # not retried before retry_after_s
        assert one.mode == "local"
        clock.advance(5)
        assert await one.claim("k6", "a", 5_000) and not await two.claim("k6", "b", 5_000)
        assert one.mode == "redis" and one.outages == 1

    asyncio.run(scenario())
