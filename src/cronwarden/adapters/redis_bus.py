"""The Redis Streams bus: each topic a stream ``{prefix}:stream:{topic}``.

* ``publish`` is one ``XADD`` (``MAXLEN ~`` keeps the stream bounded).
* ``consume`` reads through a consumer group: each trigger goes to one worker. A
  delivery stays pending until the worker acknowledges it, which it does once the run
  records are stored. While a worker handles a delivery it keeps the entry's idle
  time at zero (``XCLAIM … JUSTID``), so a long run is never taken from a live worker;
  an entry whose worker stopped (a kill, a crash) goes idle and is reclaimed by
  another worker with ``XAUTOCLAIM`` after ``idle_ms``. An entry delivered more than
  ``max_deliveries`` times is moved to ``{stream}:dead`` and acknowledged: one poison
  trigger cannot stop a pool.
* ``subscribe`` reads the stream from the first read on, without a group (every
  subscriber sees every message): ``ops.reports`` for outside consumers.

A Redis that cannot be reached is a :class:`~cronwarden.errors.BackendUnavailable` on
publish; consumers log it once, wait and try again, and never die of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from cronwarden.errors import BackendUnavailable
from cronwarden.ports import Delivery

LOGGER = logging.getLogger("cronwarden.bus")
DEFAULT_PREFIX = "cronwarden"
CONSUMER_CLEANUP_EVERY_S = 600.0
CONSUMER_FORGOTTEN_AFTER_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class StreamSettings:
    prefix: str = DEFAULT_PREFIX
    #: Entries kept per stream (approximately: ``MAXLEN ~``).
    max_len: int = 100_000
    #: A pending entry untouched this long belonged to a consumer that stopped.
    idle_ms: int = 30_000
    #: Deliveries after which an entry is a dead letter.
    max_deliveries: int = 5
    #: Entries one consumer holds unacknowledged at most; it reads no more until one ends.
    max_in_flight: int = 16
    #: How long one read waits for new entries.
    block_ms: int = 1_000


class RedisStreamBus:
    """Topics as Redis streams, consumer groups for workers, dead letters for poison."""

    def __init__(self, client: Redis, settings: StreamSettings | None = None) -> None:
        self.client = client
        self.settings = settings or StreamSettings()
        self._max_len = self.settings.max_len

    async def aclose(self) -> None:
        await self.client.aclose()

    def stream(self, topic: str) -> str:
        return f"{self.settings.prefix}:stream:{topic}"

    def dead_letters(self, topic: str) -> str:
        return f"{self.stream(topic)}:dead"

    async def publish(self, topic: str, payload: Mapping[str, Any]) -> None:
        body = json.dumps(dict(payload), default=str, separators=(",", ":"))
        try:
            await self.client.xadd(self.stream(topic), {"data": body}, maxlen=self._max_len,
                                    approximate=True)  # fmt: skip
        except RedisError as err:
            raise BackendUnavailable(f"bus: Redis refused a publish on {topic!r}: {err}") from err

    async def publish_many(self, topic: str, payloads: Sequence[Mapping[str, Any]]) -> None:
        """Every ``XADD`` in one pipeline: one round trip for a batch's reports."""
        if not payloads:
            return
        stream = self.stream(topic)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for payload in payloads:
                    body = json.dumps(dict(payload), default=str, separators=(",", ":"))
                    pipe.xadd(stream, {"data": body}, maxlen=self._max_len, approximate=True)
                await pipe.execute()
        except RedisError as err:
            raise BackendUnavailable(f"bus: Redis refused publishes on {topic!r}: {err}") from err

    async def ensure_group(self, topic: str, group: str, *, from_start: bool = False) -> None:
        """Create ``group`` on ``topic`` if it does not exist: from the newest entry on,
        or with ``from_start`` from the oldest the stream still holds.

        The scheduler creates it (from the newest) before its first publish, so that
        triggers published while no worker runs wait for the group. A consumer that
        finds no group (Redis restarted and lost it) creates it from the start: the
        stream then holds only what was published since.
        """
        try:
            start = "0" if from_start else "$"
            await self.client.xgroup_create(self.stream(topic), group, id=start, mkstream=True)
        except ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise BackendUnavailable(f"bus: cannot create group {group!r}: {err}") from err
        except RedisError as err:
            raise BackendUnavailable(f"bus: cannot create group {group!r}: {err}") from err

    def subscribe(self, topic: str) -> AsyncIterator[dict[str, Any]]:
        return self._follow(self.stream(topic))

    async def _follow(self, stream: str) -> AsyncIterator[dict[str, Any]]:
        last = await self._last_id(stream)  # then concrete ids: nothing lost between reads
        while True:
            try:
                answer: Any = await self.client.xread({stream: last}, count=100,
                                                 block=self.settings.block_ms)  # fmt: skip
            except RedisError as err:
                _raise_if_cancelled()
                LOGGER.warning("bus: reading %s failed (%s); retrying", stream, err)
                await asyncio.sleep(1)
                continue
            for _name, entries in answer or ():
                for entry_id, fields in entries:
                    last = _text(entry_id)
                    yield _payload(fields)

    async def _last_id(self, stream: str) -> str:
        while True:
            try:
                newest: Any = await self.client.xrevrange(stream, count=1)
            except RedisError as err:
                _raise_if_cancelled()
                LOGGER.warning("bus: reading %s failed (%s); retrying", stream, err)
                await asyncio.sleep(1)
                continue
            return _text(newest[0][0]) if newest else "0-0"

    def consume(self, topic: str, group: str, consumer: str) -> AsyncGenerator[Delivery, None]:
        return _Consumer(self, topic, group, consumer).deliveries()


class _Consumer:
    """One consumer of a group: reads new entries, reclaims idle ones, keeps its own
    entries fresh while they are handled."""

    def __init__(self, bus: RedisStreamBus, topic: str, group: str, name: str) -> None:
        self._bus, self._topic, self._group, self._name = bus, topic, group, name
        self._stream, self._client, self._settings = bus.stream(topic), bus.client, bus.settings
        self._in_flight: set[str] = set()
        self._room = asyncio.Event()
        self._room.set()
        self._warned = False
        self._cursor = "0-0"
        self._next_cleanup = 0.0

    async def deliveries(self) -> AsyncGenerator[Delivery, None]:
        keeper = asyncio.ensure_future(self._keep_fresh())
        have_group = False
        try:
            while True:
                await self._room.wait()
                try:
                    if not have_group:
                        await self._bus.ensure_group(self._topic, self._group, from_start=True)
                        have_group = True
                    batch = await self._reclaimed() or await self._new()
                except (RedisError, BackendUnavailable) as err:
                    _raise_if_cancelled()
                    have_group = False  # NOGROUP after a restart that lost it, among others
                    await self._unavailable(err)
                    continue
                if self._warned:
                    LOGGER.warning("bus: Redis is back; consuming %s again", self._stream)
                    self._warned = False
                for delivery in batch:
                    yield delivery
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _new(self) -> list[Delivery]:
        room = self._settings.max_in_flight - len(self._in_flight)
        answer: Any = await self._client.xreadgroup(
            self._group, self._name, {self._stream: ">"}, count=max(room, 1),
            block=self._settings.block_ms,
        )  # fmt: skip
        found = []
        for _name, entries in answer or ():
            for entry_id, fields in entries:
                found.append(self._delivery(_text(entry_id), fields, 1))
        return found

    async def _reclaimed(self) -> list[Delivery]:
        """Entries other consumers left idle for longer than the idle time."""
        room = self._settings.max_in_flight - len(self._in_flight)
        await self._forget_old_consumers()
        answer: Any = await self._client.xautoclaim(
            self._stream, self._group, self._name, min_idle_time=self._settings.idle_ms,
            start_id=self._cursor, count=max(room, 1),
        )  # fmt: skip
        self._cursor = _text(answer[0]) if answer and answer[0] else "0-0"  # "0-0": scanned
        entries = answer[1] if len(answer) > 1 else []
        found = []
        for entry_id, fields in entries:
            if entry_id is None:  # Redis 6.2 answers nil for an entry trimmed away
                continue
            entry = _text(entry_id)
            if fields is None:  # trimmed away while pending
                await self._client.xack(self._stream, self._group, entry)
                continue
            pending = await self._client.xpending_range(self._stream, self._group, min=entry,
                                                        max=entry, count=1)  # fmt: skip
            times = int(pending[0]["times_delivered"]) if pending else 2
            if times > self._settings.max_deliveries:
                await self._dead_letter(entry, fields, times)
                continue
            LOGGER.warning("bus: %s %s reclaimed from a stopped consumer (delivery %d)",
                           self._stream, entry, times)  # fmt: skip
            found.append(self._delivery(entry, fields, times))
        return found

    async def _dead_letter(self, entry: str, fields: Mapping[Any, Any], times: int) -> None:
        dead: dict[Any, Any] = {"data": _text(fields.get(b"data", fields.get("data", b"{}"))),
                "id": entry, "deliveries": str(times), "group": self._group}  # fmt: skip
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.xadd(self._bus.dead_letters(self._topic), dead, maxlen=self._settings.max_len,
                      approximate=True)  # fmt: skip
            pipe.xack(self._stream, self._group, entry)
            await pipe.execute()
        LOGGER.error("bus: %s %s delivered %d times; moved to %s", self._stream, entry, times,
                     self._bus.dead_letters(self._topic))  # fmt: skip

    async def _forget_old_consumers(self) -> None:
        """Remove the group's consumers that hold nothing and were idle for an hour:
        each restarted worker joins under a new name, and the old ones would pile up."""
        now = time.monotonic()
        if now < self._next_cleanup:
            return
        self._next_cleanup = now + CONSUMER_CLEANUP_EVERY_S
        consumers: Any = await self._client.xinfo_consumers(self._stream, self._group)
        for consumer in consumers:
            name = _text(consumer["name"])
            if (name != self._name and int(consumer["pending"]) == 0
                    and int(consumer["idle"]) > CONSUMER_FORGOTTEN_AFTER_MS):  # fmt: skip
                await self._client.xgroup_delconsumer(self._stream, self._group, name)

    def _delivery(self, entry: str, fields: Mapping[Any, Any], times: int) -> Delivery:
        self._in_flight.add(entry)
        if len(self._in_flight) >= self._settings.max_in_flight:
            self._room.clear()

        async def ack() -> None:
            self._release(entry)
            try:
                await self._client.xack(self._stream, self._group, entry)
            except RedisError as err:  # redelivered later; the run key keeps it from re-running
                LOGGER.warning("bus: ack of %s failed: %s", entry, err)

        async def nack() -> None:
            self._release(entry)

        return Delivery(_payload(fields), entry, times, ack, nack)

    def _release(self, entry: str) -> None:
        self._in_flight.discard(entry)
        if len(self._in_flight) < self._settings.max_in_flight:
            self._room.set()

    async def _keep_fresh(self) -> None:
        """Reset the idle time of the entries being handled, so none is taken from a
        consumer that is alive."""
        while True:
            await asyncio.sleep(self._settings.idle_ms / 3000)
            entries: list[Any] = list(self._in_flight)
            if not entries:
                continue
            try:
                await self._client.xclaim(self._stream, self._group, self._name,
                                          min_idle_time=0, message_ids=entries,
                                          justid=True)  # fmt: skip
            except RedisError as err:
                _raise_if_cancelled()
                LOGGER.warning("bus: cannot keep %d entries of %s: %s", len(entries),
                               self._stream, err)  # fmt: skip

    async def _unavailable(self, err: Exception) -> None:
        if not self._warned:
            LOGGER.warning("bus: Redis unavailable while consuming %s: %s; retrying",
                           self._stream, err)  # fmt: skip
            self._warned = True
        await asyncio.sleep(1)


def _raise_if_cancelled() -> None:
    """Re-raise a cancellation that a Redis command turned into a connection error.

    redis-py can answer a cancellation that lands inside a command by closing the
    connection and raising an error; a loop that retries on errors would swallow the
    cancellation and go on forever (a worker that never stops, a shutdown that hangs).
    The task still says it is being cancelled: then stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _payload(fields: Mapping[Any, Any]) -> dict[str, Any]:
    raw = fields.get(b"data", fields.get("data"))
    try:
        decoded = json.loads(raw) if raw is not None else {}
    except (TypeError, ValueError):
        decoded = {}
    return decoded if isinstance(decoded, dict) else {"value": decoded}
