"""The ports: every contract an adapter fulfils. Services talk only to these.

Each method's docstring is the contract, including what holds across several
instances; adapters (``cronwarden.adapters``) do not repeat it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class Clock(Protocol):
    """The one source of time. Only services read it; the core takes time as an argument."""

    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps; only differences mean anything."""
        ...

    async def sleep(self, seconds: float, *, precise: bool = False) -> None:
        """Return after ``seconds`` of this clock's time have passed; ``precise`` asks to
        wake as close to the deadline as the clock can (a fire is due then)."""
        ...


class Lock(Protocol):
    """Claims on keys with an owner and a time to live (spec 000: ``SET key NX PX ttl``).

    At most one owner holds a key at any moment, across every instance that
    shares the backend. A claim lapses after ``ttl_ms`` unless renewed.
    """

    @property
    def mode(self) -> str:
        """Where claims are held now: ``"redis"`` (shared by every instance) or
        ``"local"`` (this process only); each report carries it as ``lock_mode``."""
        ...

    async def claim(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Take ``key`` for ``owner``; ``False`` when another owner holds it.

        :raises BackendUnavailable: when the backend cannot be reached.
        """
        ...

    async def claim_many(self, keys: Sequence[str], owner: str, ttl_ms: int) -> list[bool]:
        """:meth:`claim` for each key, in order, in as few round trips as the backend allows.

        :raises BackendUnavailable: when the backend cannot be reached.
        """
        ...

    async def renew(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Extend ``owner``'s claim; ``False`` when ``owner`` no longer holds it."""
        ...

    async def release(self, key: str, owner: str) -> None:
        """Give ``key`` up if ``owner`` holds it; never frees another owner's claim."""
        ...


class Bus(Protocol):
    """Topics with at-least-once delivery to their subscribers."""

    async def publish(self, topic: str, payload: Mapping[str, Any]) -> None:
        """Publish ``payload``; return once the bus has accepted it.

        Returns or raises within the adapter's publish timeout (spec 000: 2 s): a
        networked bus uses its client's own timeout, any other is wrapped in
        :class:`~cronwarden.adapters.timed.TimedBus`.

        :raises BackendUnavailable: when the bus cannot accept it now, or did not
            answer within the timeout.
        """
        ...

    async def publish_many(self, topic: str, payloads: Sequence[Mapping[str, Any]]) -> None:
        """Publish each of ``payloads`` in order, in as few round trips as the bus
        allows (reports of a whole batch of fires).

        :raises BackendUnavailable: when one was not accepted (those before it may have
            been).
        """
        ...

    def subscribe(self, topic: str) -> AsyncIterator[dict[str, Any]]:
        """Every message published on ``topic`` after this call, in order, until the
        iterator is closed."""
        ...

    def consume(self, topic: str, group: str, consumer: str) -> AsyncGenerator[Delivery, None]:
        """The messages of ``topic`` shared among the consumers of ``group``: each
        message is delivered to one of them, from the group's creation on.

        A delivery not acknowledged (:attr:`Delivery.ack`) stays the consumer's while
        the consumer lives. When its consumer stops (a crash, a kill), the message is
        delivered again to another consumer of the group, with ``deliveries`` counting
        up; a message delivered too many times is set aside (dead-lettered) instead.
        """
        ...


async def _nothing_to_ack() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message taken from a topic by a consumer group; ack it once it is handled."""

    payload: dict[str, Any]
    message_id: str = ""
    #: 1 the first time; more when reclaimed from a consumer that stopped.
    deliveries: int = 1
    ack: Callable[[], Awaitable[None]] = _nothing_to_ack
    #: Give the message up unhandled: it is delivered again after the group's idle time.
    nack: Callable[[], Awaitable[None]] = _nothing_to_ack

    @property
    def redelivered(self) -> bool:
        return self.deliveries > 1


@dataclass(frozen=True, slots=True)
class KillSwitchState:
    """Whether the kill switch is on, and who turned it to this state, why and when."""

    active: bool
    actor: str = ""
    reason: str = ""
    changed_at: datetime | None = None


class KillSwitch(Protocol):
    """The shared kill-switch flag (spec 000: suppresses trading-class tasks)."""

    async def state(self) -> KillSwitchState:
        """The current state, as every instance sees it."""
        ...

    async def set(self, active: bool, actor: str, reason: str, at: datetime) -> KillSwitchState:
        """Turn the switch on or off, recording who, why and when; return the new state."""
        ...


class Outcome(StrEnum):
    """How a committed fire ended; a row without one is still open (in flight or orphaned)."""

    PUBLISHED = "published"  # every trigger was accepted by the bus
    FAILED = "failed"  # the bus refused it after the retries; not re-published
    MISSED = "missed"  # it could not be published inside its grace window


@dataclass(frozen=True, slots=True)
class DispatchRow:
    """The one shared record of a fire, written before its triggers are published."""

    task_id: str
    scheduled_at_ms: int
    trace_id: str
    owner: str
    targets: tuple[str, ...]
    outcome: Outcome | None = None
    touched_at_ms: int = 0  # when its owner last said it is still working on it


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One attempt of one target of one fire, as a worker ran it."""

    run_id: str
    task_id: str
    target: str
    trace_id: str
    scheduled_at_ms: int
    attempt: int
    status: str  # running | succeeded | failed | timed_out | cancelled | skipped
    started_at_ms: int
    finished_at_ms: int | None = None
    exit_code: int | None = None
    reason_code: str = ""
    error: str = ""
    output_tail: str = ""
    artifact_dir: str = ""
    #: How many times the trigger had been delivered when this attempt began: above 1,
    #: the trigger was taken over from a worker that stopped (a redelivery).
    deliveries: int = 1

    @property
    def duration_ms(self) -> int | None:
        return None if self.finished_at_ms is None else self.finished_at_ms - self.started_at_ms

    def to_dict(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in self.__slots__} | {
            "duration_ms": self.duration_ms}  # fmt: skip


class Store(Protocol):
    """Durable state: dispatch rows (the commit point of a fire) and the report log.

    A tick's fires go through it in two transactions, whatever their number: one
    commits their rows, one settles them with their reports.
    """

    async def commit_dispatches(self, rows: Sequence[DispatchRow], now_ms: int) -> list[bool]:
        """Record each row unless a row for its ``(task_id, scheduled_at_ms)`` exists.

        One transaction; the answer is per row, in order. Exactly one caller ever gets
        ``True`` for a ``(task_id, scheduled_at_ms)``, across every instance sharing
        the store; the others get ``False``.
        """
        ...

    async def settle(
        self,
        owner: str,
        outcomes: Sequence[tuple[str, int, Outcome]],
        reports: Sequence[Mapping[str, Any]],
        now_ms: int,
    ) -> None:
        """In one transaction: close ``owner``'s open rows ``(task_id, scheduled_at_ms,
        outcome)`` and append ``reports`` (OperationsReports, their wire shape) to the log.
        A row that is no longer open or no longer ``owner``'s is left as it is; a row
        another instance adopted meanwhile keeps the adopter's outcome, so the outcome
        report given here for it is not appended (one outcome per fire)."""
        ...

    async def touch(self, owner: str, keys: Sequence[tuple[str, int]], now_ms: int) -> None:
        """Say that ``owner`` is still working on its open rows ``keys`` (a heartbeat)."""
        ...

    async def open_rows(self, untouched_since_ms: int) -> list[DispatchRow]:
        """Open rows (no outcome) that their owner has not touched since
        ``untouched_since_ms``: fires whose instance stopped between commit and settle
        (the outbox), oldest instant first."""
        ...

    async def decided(self, keys: Sequence[tuple[str, int]]) -> set[tuple[str, int]]:
        """Which of ``keys`` (``(task_id, scheduled_at_ms)``) an instance has decided: a
        dispatch row, or an outcome report other than a duplicate's (a fire suppressed
        by the kill switch, a pause or quiet hours commits no row)."""
        ...

    async def adopt(self, row: DispatchRow, owner: str, now_ms: int) -> bool:
        """Take over an open row as ``owner``; ``True`` for exactly one caller, and only
        while the row is open, held by ``row.owner`` and untouched since it was read."""
        ...

    async def add_report(self, report: Mapping[str, Any], recorded_at_ms: int) -> None:
        """Append one OperationsReport (its wire shape) to the log."""
        ...

    async def begin_run(self, run: RunRecord) -> bool:
        """Record a run as it starts; ``False`` (and nothing recorded) when this attempt of
        ``(task_id, scheduled_at_ms, target)`` was already begun: the unique run key that
        makes a re-published trigger run at most once."""
        ...

    async def finish_run(self, run: RunRecord) -> None:
        """Record how the run ``run.run_id`` ended."""
        ...

    async def fire_runs(self, task_id: str, scheduled_at_ms: int, target: str) -> list[RunRecord]:
        """Every attempt recorded for one target of one fire, by attempt number."""
        ...

    async def runs(
        self, task_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[RunRecord]:
        """Runs, newest first, optionally of one task and in one status."""
        ...

    async def reports(
        self, task_id: str | None = None, since_ms: int | None = None, limit: int = 100,
        event_type: str | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Reports, newest first, optionally of one task, of one event type and recorded
        since ``since_ms``."""
        ...

    async def prune(self, recorded_before_ms: int) -> int:
        """Delete reports and settled dispatch rows older than the retention; return how many."""
        ...


class Pauses(Protocol):
    """Tasks an operator paused; a paused task's fires are suppressed and recorded."""

    async def paused(self, task_id: str) -> bool:
        """Whether ``task_id`` is paused now, as every instance sees it."""
        ...

    async def paused_tasks(self) -> frozenset[str]:
        """Every paused task id, as every instance sees it (one read for a whole tick)."""
        ...

    async def set_paused(
        self, task_id: str, paused: bool, actor: str, reason: str, at: datetime
    ) -> None:
        """Pause or resume ``task_id``, recording who, why and when."""
        ...


class Notifier(Protocol):
    """Delivers a notification to one channel (an apprise URL: email, Slack, Telegram,
    webhooks, ...)."""

    async def send(self, url: str, title: str, body: str, *, failure: bool) -> None:
        """Deliver, or raise :class:`~cronwarden.errors.BackendUnavailable` saying why."""
        ...


@dataclass(frozen=True, slots=True)
class Poll:
    """What one request to a health endpoint brought back."""

    status_code: int | None  # None: no answer (timeout or connection error)
    body: bytes = b""
    latency_ms: float = 0.0
    error: str = ""  # why there was no answer
    timed_out: bool = False


class Prober(Protocol):
    """Polls health endpoints (spec 002: ``GET /internal/health/<slug>``), many at once."""

    async def poll(self, url: str, timeout_s: float) -> Poll:
        """One GET of ``url``, answered or given up within ``timeout_s``. Never raises for
        the endpoint's failures (timeouts, refused or reset connections, bad answers): the
        :class:`Poll` says what happened."""
        ...

    async def poll_many(
        self, targets: Sequence[tuple[str, float]], max_in_flight: int
    ) -> list[Poll]:
        """:meth:`poll` each ``(url, timeout_s)``, at most ``max_in_flight`` at once; the
        polls in the order of ``targets``. Never raises for the endpoints' failures."""
        ...

    async def aclose(self) -> None:
        """Close the connections kept open between sweeps."""
        ...
