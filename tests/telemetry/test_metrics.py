"""Spec 000's metrics: names under a configurable namespace, fed by reports."""

from __future__ import annotations

from cronwarden.core.report import EventType, OperationsReport
from cronwarden.reasons import ReasonCode
from cronwarden.services.health import NO_DISPATCH_RED_AFTER_MS, CronHealth
from cronwarden.telemetry.metrics import CronMetrics

SPEC_000_NAMES = [
    "polytraders_gov_cronrunner_tasks_dispatched_total",
    "polytraders_gov_cronrunner_tasks_suppressed_total",
    "polytraders_gov_cronrunner_duplicate_fire_total",
    "polytraders_gov_cronrunner_dispatch_latency_ms_bucket",
    "polytraders_gov_cronrunner_manifest_entries",
    "polytraders_gov_cronrunner_bus_failures_total",
]


def _report(event: EventType, reason: ReasonCode, **details: int) -> OperationsReport:
    return OperationsReport(event, "t", 1_000_000, ("x",), "tr_1", reason, details=details)


def _feed(metrics: CronMetrics) -> None:
    metrics.entries.set(3)
    metrics.observe(_report(EventType.DISPATCHED, ReasonCode.CRON_RUNNER_TASK_DISPATCHED),
                    "trading", 1_000_042)  # fmt: skip
    metrics.observe(_report(EventType.SUPPRESSED, ReasonCode.KILL_SWITCH_ACTIVE), "trading", 0)
    metrics.observe(_report(EventType.SUPPRESSED, ReasonCode.CRON_RUNNER_DUPLICATE_FIRE), "", 0)
    metrics.observe(_report(EventType.FAILED, ReasonCode.CRON_RUNNER_BUS_PUBLISH_FAILED), "", 0)
    metrics.observe(
        _report(EventType.MISSED, ReasonCode.CRON_RUNNER_MISSED_FIRE, missed_count=7), "", 0
    )


def test_the_spec_namespace_yields_exactly_the_specs_metric_names() -> None:
    metrics = CronMetrics("polytraders_gov")
    _feed(metrics)
    text = metrics.exposition().decode()
    for name in SPEC_000_NAMES:
        assert f"\n{name}" in text, name
    assert 'tasks_dispatched_total{task_class="trading",task_id="t"} 1.0' in text
    assert 'tasks_suppressed_total{reason="KILL_SWITCH_ACTIVE",task_id="t"} 1.0' in text
    assert 'dispatch_latency_ms_bucket{le="50.0",task_id="t"} 1.0' in text  # 42 ms
    assert 'dispatch_latency_ms_bucket{le="25.0",task_id="t"} 0.0' in text
    assert 'missed_fires_total{task_id="t"} 7.0' in text


def test_the_default_namespace_is_cronwarden() -> None:
    text = CronMetrics().exposition().decode()
    assert "cronwarden_cronrunner_manifest_entries" in text


def test_health_turns_red_when_nothing_is_dispatched_for_15_minutes_while_due() -> None:
    health = CronHealth(started_ms=0)
    health.observe(_report(EventType.MANIFEST_LOADED, ReasonCode.CRON_RUNNER_MANIFEST_RELOAD_OK),
                   0)  # fmt: skip
    health.observe(_report(EventType.DISPATCHED, ReasonCode.CRON_RUNNER_TASK_DISPATCHED), 1_000)
    assert health.snapshot(2_000)["status"] == "green"
    late = 1_000 + NO_DISPATCH_RED_AFTER_MS + 1
    health.observe(_report(EventType.FAILED, ReasonCode.CRON_RUNNER_BUS_PUBLISH_FAILED), late)
    snapshot = health.snapshot(late)
    assert snapshot["status"] == "red"
    assert snapshot["problems"] == ["no dispatch in 15 minutes while tasks were due"]
    assert (snapshot["total"], snapshot["successful"], snapshot["failed"]) == (2, 1, 1)
    assert snapshot["success_rate"] == 0.5


def test_health_is_red_while_the_manifest_has_problems_or_a_reload_failed() -> None:
    health = CronHealth(started_ms=0)
    ok, unreadable = (
        ReasonCode.CRON_RUNNER_MANIFEST_RELOAD_OK,
        ReasonCode.CRON_RUNNER_MANIFEST_UNREADABLE,
    )
    loaded = OperationsReport(EventType.MANIFEST_LOADED, "", 0, (), "tr", ok,
                              details={"tasks": ["a"], "problems": ["ERROR ..."]})  # fmt: skip
    health.observe(loaded, 0)
    assert health.snapshot(1)["status"] == "red"
    failed = OperationsReport(EventType.MANIFEST_RELOAD_FAILED, "", 0, (), "tr", unreadable,
                              details={"error": "not valid YAML"})  # fmt: skip
    health.observe(failed, 1)
    assert "manifest reload failed: not valid YAML" in health.snapshot(2)["problems"]


def test_health_warns_while_claims_fell_back_to_this_process_and_stays_green() -> None:
    down = [True]
    health = CronHealth(started_ms=0, lock_mode=lambda: "local" if down[0] else "redis",
                        shared_lock_down=lambda: down[0])  # fmt: skip
    snapshot = health.snapshot(1)
    assert (snapshot["status"], snapshot["lock_mode"]) == ("green", "local")
    assert snapshot["warnings"][0].startswith("REDIS_LOCK_UNAVAILABLE: claims are held")
    down[0] = False
    assert (health.snapshot(2)["lock_mode"], health.snapshot(2)["warnings"]) == ("redis", [])


def test_the_supervisor_s_workloads_are_read_at_each_scrape() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from cronwarden.telemetry.metrics import SupervisorCollector

    workloads = [{"name": "app", "state": "running", "restarts_total": 2,
                  "labels": {"workload_kind": "bot"}},
                 {"name": "db", "state": "failed", "restarts_total": 5, "labels": {}}]  # fmt: skip
    registry = CollectorRegistry()
    registry.register(SupervisorCollector(lambda: workloads, "polytraders_gov"))
    text = generate_latest(registry).decode()
    assert 'polytraders_gov_supervisor_workloads{state="running"} 1.0' in text
    assert 'polytraders_gov_supervisor_workloads{state="failed"} 1.0' in text
    assert 'polytraders_gov_supervisor_workload_up{workload="app",workload_kind="bot"} 1.0' in text
    assert 'polytraders_gov_supervisor_workload_up{workload="db",workload_kind=""} 0.0' in text
    assert 'polytraders_gov_supervisor_restarts_total{workload="db"} 5.0' in text
    workloads[0]["state"] = "backoff"
    assert 'workload_up{workload="app",workload_kind="bot"} 0.0' in generate_latest(
        registry).decode()  # fmt: skip
