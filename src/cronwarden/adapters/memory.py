"""In-process adapters: the embedded default, and the doubles every test uses."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cronwarden.errors import BackendUnavailable
from cronwarden.ports import Clock, KillSwitchState


class MemoryLock:
    """Claims in a dict, timed by a :class:`~cronwarden.ports.Clock`'s monotonic time."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._claims: dict[str, tuple[str, float]] = {}  # key -> (owner, expires at)

    def _holder(self, key: str) -> str | None:
        claim = self._claims.get(key)
        if claim is None or claim[1] <= self._clock.monotonic():
            self._claims.pop(key, None)
            return None
        return claim[0]

    async def claim(self, key: str, owner: str, ttl_ms: int) -> bool:
        if self._holder(key) is not None:
            return False
        self._claims[key] = (owner, self._clock.monotonic() + ttl_ms / 1000)
        return True

    async def renew(self, key: str, owner: str, ttl_ms: int) -> bool:
        if self._holder(key) != owner:
            return False
        self._claims[key] = (owner, self._clock.monotonic() + ttl_ms / 1000)
        return True

    async def release(self, key: str, owner: str) -> None:
        if self._holder(key) == owner:
            del self._claims[key]


class LocalBus:
    """Messages kept per topic in order; ``down`` makes it refuse, as a broken bus would."""

    def __init__(self) -> None:
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.down = False

    async def publish(self, topic: str, payload: Mapping[str, Any]) -> None:
        if self.down:
            raise BackendUnavailable(f"bus: topic {topic!r} is not accepting messages")
        self.messages.setdefault(topic, []).append(dict(payload))


class MemoryKillSwitch:
    """The kill-switch flag of one process."""

    def __init__(self) -> None:
        self._state = KillSwitchState(active=False)

    async def state(self) -> KillSwitchState:
        return self._state

    async def set(self, active: bool, actor: str, reason: str, at: datetime) -> KillSwitchState:
        self._state = KillSwitchState(active, actor, reason, at)
        return self._state
