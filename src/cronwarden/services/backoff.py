"""Waits between tries of a store call that must not be given up: doubling from
``first_s`` to ``max_s`` on the injected clock, and when to say so in the log (the
first time, then once a minute)."""

from __future__ import annotations

import math

from cronwarden.ports import Clock


class Backoff:
    """The waits of one call's tries, and how many there were."""

    def __init__(self, clock: Clock, first_s: float = 0.1, max_s: float = 10.0) -> None:
        self._clock, self._delay_s, self._max_s = clock, first_s, max_s
        self.count = 0
        self._said_at = -math.inf

    def say(self) -> bool:
        """Whether to log this failure: the first, then at most once a minute."""
        now = self._clock.monotonic()
        if now - self._said_at >= 60:
            self._said_at = now
            return True
        return False

    @property
    def next_wait_s(self) -> float:
        return self._delay_s

    async def wait(self) -> None:
        await self._clock.sleep(self._delay_s)
        self.count += 1
        self._delay_s = min(self._delay_s * 2, self._max_s)
