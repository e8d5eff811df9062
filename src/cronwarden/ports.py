"""The ports: every contract an adapter fulfils. Services talk only to these.

Each method's docstring is the contract, including what holds across several
instances; adapters (``cronwarden.adapters``) do not repeat it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


class Clock(Protocol):
    """The one source of time. Only services read it; the core takes time as an argument."""

    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps; only differences mean anything."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` of this clock's time have passed."""
        ...


class Lock(Protocol):
    """Claims on keys with an owner and a time to live (spec 000: ``SET key NX PX ttl``).

    At most one owner holds a key at any moment, across every instance that
    shares the backend. A claim lapses after ``ttl_ms`` unless renewed.
    """

    async def claim(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Take ``key`` for ``owner``; ``False`` when another owner holds it.

        :raises BackendUnavailable: when the backend cannot be reached.
        """
        ...

    async def renew(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Extend ``owner``'s claim; ``False`` when ``owner`` no longer holds it."""
        ...

    async def release(self, key: str, owner: str) -> None:
        """Give ``key`` up if ``owner`` holds it; never frees another owner's claim."""
        ...


class Bus(Protocol):
    """Topics with at-least-once delivery to their subscribers."""

    async def publish(self, topic: str, payload: Mapping[str, Any]) -> None:
        """Publish ``payload``; return once the bus has accepted it.

        :raises BackendUnavailable: when the bus cannot accept it now.
        """
        ...


@dataclass(frozen=True, slots=True)
class KillSwitchState:
    """Whether the kill switch is on, and who turned it to this state, why and when."""

    active: bool
    actor: str = ""
    reason: str = ""
    changed_at: datetime | None = None


class KillSwitch(Protocol):
    """The shared kill-switch flag (spec 000: suppresses trading-class tasks)."""

    async def state(self) -> KillSwitchState:
        """The current state, as every instance sees it."""
        ...

    async def set(self, active: bool, actor: str, reason: str, at: datetime) -> KillSwitchState:
        """Turn the switch on or off, recording who, why and when; return the new state."""
        ...
