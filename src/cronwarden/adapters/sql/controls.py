"""Operator controls kept in the SQL store, so that the CLI and a running daemon share them:
the kill switch and paused tasks."""

from __future__ import annotations

from datetime import datetime

from cronwarden.adapters.sql.store import SqlStore
from cronwarden.ports import KillSwitchState

KILL_SWITCH = "kill_switch"


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
        value = await self._store.get_control(f"pause:{task_id}")
        return bool(value and value.get("paused"))

    async def set_paused(
        self, task_id: str, paused: bool, actor: str, reason: str, at: datetime
    ) -> None:
        value = {"paused": paused, "actor": actor, "reason": reason, "changed_at": at.isoformat()}
        await self._store.set_control(f"pause:{task_id}", value, int(at.timestamp() * 1000))
