"""Operator controls kept in the SQL store, so that the CLI and a running daemon share them:
the kill switch and paused tasks."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from cronwarden.adapters.sql.store import SqlStore
from cronwarden.errors import BackendUnavailable
from cronwarden.ports import Clock, KillSwitch, KillSwitchState

KILL_SWITCH = "kill_switch"
PAUSE_PREFIX = "pause:"


class SqlKillSwitch:
    """The :class:`~cronwarden.ports.KillSwitch` as a row of the store."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    async def state(self) -> KillSwitchState:
        value = await self._store.get_control(KILL_SWITCH)
        if value is None:
            return KillSwitchState(active=False)
        changed = value.get("changed_at")
        return KillSwitchState(
            active=bool(value.get("active")),
            actor=str(value.get("actor", "")),
            reason=str(value.get("reason", "")),
            changed_at=datetime.fromisoformat(changed) if changed else None,
        )

    async def set(self, active: bool, actor: str, reason: str, at: datetime) -> KillSwitchState:
        value = {"active": active, "actor": actor, "reason": reason, "changed_at": at.isoformat()}
        await self._store.set_control(KILL_SWITCH, value, int(at.timestamp() * 1000))
        return KillSwitchState(active, actor, reason, at)


class SqlPauses:
    """The :class:`~cronwarden.ports.Pauses` as rows of the store."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    async def paused(self, task_id: str) -> bool:
        value = await self._store.get_control(f"{PAUSE_PREFIX}{task_id}")
        return bool(value and value.get("paused"))

    async def paused_tasks(self) -> frozenset[str]:
        values = await self._store.controls_with_prefix(PAUSE_PREFIX)
        return frozenset(name.removeprefix(PAUSE_PREFIX) for name, v in values if v.get("paused"))

    async def set_paused(
        self, task_id: str, paused: bool, actor: str, reason: str, at: datetime
    ) -> None:
        value = {"paused": paused, "actor": actor, "reason": reason, "changed_at": at.isoformat()}
        await self._store.set_control(f"{PAUSE_PREFIX}{task_id}", value, int(at.timestamp() * 1000))


class Cached:
    """Reads of the kill switch and pauses, refreshed at most every ``ttl_s`` seconds.

    The scheduler asks for both on every batch of fires; with this, a busy second
    costs two reads, and a change still reaches it within ``ttl_s`` (spec: within 1 s).
    While the store cannot be read, the last states read stand.
    """

    def __init__(
        self, kill_switch: KillSwitch, pauses: SqlPauses, clock: Clock, ttl_s: float = 0.5
    ) -> None:
        self._kill_switch, self._pauses, self._clock, self._ttl = kill_switch, pauses, clock, ttl_s
        self._state: tuple[float, KillSwitchState] | None = None
        self._paused: tuple[float, frozenset[str]] | None = None

    async def keep_fresh(self, stop: asyncio.Event) -> None:
        """Re-read both every half ``ttl_s`` until ``stop``, so that a fire never waits on
        a read; a failed read is retried at the next round (fires then read themselves)."""
        while not stop.is_set():
            now = self._clock.monotonic()
            with contextlib.suppress(BackendUnavailable):
                self._state = (now, await self._kill_switch.state())
                self._paused = (now, await self._pauses.paused_tasks())
            await self._clock.sleep(self._ttl / 2)

    async def state(self) -> KillSwitchState:
        now = self._clock.monotonic()
        if self._state is None or now - self._state[0] >= self._ttl:
            try:
                self._state = (now, await self._kill_switch.state())
            except BackendUnavailable:
                if self._state is None:
                    raise
                # Unreachable: the last state read stands (nobody can change a switch
                # kept where nobody can write), and the fire goes on to its commit.
        return self._state[1]

    async def set(self, active: bool, actor: str, reason: str, at: datetime) -> KillSwitchState:
        self._state = None
        return await self._kill_switch.set(active, actor, reason, at)

    async def paused_tasks(self) -> frozenset[str]:
        now = self._clock.monotonic()
        if self._paused is None or now - self._paused[0] >= self._ttl:
            try:
                self._paused = (now, await self._pauses.paused_tasks())
            except BackendUnavailable:
                if self._paused is None:
                    raise
        return self._paused[1]

    async def paused(self, task_id: str) -> bool:
        return task_id in await self.paused_tasks()

    async def set_paused(
        self, task_id: str, paused: bool, actor: str, reason: str, at: datetime
    ) -> None:
        self._paused = None
        await self._pauses.set_paused(task_id, paused, actor, reason, at)
