"""The kill switch in Redis, with the store as its durable copy.

Every instance reads the switch from ``{prefix}:killswitch`` (one ``GET``, a few
hundred microseconds), so a change reaches all of them within the scheduler's
refresh of half a second. Redis as deployed here keeps nothing on disk, and a
forgotten kill switch would let trading resume after a Redis restart: so each
change is also written to the store, and the two are reconciled, the newest change
winning, whenever Redis has no value, cannot be reached, or ``reconcile_s`` passed.

Turning the switch on is an emergency brake: it succeeds when either side takes
the change (the other is brought up to date when it answers again) and fails,
loudly, only when neither does.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError

from cronwarden.errors import BackendUnavailable
from cronwarden.ports import Clock, KillSwitch, KillSwitchState

LOGGER = logging.getLogger("cronwarden.killswitch")


class RedisKillSwitch:
    """The :class:`~cronwarden.ports.KillSwitch` shared through Redis, kept in ``durable``."""

    def __init__(
        self, client: Redis, prefix: str, durable: KillSwitch, clock: Clock, *,
        reconcile_s: float = 5.0,
    ) -> None:  # fmt: skip
        self._client, self._key, self._durable = client, f"{prefix}:killswitch", durable
        self._clock, self._reconcile_s = clock, reconcile_s
        self._reconciled_at: float | None = None

    async def state(self) -> KillSwitchState:
        try:
            raw = await self._client.get(self._key)
        except RedisError as err:
            return await self._durable_state(f"Redis did not answer: {err}")
        shared = None if raw is None else _decode(raw)
        due = (self._reconciled_at is None
               or self._clock.monotonic() - self._reconciled_at >= self._reconcile_s)  # fmt: skip
        if shared is not None and not due:
            return shared
        try:
            durable = await self._durable.state()
        except BackendUnavailable:
            if shared is None:  # never set anywhere we can read: off, as on a fresh store
                return KillSwitchState(active=False)
            return shared
        self._reconciled_at = self._clock.monotonic()
        newest = _newest(shared, durable)
        if newest != durable:
            await self._write_durable(newest)
        if newest != shared and newest.changed_at is not None:
            await self._write_shared(newest)
        return newest

    async def set(self, active: bool, actor: str, reason: str, at: datetime) -> KillSwitchState:
        state = KillSwitchState(active, actor, reason, at)
        shared = await self._write_shared(state)
        durable = await self._write_durable(state)
        if not (shared or durable):
            raise BackendUnavailable(
                "kill switch: neither Redis nor the store took the change; it is NOT set"
            )
        return state

    async def _durable_state(self, why: str) -> KillSwitchState:
        try:
            return await self._durable.state()
        except BackendUnavailable as err:
            raise BackendUnavailable(f"kill switch: {why}; the store: {err}") from err

    async def _write_shared(self, state: KillSwitchState) -> bool:
        try:
            await self._client.set(self._key, _encode(state))
        except RedisError as err:
            LOGGER.warning("kill switch: Redis did not take the change (%s); instances read "
                           "the store's copy until it does", err)  # fmt: skip
            return False
        return True

    async def _write_durable(self, state: KillSwitchState) -> bool:
        if state.changed_at is None:  # never set: nothing to keep
            return True
        try:
            await self._durable.set(state.active, state.actor, state.reason, state.changed_at)
        except BackendUnavailable as err:
            LOGGER.warning("kill switch: the store did not take the change (%s); it is copied "
                           "there when the store answers", err)  # fmt: skip
            return False
        return True


def _newest(shared: KillSwitchState | None, durable: KillSwitchState) -> KillSwitchState:
    """The later of two states by ``changed_at``; the shared one on a tie or without times."""
    if shared is None:
        return durable
    if durable.changed_at is None:
        return shared
    if shared.changed_at is None or durable.changed_at > shared.changed_at:
        return durable
    return shared


def _encode(state: KillSwitchState) -> str:
    return json.dumps({
        "active": state.active, "actor": state.actor, "reason": state.reason,
        "changed_at": state.changed_at.isoformat() if state.changed_at else None,
    })  # fmt: skip


def _decode(raw: bytes | str) -> KillSwitchState | None:
    """The state in Redis; ``None`` for a value this build cannot read (the store decides)."""
    try:
        value = json.loads(raw)
        changed = value.get("changed_at")
        return KillSwitchState(
            active=bool(value["active"]),
            actor=str(value.get("actor", "")),
            reason=str(value.get("reason", "")),
            changed_at=datetime.fromisoformat(changed) if changed else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
