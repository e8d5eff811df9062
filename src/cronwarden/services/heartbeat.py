"""HealthHeartbeat (spec 002): poll every watched service, count consecutive misses,
page at the threshold, restart within a budget, and report every sweep.

1. Every ``heartbeat_interval_s`` the registry is polled at once, at most
   ``max_in_flight`` polls in flight, each bounded by its timeout.
2. Each poll is judged (:func:`cronwarden.core.liveness.judge`). A healthy one after
   any miss resets the count and records ``HEALTH_HEARTBEAT_BOT_RECOVERED`` (with
   ``was_down``). A miss adds one to the service's consecutive count.
3. When the count reaches ``missed_heartbeats_to_alert``: ``HEALTH_HEARTBEAT_BOT_DOWN``
   (a page) and, with ``auto_restart``, a restart if the service's budget allows one
   (``HEALTH_HEARTBEAT_AUTO_RESTART``); the count then starts again from 0, so each
   further restart needs another full threshold of misses (spec 002 §19). The budget
   is at most ``max_restarts`` in any ``window_s`` (a sliding window: the spec's
   fixed window could allow twice as many across its boundary); once spent,
   ``HEALTH_HEARTBEAT_RESTART_BUDGET_EXHAUSTED`` pages once, and no restart happens
   until a restart leaves the window.
4. After each sweep, the sweep report (``HEALTH_SWEEP_COMPLETE``, spec 002 §11);
   transitions and sweeps are recorded together.

Miss counts live in memory and start at 0 when the watchdog starts (spec 002 §20).
With several instances, one leads (a lease on the shared lock) and sweeps; the
others stand by and start from 0 if they take over.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cronwarden.core.liveness import Verdict, judge
from cronwarden.core.report import HEALTH_HEARTBEAT_BOT_ID, EventType, OperationsReport
from cronwarden.errors import CronwardenError
from cronwarden.manifest.services import HeartbeatSettings, ServiceSpec
from cronwarden.ports import Clock, Lock, Poll, Prober
from cronwarden.reasons import ReasonCode, reason, user_message
from cronwarden.services.scheduler import new_trace_id

LOGGER = logging.getLogger("cronwarden.heartbeat")

#: Restart a service; return what was done (one line), raise :class:`CronwardenError`
#: saying why it failed, or :class:`NotRestarted` when no restart was needed.
Restart = Callable[[ServiceSpec], Awaitable[str]]


class NotRestarted(CronwardenError):
    """The restart was not needed (the supervisor is starting the workload already):
    nothing was done, and the restart budget is not charged for it."""

    code = "HEALTH_HEARTBEAT_RESTART_NOT_NEEDED"


#: Store and hand on reports, in order.
Record = Callable[[Sequence[OperationsReport]], Awaitable[None]]
#: The registry and settings in force now (they follow manifest reloads).
Registry = Callable[[], tuple[Sequence[ServiceSpec], HeartbeatSettings]]


class Action:
    """What a sweep did about a service that missed (``unhealthy_bots[].action``)."""

    NONE = "none"  # below the threshold: counted, no alert (spec 002 §12 WARNING_ONLY)
    RESTARTED = "restarted"
    BUDGET_EXHAUSTED = "budget_exhausted"
    ALERTED = "alerted"  # down and paged; auto_restart is off
    NO_RESTART = "no_restart_configured"  # down and paged; it has no way to restart
    RESTARTING = "restart_in_progress"  # down; the last restart has not finished yet
    PAUSED = "restart_paused"  # down and paged; an operator paused its restarts


#: How much longer than ``restart_timeout_s`` a restart may take in all: a command past
#: its timeout is given its stop grace (5 s) before SIGKILL, and must still be reported
#: as stopped at its timeout rather than cut off here.
RESTART_STOP_MARGIN_S = 15.0
#: The pause an operator sets on a service's automatic restarts (``health pause-restart``)
#: is kept among the task pauses under this prefix and the slug.
RESTART_PAUSE_PREFIX = "heartbeat-restart:"


@dataclass
class ServiceState:
    """What the watchdog knows of one service since it started."""

    slug: str
    miss_count: int = 0
    down: bool = False  # reached the threshold and not healthy since
    status: str = "unknown"  # unknown | healthy | missed | down | budget_exhausted
    last_poll_ms: int | None = None
    last_ok_ms: int | None = None
    down_since_ms: int | None = None
    latency_ms: float | None = None
    last_error: str = ""
    restarts: deque[float] = field(default_factory=deque)  # monotonic times, in window
    restarts_total: int = 0
    misses_total: int = 0
    exhausted_said: bool = False
    last_action: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug, "status": self.status, "miss_count": self.miss_count,
            "down": self.down, "last_poll_ms": self.last_poll_ms, "last_ok_ms": self.last_ok_ms,
            "down_since_ms": self.down_since_ms, "latency_ms": self.latency_ms,
            "last_error": self.last_error, "restarts_in_window": len(self.restarts),
            "restarts_total": self.restarts_total, "misses_total": self.misses_total,
            "last_action": self.last_action,
        }  # fmt: skip


class Leadership:
    """Which instance sweeps: the holder of a lease on the shared lock, renewed every
    sweep. A lock that cannot be reached keeps the last answer."""

    def __init__(self, lock: Lock, key: str, owner: str) -> None:
        self._lock, self._key, self._owner = lock, key, owner
        self.held = False

    async def hold(self, ttl_ms: int) -> bool:
        try:
            if self.held and await self._lock.renew(self._key, self._owner, ttl_ms):
                return True
            self.held = await self._lock.claim(self._key, self._owner, ttl_ms)
        except CronwardenError as err:
            LOGGER.warning("heartbeat lease: %s; %s", err,
                           "sweeping on" if self.held else "standing by")  # fmt: skip
        return self.held

    async def release(self) -> None:
        if self.held:
            self.held = False
            try:
                await self._lock.release(self._key, self._owner)
            except CronwardenError:
                LOGGER.warning("heartbeat lease: not released; it lapses on its own")


class HealthHeartbeat:
    """The watchdog. ``sweep`` once, or ``run`` until stopped."""

    def __init__(
        self,
        clock: Clock,
        prober: Prober,
        registry: Registry,
        *,
        record: Record,
        restart: Restart | None = None,
        kill_switch_active: Callable[[], Awaitable[bool]] | None = None,
        after_sweep: Callable[[OperationsReport], Awaitable[None]] | None = None,
        leadership: Leadership | None = None,
        registry_problems: Callable[[], Sequence[str]] = tuple,
        paused: Callable[[], Awaitable[frozenset[str]]] | None = None,
    ) -> None:
        self._clock, self._prober, self._registry = clock, prober, registry
        self._record, self._restart = record, restart
        self._kill_switch_active, self._after_sweep = kill_switch_active, after_sweep
        self._leadership, self._registry_problems = leadership, registry_problems
        self.states: dict[str, ServiceState] = {}
        self.last_sweep: OperationsReport | None = None
        self._last_sweep_mono: float | None = None
        self._started_mono = clock.monotonic()
        self._restarting: dict[str, asyncio.Task[None]] = {}
        self.sweeps = 0
        self._paused = paused
        self._restarts_paused: frozenset[str] = frozenset()

    # -- one sweep ------------------------------------------------------------------

    async def sweep(self) -> OperationsReport:
        """Poll every service once, act on what was found, record the transitions and
        the sweep report; return the sweep report."""
        services, settings = self._registry()
        self._forget_unwatched(services)
        start_ms, started = self._now_ms(), self._clock.monotonic()
        await self._read_pauses()
        polls = await self._poll_all(services, settings)
        judged_ms = self._now_ms()
        transitions: list[OperationsReport] = []
        unhealthy: list[dict[str, Any]] = []
        restarted = 0
        for service, poll in zip(services, polls, strict=True):
            state = self.states.setdefault(service.slug, ServiceState(service.slug))
            verdict = _judged(service, poll, judged_ms)
            state.last_poll_ms, state.latency_ms = judged_ms, poll.latency_ms
            if verdict.healthy:
                self._healthy(service, state, start_ms, judged_ms, transitions)
                continue
            action, misses = self._missed(service, state, verdict, settings, start_ms,
                                          transitions)  # fmt: skip
            restarted += action == Action.RESTARTED
            unhealthy.append({"slug": service.slug, "miss_count": misses,
                              "action": action, "error": state.last_error,
                              "reason_code": str(verdict.reason_code or "")})  # fmt: skip
        report = await self._sweep_report(
            services, unhealthy, restarted, start_ms, (self._clock.monotonic() - started) * 1000
        )
        await self._keep([*transitions, report])
        self.last_sweep, self._last_sweep_mono = report, self._clock.monotonic()
        self.sweeps += 1
        if self._after_sweep is not None:
            await self._after_sweep(report)
        return report

    async def _poll_all(
        self, services: Sequence[ServiceSpec], settings: HeartbeatSettings
    ) -> list[Poll]:
        """Every service's poll, at most ``max_in_flight`` at once (spec 002 §21)."""
        interval = settings.heartbeat_interval_s
        targets = [(s.health_url, s.timeout_for(interval)) for s in services]
        try:
            return await self._prober.poll_many(targets, settings.max_in_flight)
        except Exception as err:  # a prober must not raise; if it did, every poll missed
            LOGGER.exception("heartbeat: the prober failed")
            return [Poll(None, error=f"{type(err).__name__}: {err}")] * len(services)

    def _healthy(
        self, service: ServiceSpec, state: ServiceState, start_ms: int, now_ms: int,
        transitions: list[OperationsReport],
    ) -> None:  # fmt: skip
        if state.miss_count or state.down:
            was_down = state.down
            details = {"was_down": was_down, "misses_before": state.miss_count,
                       "last_error": state.last_error, "alert": "page" if was_down else "none",
                       "down_for_ms": now_ms - state.down_since_ms
                       if state.down_since_ms is not None else None}  # fmt: skip
            transitions.append(self._transition(
                EventType.HEALTH_BOT_RECOVERED, ReasonCode.HEALTH_HEARTBEAT_BOT_RECOVERED,
                service, start_ms, details))  # fmt: skip
            (LOGGER.warning if was_down else LOGGER.info)(
                "%s recovered after %d miss(es)%s", service.slug, state.miss_count,
                " (it was down)" if was_down else "", extra={"slug": service.slug})  # fmt: skip
        state.miss_count, state.down, state.down_since_ms = 0, False, None
        state.exhausted_said, state.status, state.last_error = False, "healthy", ""
        state.last_ok_ms, state.last_action = now_ms, ""

    def _missed(
        self, service: ServiceSpec, state: ServiceState, verdict: Verdict,
        settings: HeartbeatSettings, start_ms: int, transitions: list[OperationsReport],
    ) -> tuple[str, int]:  # fmt: skip
        """Count a miss; what was done about it, and the count it reached (before a
        restart started it again)."""
        state.misses_total += 1
        state.last_error = verdict.error
        if service.slug in self._restarting:  # counted again from 0 once it has finished
            state.last_action = Action.RESTARTING
            return Action.RESTARTING, state.miss_count
        state.miss_count += 1
        counted = state.miss_count
        threshold = settings.missed_heartbeats_to_alert
        LOGGER.info("%s missed a heartbeat (%d of %d): %s", service.slug, state.miss_count,
                    threshold, verdict.error, extra={"slug": service.slug,
                    "event_type": str(EventType.HEALTH_BOT_MISS), "miss_count": state.miss_count,
                    "threshold": threshold, "last_seen_ms": state.last_ok_ms,
                    "reason_code": str(verdict.reason_code or "")})  # fmt: skip
        if state.miss_count < threshold:
            state.status = "down" if state.down else "missed"
            state.last_action = Action.NONE
            return Action.NONE, counted
        # At each crossing: the first, and again after each restart (spec 002 §19); a
        # threshold lowered by a reload below the count is a crossing too.
        if state.miss_count == threshold or not state.down:
            if not state.down:
                state.down_since_ms = start_ms
            state.down, state.status = True, "down"
            transitions.append(self._transition(
                EventType.HEALTH_BOT_DOWN, ReasonCode.HEALTH_HEARTBEAT_BOT_DOWN, service,
                start_ms, self._miss_details(service, state, threshold, "page")))  # fmt: skip
            LOGGER.error("PAGE %s: %s is down: %d consecutive misses; last: %s",
                         ReasonCode.HEALTH_HEARTBEAT_BOT_DOWN, service.slug, state.miss_count,
                         state.last_error, extra={"slug": service.slug})  # fmt: skip
        state.last_action = self._act(service, state, settings, start_ms, transitions)
        return state.last_action, counted

    def _act(
        self, service: ServiceSpec, state: ServiceState, settings: HeartbeatSettings,
        start_ms: int, transitions: list[OperationsReport],
    ) -> str:  # fmt: skip
        """What to do about a service at or past its threshold."""
        if not settings.auto_restart:
            return Action.ALERTED
        if not service.can_restart or self._restart is None:
            return Action.NO_RESTART
        if service.slug in self._restarting:
            return Action.RESTARTING
        if service.slug in self._restarts_paused:
            return Action.PAUSED
        budget = settings.restart_budget
        now = self._clock.monotonic()
        while state.restarts and now - state.restarts[0] >= budget.window_s:
            state.restarts.popleft()
        if len(state.restarts) < budget.max_restarts:
            state.restarts.append(now)
            state.restarts_total += 1
            state.miss_count, state.exhausted_said = 0, False
            self._restarting[service.slug] = asyncio.ensure_future(
                self._restart_one(service, state, settings, start_ms)
            )
            return Action.RESTARTED
        state.status = "budget_exhausted"
        if not state.exhausted_said:
            state.exhausted_said = True
            details = self._miss_details(service, state, settings.missed_heartbeats_to_alert,
                                         "page")  # fmt: skip
            details |= {"restarts_in_window": len(state.restarts),
                        "window_s": budget.window_s, "max_restarts": budget.max_restarts,
                        "next_restart_in_s": round(budget.window_s - (now - state.restarts[0]), 3)
                        if state.restarts else 0.0}  # fmt: skip
            transitions.append(self._transition(
                EventType.HEALTH_RESTART_BUDGET_EXHAUSTED,
                ReasonCode.HEALTH_HEARTBEAT_RESTART_BUDGET_EXHAUSTED, service, start_ms,
                details))  # fmt: skip
            LOGGER.error("PAGE %s: %s: %d restarts in %g s; no more until one leaves the window",
                         ReasonCode.HEALTH_HEARTBEAT_RESTART_BUDGET_EXHAUSTED, service.slug,
                         len(state.restarts), budget.window_s,
                         extra={"slug": service.slug})  # fmt: skip
        return Action.BUDGET_EXHAUSTED

    async def _restart_one(
        self, service: ServiceSpec, state: ServiceState, settings: HeartbeatSettings,
        start_ms: int,
    ) -> None:  # fmt: skip
        """Run the restart, then record it with how it went."""
        assert self._restart is not None
        began = self._clock.monotonic()
        details: dict[str, Any] = {"restarts_in_window": len(state.restarts),
                                   "max_restarts": settings.restart_budget.max_restarts,
                                   "window_s": settings.restart_budget.window_s,
                                   "last_error": state.last_error}  # fmt: skip
        try:
            async with asyncio.timeout(settings.restart_timeout_s + RESTART_STOP_MARGIN_S):
                details["restart"] = await self._restart(service)
            details["restart_ok"] = True
            LOGGER.warning("%s restarted: %s", service.slug, details["restart"],
                           extra={"slug": service.slug})  # fmt: skip
        except NotRestarted as err:
            if state.restarts:
                state.restarts.pop()  # not charged: nothing was restarted
            state.restarts_total -= 1
            LOGGER.info("%s: not restarted: %s", service.slug, err, extra={"slug": service.slug})
            return
        except Exception as err:  # a failed restart is recorded; the watchdog goes on
            why = f"{getattr(err, 'code', type(err).__name__)}: {err}"
            details |= {"restart_ok": False, "restart_error": why}
            LOGGER.error("%s: the restart failed: %s", service.slug, why,
                         extra={"slug": service.slug})  # fmt: skip
        finally:
            self._restarting.pop(service.slug, None)
            state.miss_count = 0  # the restarted service gets a whole threshold again
        details["restart_duration_ms"] = round((self._clock.monotonic() - began) * 1000, 1)
        await self._keep([self._transition(
            EventType.HEALTH_AUTO_RESTART, ReasonCode.HEALTH_HEARTBEAT_AUTO_RESTART, service,
            start_ms, details)])  # fmt: skip

    async def _sweep_report(
        self, services: Sequence[ServiceSpec], unhealthy: list[dict[str, Any]], restarted: int,
        start_ms: int, duration_ms: float,
    ) -> OperationsReport:  # fmt: skip
        kill_switch = await self._kill_switch()
        down = sum(1 for s in services if self.states[s.slug].down)
        details: dict[str, Any] = {
            "total_bots": len(services), "healthy_count": len(services) - len(unhealthy),
            "unhealthy_count": len(unhealthy), "restarted_count": restarted,
            "sweep_duration_ms": round(duration_ms, 1), "unhealthy_bots": unhealthy,
            "down_count": down, "kill_switch_active": kill_switch,
        }  # fmt: skip
        if kill_switch:  # spec 002 §14: surfaced for context; every service is still polled
            details["context_reason_codes"] = [str(ReasonCode.KILL_SWITCH_ACTIVE)]
        if not unhealthy:
            details["message"] = _all_healthy_message()
        return OperationsReport(
            event_type=EventType.HEALTH_SWEEP_COMPLETE, task_id="", fired_at_ms=start_ms,
            targets=(), trace_id=new_trace_id(), bot_id=HEALTH_HEARTBEAT_BOT_ID,
            reason_code=ReasonCode.HEALTH_HEARTBEAT_SWEEP_COMPLETE, details=details,
        )  # fmt: skip

    async def _read_pauses(self) -> None:
        """The slugs whose restarts an operator paused; the last known set while the
        store cannot be read."""
        if self._paused is None:
            return
        try:
            paused = await self._paused()
        except CronwardenError as err:
            LOGGER.warning("heartbeat: restart pauses unreadable, the last known kept: %s", err)
            return
        self._restarts_paused = frozenset(
            name.removeprefix(RESTART_PAUSE_PREFIX) for name in paused
            if name.startswith(RESTART_PAUSE_PREFIX)
        )  # fmt: skip

    async def _kill_switch(self) -> bool:
        if self._kill_switch_active is None:
            return False
        try:
            return await self._kill_switch_active()
        except CronwardenError:
            return False  # context only: a sweep never waits on the kill switch

    def _miss_details(
        self, service: ServiceSpec, state: ServiceState, threshold: int, alert: str
    ) -> dict[str, Any]:
        return {"miss_count": state.miss_count, "threshold": threshold,
                "last_error": state.last_error, "last_seen_ms": state.last_ok_ms,
                "severity": service.severity, "alert": alert, "tags": list(service.tags),
                "health_url": service.health_url}  # fmt: skip

    def _transition(
        self, event: EventType, code: ReasonCode, service: ServiceSpec, start_ms: int,
        details: dict[str, Any],
    ) -> OperationsReport:  # fmt: skip
        message = user_message(code)
        if message and not (code is ReasonCode.HEALTH_HEARTBEAT_BOT_RECOVERED
                            and not details.get("was_down")):  # fmt: skip
            details = {**details, "message": message}
        return OperationsReport(
            event_type=event, task_id=service.slug, fired_at_ms=start_ms, targets=(),
            trace_id=new_trace_id(), reason_code=code, bot_id=HEALTH_HEARTBEAT_BOT_ID,
            details=details,
        )  # fmt: skip

    async def _keep(self, reports: Sequence[OperationsReport]) -> None:
        try:
            await self._record(reports)
        except Exception:  # the store's trouble is reported elsewhere; sweeps go on
            LOGGER.exception("heartbeat: %d report(s) could not be recorded", len(reports))

    def _forget_unwatched(self, services: Sequence[ServiceSpec]) -> None:
        """A service removed from the registry is forgotten; an added one starts at 0."""
        watched = {service.slug for service in services}
        for slug in self.states.keys() - watched:
            del self.states[slug]

    # -- the loop -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every ``heartbeat_interval_s`` (from the start of one sweep to the start
        of the next; an overrunning sweep is followed at once) until ``stop``."""
        try:
            while not stop.is_set():
                _, settings = self._registry()
                interval = settings.heartbeat_interval_s
                began = self._clock.monotonic()
                if await self._leading(interval):
                    await self._sweep_safely()
                elapsed = self._clock.monotonic() - began
                if elapsed > interval:
                    LOGGER.warning("heartbeat: the sweep took %.1f s, longer than the %g s "
                                   "interval", elapsed, interval)  # fmt: skip
                await _sleep_or_stop(self._clock, max(interval - elapsed, 0.0), stop)
        finally:
            for task in list(self._restarting.values()):
                task.cancel()
            await asyncio.gather(*self._restarting.values(), return_exceptions=True)
            if self._leadership is not None:
                await self._leadership.release()

    async def _leading(self, interval: float) -> bool:
        if self._leadership is None:
            return True
        was = self._leadership.held
        held = await self._leadership.hold(int(interval * 3 * 1000))
        if held != was:
            LOGGER.warning("heartbeat: %s", "this instance sweeps now (miss counts start at 0)"
                           if held else "another instance sweeps; standing by")  # fmt: skip
            self.states.clear()
        return held

    async def _sweep_safely(self) -> None:
        try:
            await self.sweep()
        except Exception:  # the daemon never dies from a sweep; the dead-man notices
            LOGGER.exception("heartbeat: the sweep failed")

    # -- views ------------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        """Every service's state and the last sweep, for ``health status``."""
        last = self.last_sweep.to_dict() if self.last_sweep else None
        return {"self": self.health(), "services": [s.to_dict() for s in self.states.values()],
                "last_sweep": last}  # fmt: skip

    def health(self) -> dict[str, Any]:
        """The watchdog's own health (spec 002 §27): green while the last sweep is
        younger than twice the interval; red when none came in that time or the
        registry did not load."""
        _, settings = self._registry()
        interval, now = settings.heartbeat_interval_s, self._clock.monotonic()
        problems = [f"registry: {problem}" for problem in self._registry_problems()]
        standby = self._leadership is not None and not self._leadership.held
        age = None if self._last_sweep_mono is None else now - self._last_sweep_mono
        if not standby:
            if age is None and now - self._started_mono > 2 * interval:
                problems.append(f"no sweep in the {now - self._started_mono:.0f} s since start")
            elif age is not None and age > 2 * interval:
                problems.append(f"last sweep {age:.0f} s ago (more than 2 × {interval:g} s)")
        last = self.last_sweep.details if self.last_sweep else {}
        return {
            "status": "red" if problems else "green",
            "role": "standby" if standby else "sweeping",
            "problems": problems,
            "interval_s": interval,
            "last_sweep_age_s": None if age is None else round(age, 3),
            "last_sweep_ms": self.last_sweep.fired_at_ms if self.last_sweep else None,
            "sweeps": self.sweeps,
            "total_bots": last.get("total_bots"),
            "healthy_count": last.get("healthy_count"),
            "down_count": last.get("down_count"),
        }

    def on_time(self) -> bool:
        """Whether sweeps come on time (or this instance stands by): what the systemd
        watchdog is told."""
        if self._leadership is not None and not self._leadership.held:
            return True
        _, settings = self._registry()
        since = self._last_sweep_mono if self._last_sweep_mono is not None else self._started_mono
        return self._clock.monotonic() - since <= 2 * settings.heartbeat_interval_s

    async def aclose(self) -> None:
        """Close the prober's connections."""
        await self._prober.aclose()

    def _now_ms(self) -> int:
        return int(self._clock.now().timestamp() * 1000)


def _judged(service: ServiceSpec, poll: Poll, now_ms: int) -> Verdict:
    """The verdict on one poll; a body the judge cannot handle is a miss that says so,
    never a sweep that fails for every other service."""
    try:
        return judge(service, poll, now_ms)
    except Exception as err:  # one service's answer must not stop the watchdog
        LOGGER.exception("%s: its answer could not be judged", service.slug)
        return Verdict(False, None, f"answer could not be judged: {type(err).__name__}: {err}")


async def _sleep_or_stop(clock: Clock, seconds: float, stop: asyncio.Event) -> None:
    sleeping = asyncio.ensure_future(clock.sleep(seconds))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeping, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeping, stopping):
            task.cancel()
        await asyncio.gather(sleeping, stopping, return_exceptions=True)


def _all_healthy_message() -> str:
    """Spec 002 §17 "All bots healthy", which holds only when no service missed."""
    (situation,) = reason(ReasonCode.HEALTH_HEARTBEAT_SWEEP_COMPLETE).situations
    return situation.message
