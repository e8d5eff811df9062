"""HealthHeartbeat against real HTTP endpoints on 127.0.0.1, on a fake clock: spec 002
§26's acceptance tests and §19's failure injections, sweep by sweep."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from cronwarden.adapters.http_probe import HttpProber
from cronwarden.adapters.memory import MemoryLock
from cronwarden.core.report import EventType, OperationsReport
from cronwarden.errors import CronwardenError
from cronwarden.manifest.services import HeartbeatSettings, ServiceSpec
from cronwarden.reasons import ReasonCode
from cronwarden.services.heartbeat import Action, HealthHeartbeat, Leadership
from cronwarden.testing import FakeClock
from health_server import HealthServer, closed_port_url, health_server, silent_port

pytestmark = pytest.mark.anyio


class Watch:
    """A watchdog over real endpoints, with what it recorded and restarted."""

    def __init__(self, services: Sequence[ServiceSpec], settings: HeartbeatSettings,
                 *, restart_fails: bool = False, kill_switch: bool = False) -> None:  # fmt: skip
        self.clock = FakeClock()
        self.services, self.settings = list(services), settings
        self.reports: list[OperationsReport] = []
        self.restarted: list[str] = []
        self.restart_fails = restart_fails
        self.prober = HttpProber(settings.max_in_flight)

        async def restart(service: ServiceSpec) -> str:
            self.restarted.append(service.slug)
            if self.restart_fails:
                raise CronwardenError("exit code 1", code="CRONWARDEN_RESTART_FAILED")
            return "ok"

        async def record(reports: Sequence[OperationsReport]) -> None:
            self.reports.extend(reports)

        async def active() -> bool:
            return kill_switch

        self.heartbeat = HealthHeartbeat(
            self.clock, self.prober, lambda: (self.services, self.settings), record=record,
            restart=restart, kill_switch_active=active,
        )  # fmt: skip

    async def sweep(self, advance_s: float | None = None) -> OperationsReport:
        report = await self.heartbeat.sweep()
        await asyncio.sleep(0.01)  # restarts run beside the sweep
        for _ in range(100):
            if not self.heartbeat._restarting:
                break
            await asyncio.sleep(0.01)
        self.clock.advance(self.settings.heartbeat_interval_s if advance_s is None else advance_s)
        return report

    def events(self, event: EventType, slug: str | None = None) -> list[OperationsReport]:
        return [r for r in self.reports
                if r.event_type is event and (slug is None or r.task_id == slug)]  # fmt: skip

    def state(self, slug: str) -> dict[str, Any]:
        return self.heartbeat.states[slug].to_dict()


@pytest.fixture
def server() -> Iterator[HealthServer]:
    with health_server() as running:
        yield running


def service(url: str, slug: str = "strat.some_strategy", **keys: Any) -> ServiceSpec:
    return ServiceSpec.model_validate({"slug": slug, "health_url": url,
                                       "restart_command": ["true"], **keys})  # fmt: skip


def settings(**keys: Any) -> HeartbeatSettings:
    return HeartbeatSettings.model_validate({"heartbeat_interval_s": 30, **keys})


# -- spec 002 §26, unit tests -----------------------------------------------------------


async def test_miss_count_increments_on_a_503_with_no_alert_below_threshold(
    server: HealthServer,
) -> None:
    url = server.answer("/internal/health/a", 503, {"status": "unavailable"})
    watch = Watch([service(url, "a")], settings())
    first = await watch.sweep()
    second = await watch.sweep()
    assert watch.state("a")["miss_count"] == 2
    assert watch.events(EventType.HEALTH_BOT_DOWN) == []
    assert watch.restarted == []
    assert first.details["unhealthy_bots"] == [
        {"slug": "a", "miss_count": 1, "action": Action.NONE, "error": "HTTP 503",
         "reason_code": ""}]  # fmt: skip
    assert second.details["unhealthy_count"] == 1
    await watch.prober.aclose()


async def test_the_alert_fires_at_the_threshold_and_the_restart_is_triggered(
    server: HealthServer,
) -> None:
    url = server.answer("/internal/health/a", 503)
    watch = Watch([service(url, "a")], settings())
    for _ in range(3):
        sweep = await watch.sweep()
    (down,) = watch.events(EventType.HEALTH_BOT_DOWN, "a")
    assert down.reason_code is ReasonCode.HEALTH_HEARTBEAT_BOT_DOWN
    assert down.bot_id == "gov.health_heartbeat"
    assert down.details["miss_count"] == 3 and down.details["alert"] == "page"
    assert down.details["message"] == ("A system component is not responding. The on-call "
                                       "team has been notified.")  # fmt: skip
    assert watch.restarted == ["a"]
    (restart,) = watch.events(EventType.HEALTH_AUTO_RESTART, "a")
    assert restart.details["restart_ok"] is True
    assert sweep.details["restarted_count"] == 1
    assert sweep.details["unhealthy_bots"][0]["action"] == "restarted"
    assert sweep.details["unhealthy_bots"][0]["miss_count"] == 3
    assert watch.state("a")["miss_count"] == 0  # starts again after a restart
    await watch.prober.aclose()


async def test_the_restart_budget_blocks_the_fourth_restart_in_ten_minutes(
    server: HealthServer,
) -> None:
    """Spec 002 §19 RESTART_BUDGET_EXHAUSTED: "Third restart fires; fourth missed threshold
    triggers HEALTH_HEARTBEAT_RESTART_BUDGET_EXHAUSTED; no further auto-restart"."""
    url = server.answer("/internal/health/a", 503)
    watch = Watch([service(url, "a")], settings())
    for _ in range(12):  # four thresholds of three misses, 6 minutes
        await watch.sweep()
    assert watch.restarted == ["a", "a", "a"]
    (exhausted,) = watch.events(EventType.HEALTH_RESTART_BUDGET_EXHAUSTED, "a")
    assert exhausted.details["restarts_in_window"] == 3
    assert exhausted.details["alert"] == "page"
    assert len(watch.events(EventType.HEALTH_BOT_DOWN, "a")) == 4
    for _ in range(3):  # still failing, still inside the window: no restart, no second page
        sweep = await watch.sweep()
    assert watch.restarted == ["a", "a", "a"]
    assert len(watch.events(EventType.HEALTH_RESTART_BUDGET_EXHAUSTED)) == 1
    assert sweep.details["unhealthy_bots"][0]["action"] == Action.BUDGET_EXHAUSTED
    assert watch.state("a")["status"] == "budget_exhausted"
    await watch.prober.aclose()


async def test_the_budget_is_a_sliding_window_a_slot_frees_when_a_restart_leaves_it(
    server: HealthServer,
) -> None:
    url = server.answer("/internal/health/a", 503)
    watch = Watch([service(url, "a", )], settings(missed_heartbeats_to_alert=1,
                                                  heartbeat_interval_s=10))  # fmt: skip
    await watch.sweep(advance_s=10)  # restart at t=0
    await watch.sweep(advance_s=290)  # t=10
    await watch.sweep(advance_s=10)  # t=300
    assert len(watch.restarted) == 3
    await watch.sweep(advance_s=290)  # t=310: exhausted (the spec's fixed window agrees)
    assert len(watch.restarted) == 3
    await watch.sweep(advance_s=10)  # t=600: the t=0 restart left the window
    assert len(watch.restarted) == 4
    await watch.sweep(advance_s=10)  # t=610: the t=10 one left too
    assert len(watch.restarted) == 5
    await watch.sweep(advance_s=10)  # t=620: 300, 600, 610 are inside the window
    assert len(watch.restarted) == 5
    await watch.prober.aclose()


async def test_miss_count_resets_on_recovery_after_two_misses(server: HealthServer) -> None:
    url = server.answer("/internal/health/a", 503)
    watch = Watch([service(url, "a")], settings())
    await watch.sweep()
    await watch.sweep()
    server.answer("/internal/health/a", 200, {"status": "ok"})
    sweep = await watch.sweep()
    (recovered,) = watch.events(EventType.HEALTH_BOT_RECOVERED, "a")
    assert recovered.reason_code is ReasonCode.HEALTH_HEARTBEAT_BOT_RECOVERED
    assert recovered.details["was_down"] is False and recovered.details["misses_before"] == 2
    assert recovered.details["alert"] == "none"  # a blip, not worth a page
    assert watch.state("a")["miss_count"] == 0 and watch.state("a")["status"] == "healthy"
    assert sweep.details["healthy_count"] == 1
    assert sweep.details["message"].startswith("All system components passed")
    await watch.prober.aclose()


async def test_a_recovery_from_down_is_alert_worthy(server: HealthServer) -> None:
    url = server.answer("/internal/health/a", 503)
    watch = Watch([service(url, "a")], settings(auto_restart=False))
    for _ in range(4):
        await watch.sweep()
    server.answer("/internal/health/a", 200)
    await watch.sweep()
    (recovered,) = watch.events(EventType.HEALTH_BOT_RECOVERED, "a")
    assert recovered.details["was_down"] is True and recovered.details["alert"] == "page"
    assert recovered.details["down_for_ms"] == 60_000
    assert recovered.details["message"] == "A component that was restarted is now healthy."
    assert watch.restarted == []  # auto_restart off: paged only
    await watch.prober.aclose()


# -- spec 002 §26, integration tests ----------------------------------------------------


async def test_a_sweep_of_97_services_completes_within_the_interval(
    server: HealthServer,
) -> None:
    services = [service(server.answer(f"/internal/health/bot{n}"), f"bot{n}") for n in range(97)]
    watch = Watch(services, settings())
    report = await watch.heartbeat.sweep()  # how fast: bench/health_sweep.py
    wire = report.to_dict()
    assert wire["total_bots"] == 97 and wire["healthy_count"] == 97
    assert wire["event_type"] == "HEALTH_SWEEP_COMPLETE"
    assert wire["report_id"] == f"ops_health_{report.fired_at_ms}"
    assert wire["report_kind"] == "OperationsReport"
    assert set(wire) >= {"bot_id", "total_bots", "healthy_count", "unhealthy_count",
                         "restarted_count", "sweep_duration_ms", "unhealthy_bots",
                         "fired_at_ms"}  # fmt: skip
    assert all(server.hits[f"/internal/health/bot{n}"] == 1 for n in range(97))
    await watch.prober.aclose()


async def test_polls_are_capped_at_max_in_flight(server: HealthServer) -> None:
    services = [service(server.answer(f"/h/{n}", delay_s=0.2), f"s{n}") for n in range(12)]
    watch = Watch(services, settings(max_in_flight=4))
    report = await watch.heartbeat.sweep()
    assert report.details["healthy_count"] == 12
    assert server.most_in_flight == 4  # 12 slow polls, never more than 4 at once
    await watch.prober.aclose()


# -- spec 002 §19, failure injections ---------------------------------------------------


async def test_endpoint_timeout_counts_a_miss_and_a_prompt_answer_resets_it(
    server: HealthServer,
) -> None:
    url = server.answer("/internal/health/slow", 200, delay_s=2.0)
    watch = Watch([service(url, "slow", timeout_s=0.3)], settings())
    sweep = await watch.sweep()
    (entry,) = sweep.details["unhealthy_bots"]
    assert entry["reason_code"] == "HEALTH_HEARTBEAT_ENDPOINT_TIMEOUT"
    assert "no answer" in entry["error"]
    assert watch.state("slow")["miss_count"] == 1
    server.answer("/internal/health/slow", 200)
    await watch.sweep()
    assert watch.state("slow")["miss_count"] == 0
    await watch.prober.aclose()


async def test_a_network_partition_is_never_healthy_and_alerts_at_the_threshold() -> None:
    with silent_port() as url:
        watch = Watch([service(url, "cut", timeout_s=0.2)], settings())
        for _ in range(3):
            sweep = await watch.sweep()
    assert [e["reason_code"] for e in sweep.details["unhealthy_bots"]] == [
        "HEALTH_HEARTBEAT_ENDPOINT_TIMEOUT"]  # fmt: skip
    assert len(watch.events(EventType.HEALTH_BOT_DOWN, "cut")) == 1
    assert watch.restarted == ["cut"]  # attempted, though it may not help
    await watch.prober.aclose()


async def test_a_refused_connection_is_a_miss() -> None:
    watch = Watch([service(closed_port_url(), "gone")], settings())
    sweep = await watch.sweep()
    assert sweep.details["unhealthy_bots"][0]["error"].startswith("unreachable: ")
    await watch.prober.aclose()


async def test_a_zombie_answering_200_with_a_stale_activity_time_is_a_miss(
    server: HealthServer,
) -> None:
    """Spec 002 §18's false negative: the endpoint answers, the bot stopped working."""
    watch = Watch([], settings())
    now_ms = int(watch.clock.now().timestamp() * 1000)
    url = server.answer("/internal/health/z", 200, {"status": "ok",
                        "last_decision_ms": now_ms - 600_000})  # fmt: skip
    watch.services = [service(url, "z", activity_field="last_decision_ms", max_staleness_s=120)]
    sweep = await watch.sweep()
    assert "zombie" in sweep.details["unhealthy_bots"][0]["error"]
    server.answer("/internal/health/z", 200, {"status": "ok", "last_decision_ms": now_ms + 20_000})
    assert (await watch.sweep()).details["healthy_count"] == 1
    await watch.prober.aclose()


@pytest.mark.parametrize(
    ("keys", "status", "raw", "healthy"),
    [
        ({}, 200, b"OK", False),  # spec 002 §23: a JSON body is required
        ({"expect_json": False}, 200, b"OK", True),
        ({"expect_json": False, "contains": "ready"}, 200, b"OK", False),
        ({}, 200, b'{"status": "degraded"}', False),
        ({}, 200, b'{"status": "UP"}', True),
        ({}, 200, b'{"uptime_s": 5}', True),  # no status field: the code and JSON suffice
        ({}, 204, b"", False),  # no body is no JSON
        ({"expected_status": [204], "expect_json": False}, 204, b"", True),
        ({}, 302, b'{"status": "ok"}', False),
        ({"json_path": "checks.db", "expected_value": "ok"}, 200,
         b'{"checks": {"db": "down"}}', False),
        ({"json_path": "checks.db", "expected_value": "ok"}, 200,
         b'{"checks": {"db": "ok"}}', True),
    ],
)  # fmt: skip
async def test_what_healthy_means(
    server: HealthServer, keys: dict[str, Any], status: int, raw: bytes, healthy: bool
) -> None:
    url = server.answer("/h", status, raw=raw)
    watch = Watch([service(url, "s", **keys)], settings())
    sweep = await watch.sweep()
    assert (sweep.details["healthy_count"] == 1) is healthy, sweep.details["unhealthy_bots"]
    await watch.prober.aclose()


# -- the rest of the contract -----------------------------------------------------------


async def test_the_kill_switch_is_in_the_sweep_report_and_polling_goes_on(
    server: HealthServer,
) -> None:
    watch = Watch([service(server.answer("/h"), "s")], settings(), kill_switch=True)
    sweep = await watch.sweep()
    assert sweep.details["kill_switch_active"] is True
    assert sweep.details["context_reason_codes"] == ["KILL_SWITCH_ACTIVE"]
    assert sweep.details["healthy_count"] == 1
    await watch.prober.aclose()


async def test_a_failed_restart_is_recorded_and_counts_against_the_budget(
    server: HealthServer,
) -> None:
    watch = Watch([service(server.answer("/h", 500), "s")], settings(), restart_fails=True)
    for _ in range(3):
        await watch.sweep()
    (restart,) = watch.events(EventType.HEALTH_AUTO_RESTART, "s")
    assert restart.details["restart_ok"] is False
    assert "exit code 1" in restart.details["restart_error"]
    assert watch.state("s")["restarts_in_window"] == 1
    await watch.prober.aclose()


async def test_a_service_without_a_way_to_restart_is_paged_only(server: HealthServer) -> None:
    spec = ServiceSpec(slug="s", health_url=server.answer("/h", 500))
    watch = Watch([spec], settings(missed_heartbeats_to_alert=1))
    sweep = await watch.sweep()
    assert sweep.details["unhealthy_bots"][0]["action"] == Action.NO_RESTART
    assert len(watch.events(EventType.HEALTH_BOT_DOWN)) == 1 and watch.restarted == []
    await watch.prober.aclose()


async def test_a_service_added_or_removed_by_a_reload_starts_at_zero(
    server: HealthServer,
) -> None:
    watch = Watch([service(server.answer("/a", 500), "a")], settings())
    await watch.sweep()
    watch.services = [service(server.answer("/b", 500), "b")]
    await watch.sweep()
    assert set(watch.heartbeat.states) == {"b"} and watch.state("b")["miss_count"] == 1
    await watch.prober.aclose()


async def test_own_health_is_green_after_a_sweep_and_red_after_two_intervals_without(
    server: HealthServer,
) -> None:
    watch = Watch([service(server.answer("/h"), "s")], settings(heartbeat_interval_s=10))
    watch.clock.advance(25)
    assert watch.heartbeat.health()["status"] == "red"  # none since start, 25 s > 2 × 10
    await watch.heartbeat.sweep()
    health = watch.heartbeat.health()
    assert health["status"] == "green" and health["total_bots"] == 1
    watch.clock.advance(19)
    assert watch.heartbeat.on_time()
    watch.clock.advance(2)
    assert watch.heartbeat.health()["status"] == "red"
    assert "last sweep 21 s ago" in watch.heartbeat.health()["problems"][0]
    assert not watch.heartbeat.on_time()
    await watch.prober.aclose()


async def test_only_the_instance_holding_the_lease_sweeps(server: HealthServer) -> None:
    clock = FakeClock()
    lock = MemoryLock(clock)
    reports: list[OperationsReport] = []

    async def record(batch: Sequence[OperationsReport]) -> None:
        reports.extend(batch)

    registry = ([service(server.answer("/h"), "s")], settings(heartbeat_interval_s=1))
    probers = [HttpProber(), HttpProber()]
    beats = [
        HealthHeartbeat(clock, prober, lambda: registry, record=record,
                        leadership=Leadership(lock, "cw:heartbeat:leader", f"i{n}"))
        for n, prober in enumerate(probers)
    ]  # fmt: skip
    stop = asyncio.Event()
    runs = [asyncio.ensure_future(beat.run(stop)) for beat in beats]
    for _ in range(5):
        for _ in range(20):
            await asyncio.sleep(0.005)
        clock.advance(1)
    stop.set()
    await asyncio.gather(*runs)
    sweeps = [beat.sweeps for beat in beats]
    assert sorted(sweeps)[0] == 0 and sorted(sweeps)[1] >= 3
    roles = {beat.health()["role"] for beat in beats}
    assert "standby" in roles
    for prober in probers:
        await prober.aclose()


async def test_an_operator_s_restart_pause_stops_restarts_but_not_pages(
    server: HealthServer,
) -> None:
    """Spec 002 §27: pause-restart while a crash loop is investigated."""
    watch = Watch([service(server.answer("/h", 500), "s")], settings(missed_heartbeats_to_alert=1))
    paused = {"heartbeat-restart:s", "some_task"}

    async def pauses() -> frozenset[str]:
        return frozenset(paused)

    watch.heartbeat._paused = pauses
    sweep = await watch.sweep()
    assert sweep.details["unhealthy_bots"][0]["action"] == Action.PAUSED
    assert watch.restarted == [] and len(watch.events(EventType.HEALTH_BOT_DOWN)) == 1
    paused.clear()
    await watch.sweep()
    assert watch.restarted == ["s"]
    await watch.prober.aclose()


async def test_a_body_the_judge_cannot_read_is_one_miss_and_the_sweep_goes_on(
    server: HealthServer,
) -> None:
    """A NaN activity time (JSON allows it) once failed the whole sweep."""
    zombie = server.answer("/z", raw=b'{"status": "ok", "last_decision_ms": NaN}')
    dead = closed_port_url()
    watch = Watch([service(zombie, "z", activity_field="last_decision_ms", max_staleness_s=60),
                   service(dead, "dead")], settings(missed_heartbeats_to_alert=1))  # fmt: skip
    sweep = await watch.sweep()
    assert {e["slug"] for e in sweep.details["unhealthy_bots"]} == {"z", "dead"}
    assert "not a time" in watch.state("z")["last_error"]
    assert len(watch.events(EventType.HEALTH_BOT_DOWN)) == 2
    await watch.prober.aclose()


async def test_a_threshold_lowered_below_the_count_pages_at_once(server: HealthServer) -> None:
    watch = Watch([service(server.answer("/h", 503), "s")],
                  settings(missed_heartbeats_to_alert=5, auto_restart=False))  # fmt: skip
    for _ in range(4):
        await watch.sweep()
    watch.settings = settings(missed_heartbeats_to_alert=3, auto_restart=False)  # a reload
    sweep = await watch.sweep()
    (down,) = watch.events(EventType.HEALTH_BOT_DOWN, "s")
    assert down.details["miss_count"] == 5 and sweep.details["down_count"] == 1
    await watch.sweep()
    assert len(watch.events(EventType.HEALTH_BOT_DOWN)) == 1  # paged once, not each sweep
    await watch.prober.aclose()


async def test_a_restart_still_running_is_neither_repeated_nor_repaged(
    server: HealthServer,
) -> None:
    watch = Watch([service(server.answer("/h", 503), "s")], settings(missed_heartbeats_to_alert=1))
    release = asyncio.Event()
    begun: list[str] = []

    async def slow_restart(spec: ServiceSpec) -> str:
        begun.append(spec.slug)
        await release.wait()
        return "ok"

    watch.heartbeat._restart = slow_restart
    first = await watch.heartbeat.sweep()
    second = await watch.heartbeat.sweep()
    third = await watch.heartbeat.sweep()
    assert first.details["unhealthy_bots"][0]["action"] == Action.RESTARTED
    assert [s.details["unhealthy_bots"][0]["action"] for s in (second, third)] == [
        Action.RESTARTING, Action.RESTARTING]  # fmt: skip
    assert begun == ["s"] and len(watch.events(EventType.HEALTH_BOT_DOWN)) == 1
    assert watch.state("s")["misses_total"] == 3  # still every miss counted
    release.set()
    for _ in range(50):
        await asyncio.sleep(0.01)
    assert watch.state("s")["miss_count"] == 0  # a whole threshold again after it
    assert len(watch.events(EventType.HEALTH_AUTO_RESTART)) == 1
    await watch.prober.aclose()


async def test_a_restart_that_was_not_needed_is_not_charged_to_the_budget(
    server: HealthServer,
) -> None:
    from cronwarden.services.heartbeat import NotRestarted

    watch = Watch([service(server.answer("/h", 503), "s")], settings(missed_heartbeats_to_alert=1))

    async def already(spec: ServiceSpec) -> str:
        raise NotRestarted("the supervisor is starting it already")

    watch.heartbeat._restart = already
    for _ in range(5):
        await watch.sweep()
    assert watch.state("s")["restarts_in_window"] == 0
    assert watch.events(EventType.HEALTH_AUTO_RESTART) == []
    assert watch.events(EventType.HEALTH_RESTART_BUDGET_EXHAUSTED) == []
    await watch.prober.aclose()
