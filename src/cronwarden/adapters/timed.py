"""A publish timeout for a bus whose client has none of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping, Sequence
from typing import Any

from cronwarden.errors import BackendUnavailable
from cronwarden.ports import Bus, Delivery

#: Spec 000: a publish that takes longer has failed.
PUBLISH_TIMEOUT_S = 2.0


class TimedBus:
    """``bus``, with every publish that outlasts ``timeout_s`` turned into a failure.

    The in-process bus needs none (it never waits); a networked bus whose client
    has no timeout of its own is wrapped in this one.
    """

    def __init__(self, bus: Bus, timeout_s: float = PUBLISH_TIMEOUT_S) -> None:
        self._bus = bus
        self._timeout_s = timeout_s

    async def publish(self, topic: str, payload: Mapping[str, Any]) -> None:
        await self._within(self._bus.publish(topic, payload), f"a publish on {topic!r}")

    async def publish_many(self, topic: str, payloads: Sequence[Mapping[str, Any]]) -> None:
        await self._within(self._bus.publish_many(topic, payloads),
                           f"{len(payloads)} publishes on {topic!r}")  # fmt: skip

    async def _within(self, publishing: Awaitable[None], what: str) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                await publishing
        except TimeoutError as err:
            raise BackendUnavailable(
                f"bus: no answer to {what} within {self._timeout_s:g} s"
            ) from err

    def subscribe(self, topic: str) -> AsyncIterator[dict[str, Any]]:
        return self._bus.subscribe(topic)

    def consume(self, topic: str, group: str, consumer: str) -> AsyncGenerator[Delivery, None]:
        return self._bus.consume(topic, group, consumer)
