"""One way to connect to Redis, with timeouts that fit spec 000's budgets.

redis-py retries a failed command three times with up to seconds of backoff by
default; a publish has 2 s in all (spec 000) and a claim must fail fast enough to
fall back to the in-process lock inside the fire's grace. So: one retry after 50 ms,
2 s per command, 1 s to connect. The callers (the dispatcher's publish attempts, the
consumers' loops) do their own retrying, paced by the scheduler's clock.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ConstantBackoff

COMMAND_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 1.0


def connect(url: str, *, retries: int = 1) -> Redis:
    """A client for ``url`` (``redis://``, ``rediss://``, ``unix://``); no I/O yet."""
    return Redis.from_url(
        url,
        socket_timeout=COMMAND_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        retry=Retry(ConstantBackoff(0.05), retries),
        health_check_interval=30,
    )
