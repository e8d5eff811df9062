"""Test helpers shipped with cronwarden: a fake clock that tests drive by hand, the
pipeline wired to in-memory adapters, and a throwaway PostgreSQL database."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import sqlalchemy
from sqlalchemy.engine import make_url

from cronwarden.adapters.memory import (
    LocalBus,
    MemoryKillSwitch,
    MemoryLock,
    MemoryPauses,
    MemoryStore,
)
from cronwarden.ports import Bus
from cronwarden.services.dispatch import Dispatcher


class FakeClock:
    """A :class:`~cronwarden.ports.Clock` that moves only when told to.

    ``advance`` moves wall and monotonic time together and wakes the sleepers
    whose time has come; ``jump`` moves only the wall clock, as an NTP step or a
    suspend and resume would.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._monotonic = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    async def sleep(self, seconds: float, *, precise: bool = False) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        wake = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._monotonic + seconds, wake))
        await wake

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._monotonic += seconds
        due = [(t, f) for t, f in self._sleepers if t <= self._monotonic]
        self._sleepers = [(t, f) for t, f in self._sleepers if t > self._monotonic]
        for _, future in due:
            if not future.done():
                future.set_result(None)

    def jump(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


def memory_dispatcher(
    clock: FakeClock,
    *,
    lock: MemoryLock | None = None,
    bus: Bus | None = None,
    store: MemoryStore | None = None,
    owner: str = "a",
) -> Dispatcher:
    """A :class:`~cronwarden.services.dispatch.Dispatcher` wired to in-memory adapters,
    publishing without retry delays."""
    return Dispatcher(
        clock=clock,
        lock=lock or MemoryLock(clock),
        bus=bus or LocalBus(),
        kill_switch=MemoryKillSwitch(),
        store=store or MemoryStore(),
        pauses=MemoryPauses(),
        owner=owner,
        retry_delay_s=0.0,
    )


@contextmanager
def fresh_database(admin_url: str, prefix: str = "cwtest") -> Iterator[str]:
    """The URL of a new, empty database on the PostgreSQL server of ``admin_url``,
    dropped (its connections closed) afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
