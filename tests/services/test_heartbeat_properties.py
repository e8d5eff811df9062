"""Spec 002 §26's property tests, over any sequence of answers: every sweep produces a
report; every missed poll is counted, none silently dropped; a failed poll is never
healthy; no service is restarted more often than its budget allows in any window; a
page comes exactly when a service reaches the threshold.

The polls come from a scripted :class:`~cronwarden.ports.Prober` (what each service
answers, sweep by sweep): the properties are the watchdog's, not HTTP's, which the
other tests exercise for real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from cronwarden.core.liveness import poll_in_lanes
from cronwarden.core.report import EventType, OperationsReport
from cronwarden.manifest.services import HeartbeatSettings, ServiceSpec
from cronwarden.ports import Poll
from cronwarden.services.heartbeat import HealthHeartbeat
from cronwarden.testing import FakeClock

OK = Poll(200, b'{"status": "ok"}')
FAILURES = (Poll(503, b"{}"), Poll(None, error="refused"), Poll(None, timed_out=True),
            Poll(200, b"not json"), Poll(200, b'{"status": "down"}'))  # fmt: skip


class ScriptedProber:
    def __init__(self) -> None:
        self.answers: dict[str, Poll] = {}
        self.polled = 0

    async def poll(self, url: str, timeout_s: float) -> Poll:
        self.polled += 1
        return self.answers[url]

    async def poll_many(self, targets: Sequence[tuple[str, float]], lanes: int) -> list[Poll]:
        return await poll_in_lanes(self.poll, targets, lanes)

    async def aclose(self) -> None:
        return None


answers = st.sampled_from((OK, *FAILURES))
scripts = st.lists(st.lists(answers, min_size=3, max_size=3), min_size=1, max_size=40)


@given(
    script=scripts,
    threshold=st.integers(1, 4),
    max_restarts=st.integers(0, 3),
    window_s=st.sampled_from([60.0, 600.0]),
    auto_restart=st.booleans(),
)
def test_every_sweep_reports_every_miss_counts_and_the_budget_holds(
    script: list[list[Poll]], threshold: int, max_restarts: int, window_s: float,
    auto_restart: bool,
) -> None:  # fmt: skip
    asyncio.run(_check(script, threshold, max_restarts, window_s, auto_restart))


async def _check(
    script: list[list[Poll]], threshold: int, max_restarts: int, window_s: float,
    auto_restart: bool,
) -> None:  # fmt: skip
    clock, prober = FakeClock(), ScriptedProber()
    services = [ServiceSpec(slug=f"s{n}", health_url=f"http://127.0.0.1/{n}",
                            restart_command=("true",)) for n in range(3)]  # fmt: skip
    settings = HeartbeatSettings.model_validate({
        "heartbeat_interval_s": 30, "missed_heartbeats_to_alert": threshold,
        "auto_restart": auto_restart,
        "restart_budget": {"max_restarts": max_restarts, "window_s": window_s}})  # fmt: skip
    reports: list[OperationsReport] = []
    restarts: dict[str, list[float]] = {s.slug: [] for s in services}

    async def record(batch: Sequence[OperationsReport]) -> None:
        reports.extend(batch)

    async def restart(service: ServiceSpec) -> str:
        restarts[service.slug].append(clock.monotonic())
        return "ok"

    heartbeat = HealthHeartbeat(clock, prober, lambda: (services, settings), record=record,
                                restart=restart)  # fmt: skip
    consecutive = {s.slug: 0 for s in services}
    misses_seen = {s.slug: 0 for s in services}
    for round_answers in script:
        for spec, answer in zip(services, round_answers, strict=True):
            prober.answers[spec.health_url] = answer
        before = len(reports)
        sweep = await heartbeat.sweep()
        await asyncio.sleep(0)  # let the restarts begun by this sweep run
        await asyncio.sleep(0)
        clock.advance(30)
        # every sweep: exactly one sweep report, and it is the last of its batch
        batch = reports[before:]
        sweeps = [r for r in batch if r.event_type is EventType.HEALTH_SWEEP_COMPLETE]
        assert sweeps == [sweep]
        missed = {entry["slug"] for entry in sweep.details["unhealthy_bots"]}
        for spec, answer in zip(services, round_answers, strict=True):
            failed = answer is not OK
            assert (spec.slug in missed) is failed  # a failed poll is never healthy
            consecutive[spec.slug] = consecutive[spec.slug] + 1 if failed else 0
            misses_seen[spec.slug] += failed
            downs = [r for r in batch if r.event_type is EventType.HEALTH_BOT_DOWN
                     and r.task_id == spec.slug]  # fmt: skip
            # a page exactly when the count reaches the threshold
            state = heartbeat.states[spec.slug]
            assert len(downs) <= 1
            if downs:
                assert downs[0].details["miss_count"] == threshold
            if state.last_action == "restarted" and failed:
                consecutive[spec.slug] = 0  # a restart starts the count again
            assert state.miss_count == consecutive[spec.slug]
        assert sweep.details["unhealthy_count"] == len(missed)
        assert sweep.details["total_bots"] == 3
    for spec in services:
        # every miss counted, none dropped
        assert heartbeat.states[spec.slug].misses_total == misses_seen[spec.slug]
        # never more than the budget's restarts in any window
        times = restarts[spec.slug]
        for index, start in enumerate(times):
            inside = [t for t in times[index:] if t - start < window_s]
            assert len(inside) <= max_restarts
        if not auto_restart:
            assert times == []
    assert prober.polled == 3 * len(script)
