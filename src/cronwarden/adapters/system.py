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

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, waking within tens of microseconds of the deadline.

        Other tasks keep running during the final :data:`SPIN_S`: the loop is yielded
        to, not blocked.
        """
        deadline = time.monotonic() + seconds
        if seconds > SPIN_S:
            await asyncio.sleep(seconds - SPIN_S)
        while time.monotonic() < deadline:  # noqa: ASYNC110 (a spin on purpose)
            await asyncio.sleep(0)
