"""The kill switch in Redis when Redis fails: a restart that keeps nothing on disk does
not forget it, an outage does not stop an operator from setting it, a copy that fell
behind is brought up to date (the newest change wins), and a change neither side took
fails loudly. A Redis of the test's own, real SQLite stores, the real CLI."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from private_redis import PrivateRedis
from redis.asyncio import Redis

from cronwarden.adapters.redis_client import connect
from cronwarden.adapters.redis_killswitch import RedisKillSwitch
from cronwarden.adapters.sql.controls import SqlKillSwitch
from cronwarden.adapters.sql.store import SqlStore, sqlite_url
from cronwarden.errors import BackendUnavailable
from cronwarden.testing import FakeClock

AT = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _switch(client: Redis, store: SqlStore, clock: FakeClock) -> RedisKillSwitch:
    return RedisKillSwitch(client, "cw", SqlKillSwitch(store), clock, reconcile_s=5)


def test_a_redis_restart_does_not_forget_the_kill_switch(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    store = SqlStore(sqlite_url(tmp_path / "state"))

    async def scenario() -> None:
        async with connect(private_redis.url) as client:
            await _switch(client, store, FakeClock()).set(True, "alice", "exchange halt", AT)
        private_redis.kill()
        private_redis.start()  # empty: it keeps nothing on disk
        async with connect(private_redis.url) as client:
            assert await client.get("cw:killswitch") is None
            state = await _switch(client, store, FakeClock()).state()
            assert (state.active, state.actor, state.changed_at) == (True, "alice", AT)
            assert json.loads(await client.get("cw:killswitch"))["active"] is True  # re-seeded

    try:
        asyncio.run(scenario())
    finally:
        store.close()


def test_during_an_outage_it_is_set_in_the_store_and_redis_catches_up(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    store = SqlStore(sqlite_url(tmp_path / "state"))
    clock = FakeClock()

    async def scenario() -> None:
        async with connect(private_redis.url) as client:
            switch = _switch(client, store, clock)
            await switch.set(False, "bob", "all clear", AT)
            assert not (await switch.state()).active
            private_redis.kill()
            on = await switch.set(True, "alice", "exchange halt", AT + timedelta(minutes=1))
            assert on.active
            assert (await switch.state()).active  # read from the store while Redis is down
            private_redis.start()
            # A Redis that missed the change (here: empty after its restart; a partitioned
            # one would hold the old value) is brought up to date at the next reconcile.
            await client.set("cw:killswitch", json.dumps(
                {"active": False, "actor": "bob", "reason": "all clear",
                 "changed_at": AT.isoformat()}))  # fmt: skip
            clock.advance(5)
            assert (await switch.state()).active
            assert json.loads(await client.get("cw:killswitch"))["actor"] == "alice"

    try:
        asyncio.run(scenario())
    finally:
        store.close()


def test_a_change_neither_redis_nor_the_store_took_fails_loudly(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    folder = tmp_path / "state"
    store = SqlStore(sqlite_url(folder))

    async def scenario() -> None:
        async with connect(private_redis.url) as client:
            switch = _switch(client, store, FakeClock())
            private_redis.kill()
            store.close()
            shutil.rmtree(folder)  # the database file is gone and cannot be made again
            with pytest.raises(BackendUnavailable, match="it is NOT set"):
                await switch.set(True, "alice", "exchange halt", AT)
            with pytest.raises(BackendUnavailable, match="Redis did not answer"):
                await switch.state()

    asyncio.run(scenario())


def test_the_cli_sets_the_kill_switch_every_daemon_reads(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text("tasks: []\n")
    env = {**os.environ, "CRONWARDEN_REDIS_URL": private_redis.url,
           "CRONWARDEN_REDIS_PREFIX": "fleet"}  # fmt: skip

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "cronwarden", *args, "--manifest",
                               str(manifest)], env=env, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "ON (by alice" in cli("killswitch", "on", "--reason", "halt", "--actor", "alice")

    async def in_redis() -> dict[str, object]:
        async with connect(private_redis.url) as client:
            return dict(json.loads(await client.get("fleet:killswitch")))

    assert asyncio.run(in_redis())["active"] is True
    private_redis.kill()
    private_redis.start()
    assert json.loads(cli("killswitch", "status", "--json"))["active"] is True
    assert asyncio.run(in_redis())["actor"] == "alice"  # put back from the store
    assert "redis, kept in the store too" in cli("status", "--http", "off")


def test_with_the_database_down_the_kill_switch_still_works_through_redis(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text("tasks: []\n")
    down = "postgresql://postgres@127.0.0.1:1/gone"  # nothing listens on port 1

    def cli(*args: str, redis: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CRONWARDEN_DATABASE_URL": down}
        if redis:
            env["CRONWARDEN_REDIS_URL"] = private_redis.url
        return subprocess.run([sys.executable, "-m", "cronwarden", *args, "--manifest",
                               str(manifest)], env=env, capture_output=True, text=True,
                              timeout=60)  # fmt: skip

    on = cli("killswitch", "on", "--reason", "exchange halt", "--actor", "alice")
    assert on.returncode == 0, on.stderr
    assert "ON (by alice" in on.stdout and "not in the history yet" in on.stderr
    status = cli("killswitch", "status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["active"] is True
    overview = cli("status", "--http", "off")
    assert overview.returncode == 0, overview.stderr
    assert "kill switch: ON (by alice" in overview.stdout
    assert "unreachable: store: cannot open the state database" in overview.stdout
    without_redis = cli("killswitch", "on", "--reason", "halt", redis=False)
    assert without_redis.returncode == 2
    assert without_redis.stderr.startswith("BACKEND_UNAVAILABLE: store: cannot open")
