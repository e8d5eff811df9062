"""The KillSwitch and Pauses contracts, run against every adapter: in memory, SQLite,
PostgreSQL, and the kill switch in Redis (kept in SQLite too)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis

from cronwarden.adapters.memory import MemoryKillSwitch, MemoryPauses
from cronwarden.adapters.redis_killswitch import RedisKillSwitch
from cronwarden.adapters.sql.controls import Cached, SqlKillSwitch, SqlPauses
from cronwarden.adapters.sql.store import SqlStore, sqlite_url
from cronwarden.ports import KillSwitch, KillSwitchState, Pauses
from cronwarden.testing import FakeClock

AT = datetime(2026, 3, 6, 14, 30, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", "postgresql", "redis"])
def controls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[KillSwitch, Pauses]]:
    if request.param == "memory":
        yield MemoryKillSwitch(), MemoryPauses()
        return
    if request.param == "postgresql":
        store = SqlStore(request.getfixturevalue("postgres_database"))
    else:
        store = SqlStore(sqlite_url(tmp_path / "state"))
    if request.param == "redis":
        # one client per event loop: each scenario runs in its own asyncio.run
        switch: KillSwitch = _RedisPerLoop(request.getfixturevalue("redis_url"), store)
    else:
        switch = SqlKillSwitch(store)
    yield switch, SqlPauses(store)
    store.close()


class _RedisPerLoop:
    """A :class:`RedisKillSwitch` under a prefix of its own, on a client per call."""

    def __init__(self, url: str, store: SqlStore) -> None:
        self._url, self._store = url, store
        self._prefix = f"cwtest-{secrets.token_hex(4)}"

    async def state(self) -> KillSwitchState:
        async with Redis.from_url(self._url) as client:
            return await self._switch(client).state()

    async def set(self, active: bool, actor: str, reason: str, at: datetime) -> KillSwitchState:
        async with Redis.from_url(self._url) as client:
            return await self._switch(client).set(active, actor, reason, at)

    def _switch(self, client: Redis) -> RedisKillSwitch:
        return RedisKillSwitch(client, self._prefix, SqlKillSwitch(self._store), FakeClock())


def test_the_kill_switch_starts_off_and_records_each_change(
    controls: tuple[KillSwitch, Pauses],
) -> None:
    switch, _ = controls

    async def scenario() -> None:
        assert not (await switch.state()).active
        await switch.set(True, "alice", "exchange outage", AT)
        on = await switch.state()
        assert (on.active, on.actor, on.reason, on.changed_at) == (
            True,
            "alice",
            "exchange outage",
            AT,
        )
        await switch.set(False, "bob", "resolved", AT)
        assert not (await switch.state()).active

    asyncio.run(scenario())


def test_pauses_are_per_task(controls: tuple[KillSwitch, Pauses]) -> None:
    _, pauses = controls

    async def scenario() -> None:
        assert not await pauses.paused("a")
        await pauses.set_paused("a", True, "alice", "investigating", AT)
        await pauses.set_paused("b%_", True, "alice", "", AT)  # LIKE wildcards are literal
        assert await pauses.paused("a") and not await pauses.paused("b")
        assert await pauses.paused_tasks() == {"a", "b%_"}
        await pauses.set_paused("a", False, "alice", "", AT)
        assert not await pauses.paused("a")
        assert await pauses.paused_tasks() == {"b%_"}

    asyncio.run(scenario())


def test_sql_controls_are_shared_by_every_process_on_the_database(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "state")
    cli, daemon = SqlStore(url), SqlStore(url)
    asyncio.run(SqlKillSwitch(cli).set(True, "alice", "drill", AT))
    assert asyncio.run(SqlKillSwitch(daemon).state()).active
    cli.close()
    daemon.close()


def test_cached_controls_see_a_change_within_their_ttl(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SqlStore(sqlite_url(tmp_path / "state"))
    other = SqlStore(sqlite_url(tmp_path / "state"))  # another process: the CLI
    cached = Cached(SqlKillSwitch(store), SqlPauses(store), clock, ttl_s=0.5)

    async def scenario() -> None:
        assert not (await cached.state()).active and not await cached.paused("a")
        await SqlKillSwitch(other).set(True, "cli", "drill", AT)
        await SqlPauses(other).set_paused("a", True, "cli", "", AT)
        assert not (await cached.state()).active  # within the TTL: the last read stands
        clock.advance(0.5)
        assert (await cached.state()).active and await cached.paused("a")

    asyncio.run(scenario())
    store.close()
    other.close()


def test_kept_fresh_controls_answer_fires_without_reading_the_store(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SqlStore(sqlite_url(tmp_path / "state"))
    other = SqlStore(sqlite_url(tmp_path / "state"))
    reads: list[str] = []

    class CountingPauses(SqlPauses):
        async def paused_tasks(self) -> frozenset[str]:
            reads.append("pauses")
            return await super().paused_tasks()

    cached = Cached(SqlKillSwitch(store), CountingPauses(store), clock, ttl_s=0.5)

    async def scenario() -> None:
        stop = asyncio.Event()
        keeper = asyncio.create_task(cached.keep_fresh(stop))
        await asyncio.sleep(0)
        await SqlPauses(other).set_paused("a", True, "cli", "", AT)
        for _ in range(4):  # a second of fires, every 0.25 s
            clock.advance(0.25)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            await cached.paused_tasks()
        assert await cached.paused("a")  # seen within the TTL
        fired_reads = len(reads)
        await cached.paused_tasks()
        assert len(reads) == fired_reads  # the fire itself read nothing
        stop.set()
        clock.advance(0.25)
        await asyncio.wait_for(keeper, timeout=5)

    asyncio.run(scenario())
    store.close()
    other.close()
