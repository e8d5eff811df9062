"""The Redis claim (spec 000, ARCHITECTURE "Exactly once"):
``SET {prefix}:fire:{task_id}:{scheduled_at_ms} {instance}:{token} NX PX 5000``.

The value names the holder: the instance, and a token drawn when this process
started, so that a restarted process that happens to get the same pid is another
holder. Renewal and release compare the value first (one Lua script each): a claim
is only ever extended or freed by the one who holds it. ``claim_many`` sends every
``SET`` of a batch in one round trip.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from cronwarden.errors import BackendUnavailable

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLock:
    """Claims shared by every instance on one Redis."""

    mode = "redis"

    def __init__(self, client: Redis) -> None:
        self.client = client
        self._token = secrets.token_hex(8)
        self._renew: Any = client.register_script(_RENEW)
        self._release: Any = client.register_script(_RELEASE)

    def holder(self, owner: str) -> str:
        """The value a claim of ``owner`` holds in Redis."""
        return f"{owner}:{self._token}"

    async def claim(self, key: str, owner: str, ttl_ms: int) -> bool:
        try:
            return bool(await self.client.set(key, self.holder(owner), nx=True, px=ttl_ms))
        except RedisError as err:
            raise BackendUnavailable(f"lock: Redis did not answer a claim: {err}") from err

    async def claim_many(self, keys: Sequence[str], owner: str, ttl_ms: int) -> list[bool]:
        if not keys:
            return []
        value = self.holder(owner)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.set(key, value, nx=True, px=ttl_ms)
                answers = await pipe.execute()
        except RedisError as err:
            raise BackendUnavailable(f"lock: Redis did not answer a claim: {err}") from err
        return [bool(answer) for answer in answers]

    async def renew(self, key: str, owner: str, ttl_ms: int) -> bool:
        try:
            return bool(await self._renew(keys=[key], args=[self.holder(owner), ttl_ms]))
        except RedisError as err:
            raise BackendUnavailable(f"lock: Redis did not answer a renewal: {err}") from err

    async def release(self, key: str, owner: str) -> None:
        try:
            await self._release(keys=[key], args=[self.holder(owner)])
        except RedisError as err:
            raise BackendUnavailable(f"lock: Redis did not answer a release: {err}") from err
