"""The real clock."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

#: asyncio wakes a sleeper up to a millisecond or two late (the poller counts whole
#: milliseconds); the last stretch of a sleep is spent yielding to the loop instead.
SPIN_S = 0.002


class SystemClock:
    """Wall time from the operating system, monotonic time, and a sleep that wakes on time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float, *, precise: bool = False) -> None:
        """Sleep ``seconds``; a ``precise`` sleep wakes within tens of microseconds of the
        deadline, spending its final :data:`SPIN_S` yielding to the loop (not blocking it).
        """
        if not precise:
            await asyncio.sleep(max(seconds, 0.0))
            return
        deadline = time.monotonic() + seconds
        if seconds > SPIN_S:
            await asyncio.sleep(seconds - SPIN_S)
        while time.monotonic() < deadline:  # noqa: ASYNC110 (a spin on purpose)
            await asyncio.sleep(0)
