"""The shared claim with the in-process claim behind it (spec 000's
``REDIS_LOCK_UNAVAILABLE``: "fall back to in-process lock with warn").

While the shared lock answers, every claim goes to it. When it cannot be reached,
claims go to the in-process lock at once (the fire is not lost waiting for Redis), a
warning is logged once for the outage, and :attr:`mode` says ``local``, so each report
of the outage carries ``lock_mode: local``. The shared lock is tried again every
``retry_after_s``; the first answer switches back, with a log line. The store's
unique dispatch row still keeps two instances from both dispatching one fire.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from cronwarden.errors import BackendUnavailable
from cronwarden.ports import Clock, Lock
from cronwarden.reasons import ReasonCode

LOGGER = logging.getLogger("cronwarden.lock")
T = TypeVar("T")


class FallbackLock:
    """``shared``, or ``local`` while ``shared`` cannot be reached."""

    def __init__(
        self, shared: Lock, local: Lock, clock: Clock, *, retry_after_s: float = 5.0
    ) -> None:
        self._shared, self._local, self._clock = shared, local, clock
        self._retry_after_s = retry_after_s
        self._retry_at: float | None = None  # set while the shared lock is down
        self.outages = 0

    @property
    def mode(self) -> str:
        return self._local.mode if self._retry_at is not None else self._shared.mode

    @property
    def shared_down(self) -> bool:
        return self._retry_at is not None

    async def _either(
        self, shared: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]
    ) -> T:
        if self._retry_at is not None and self._clock.monotonic() < self._retry_at:
            return await local()
        try:
            answer = await shared()
        except BackendUnavailable as err:
            if self._retry_at is None:
                self.outages += 1
                LOGGER.warning("%s: %s; claims are held in this process until it answers "
                               "(safe for one instance only)", ReasonCode.REDIS_LOCK_UNAVAILABLE,
                               err, extra={"reason_code": str(ReasonCode.REDIS_LOCK_UNAVAILABLE),
                                           "lock_mode": self._local.mode})  # fmt: skip
            self._retry_at = self._clock.monotonic() + self._retry_after_s
            return await local()
        if self._retry_at is not None:
            self._retry_at = None
            LOGGER.warning("the shared lock answers again: claims are shared again",
                           extra={"lock_mode": self._shared.mode})  # fmt: skip
        return answer

    async def claim(self, key: str, owner: str, ttl_ms: int) -> bool:
        return await self._either(lambda: self._shared.claim(key, owner, ttl_ms),
                                  lambda: self._local.claim(key, owner, ttl_ms))  # fmt: skip

    async def claim_many(self, keys: Sequence[str], owner: str, ttl_ms: int) -> list[bool]:
        return await self._either(lambda: self._shared.claim_many(keys, owner, ttl_ms),
                                  lambda: self._local.claim_many(keys, owner, ttl_ms))  # fmt: skip

    async def renew(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Renewed wherever it is held: a claim taken during an outage is local."""
        if await self._local.renew(key, owner, ttl_ms):
            return True
        return await self._either(lambda: self._shared.renew(key, owner, ttl_ms),
                                  _false)  # fmt: skip

    async def release(self, key: str, owner: str) -> None:
        await self._local.release(key, owner)

        async def nothing() -> None:
            return None

        await self._either(lambda: self._shared.release(key, owner), nothing)


async def _false() -> bool:
    return False
