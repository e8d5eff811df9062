"""A task's overlap policy across workers: one shared lease per (task, target).

Inside one worker the policy is kept by the worker's own bookkeeping; with several
workers on a shared bus two consecutive triggers of a task can land on different
workers, so a run also holds the lease ``{prefix}:run:{task_id}:{target}`` in the
shared lock while it goes (renewed every :data:`RENEW_S`, lapsing :data:`TTL_MS`
after its worker died). A trigger that finds the lease held:

* ``forbid``: is skipped (``CRON_RUNNER_OVERLAP_SKIP``);
* ``queue_one``: waits for the lease, with at most one waiter across the workers
  (the ``:waiting`` key); a second waiter is skipped;
* ``replace``: asks the holder to stop (the ``:replace`` key, which the holder looks
  for each time it renews) and waits for the lease like ``queue_one``.

``allow`` takes no lease. While the shared lock is unreachable the fallback lock
keeps the policy per worker only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from cronwarden.manifest.model import Overlap
from cronwarden.ports import Clock, Lock

LOGGER = logging.getLogger("cronwarden.worker")
TTL_MS = 15_000
RENEW_S = 2.0
POLL_S = 1.0


@dataclass
class Lease:
    """A held lease: keep it while the run goes, release it after."""

    lock: Lock
    clock: Clock
    key: str
    owner: str
    overlap: Overlap
    _keeper: asyncio.Task[None] | None = field(default=None, init=False)

    def keep(self, replaced: Callable[[], None]) -> None:
        """Renew the lease in the background; call ``replaced`` when a newer trigger
        of a ``replace`` task asks for the run to stop."""
        self._keeper = asyncio.ensure_future(self._keep(replaced))

    async def _keep(self, replaced: Callable[[], None]) -> None:
        while True:
            await self.clock.sleep(RENEW_S)
            try:
                await self.lock.renew(self.key, self.owner, TTL_MS)
                if self.overlap is Overlap.REPLACE and not await self.lock.claim(
                    f"{self.key}:replace", self.owner, 1
                ):  # another worker holds the request: stop this run
                    replaced()
                    return
            except Exception:  # the lease lapses; the run goes on
                LOGGER.warning("cannot renew the overlap lease %s", self.key, exc_info=True)

    async def release(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        with contextlib.suppress(Exception):
            await self.lock.release(self.key, self.owner)


class OverlapLeases:
    """Takes the lease of a (task, target) for a run, as its overlap policy says."""

    def __init__(self, lock: Lock, clock: Clock, prefix: str, owner: str) -> None:
        self._lock, self._clock, self._prefix, self._owner = lock, clock, prefix, owner

    async def acquire(
        self, task_id: str, target: str, overlap: Overlap, *, resuming: bool = False
    ) -> Lease | None:
        """The lease, once this run may start; ``None`` when the trigger is to be
        skipped. A lock that cannot be reached grants it: better a run than a loss.

        A ``resuming`` trigger (delivered again: its run began on a worker that died)
        is never skipped: it waits for the lease, which is most likely its dead
        worker's own, lapsing within :data:`TTL_MS`.
        """
        key = f"{self._prefix}:run:{task_id}:{target}"
        owner = f"{self._owner}:{secrets.token_hex(4)}"
        lease = Lease(self._lock, self._clock, key, owner, overlap)
        try:
            if await self._lock.claim(key, owner, TTL_MS):
                return lease
            if resuming:
                while not await self._lock.claim(key, owner, TTL_MS):
                    await self._clock.sleep(POLL_S)
                return lease
            if overlap is Overlap.FORBID:
                return None
            return lease if await self._wait(key, owner, overlap) else None
        except Exception:
            LOGGER.warning("overlap lease %s unavailable; running", key, exc_info=True)
            return lease

    async def _wait(self, key: str, owner: str, overlap: Overlap) -> bool:
        waiting = f"{key}:waiting"
        if not await self._lock.claim(waiting, owner, TTL_MS):
            return False  # one trigger already waits for this task
        try:
            while True:
                if overlap is Overlap.REPLACE:
                    await self._lock.claim(f"{key}:replace", owner, TTL_MS)
                await self._clock.sleep(POLL_S)
                await self._lock.renew(waiting, owner, TTL_MS)
                if await self._lock.claim(key, owner, TTL_MS):
                    return True
        finally:
            await self._lock.release(waiting, owner)
            await self._lock.release(f"{key}:replace", owner)
