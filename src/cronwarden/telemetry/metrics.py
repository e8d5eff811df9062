"""The CronRunner metrics of spec 000, in one registry.

Names are ``{namespace}_cronrunner_*``: the default namespace ``cronwarden``
gives ``cronwarden_cronrunner_tasks_dispatched_total``; ``polytraders_gov``
gives exactly the spec's names (``polytraders_gov_cronrunner_...``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from cronwarden.core.report import EventType, OperationsReport
from cronwarden.reasons import ReasonCode

#: Milliseconds; spec 000 pages above 500 at p99 and gates promotion at 100.
LATENCY_BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class CronMetrics:
    """Counters, gauge and histogram of spec 000, fed by OperationsReports."""

    def __init__(self, namespace: str = "cronwarden") -> None:
        self.registry = CollectorRegistry()
        self._prefix = f"{namespace}_cronrunner"
        self.dispatched = self._counter(
            "tasks_dispatched", "Total cron tasks dispatched successfully.", "task_id", "task_class"
        )
        self.suppressed = self._counter(
            "tasks_suppressed", "Tasks suppressed by a rule of the pipeline.", "reason", "task_id"
        )
        self.duplicates = self._counter(
            "duplicate_fire", "Duplicate dispatch attempts blocked by the lock.", "task_id"
        )
        self.latency = Histogram(
            f"{self._prefix}_dispatch_latency_ms",
            "Wall-clock latency from cron boundary to internal bus publish.",
            ["task_id"],
            buckets=LATENCY_BUCKETS_MS,
            registry=self.registry,
        )
        self.entries = Gauge(
            f"{self._prefix}_manifest_entries",
            "Number of active entries in the loaded cron manifest.",
            registry=self.registry,
        )
        self.bus_failures = self._counter(
            "bus_failures", "Internal bus publish failures for cron triggers.", "task_id"
        )
        self.missed = self._counter(
            "missed_fires", "Instants not fired within their misfire grace.", "task_id"
        )
        self.reports_waiting = Gauge(
            f"{self._prefix}_report_buffer_depth",
            "Reports held in memory because the store could not be reached.",
            registry=self.registry,
        )
        self.reports_dropped = Gauge(
            f"{self._prefix}_reports_dropped",
            "Reports given up since start because the store stayed unreachable past the "
            "buffer's capacity (each one logged at ERROR).",
            registry=self.registry,
        )

    def _counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(f"{self._prefix}_{name}", documentation, labels, registry=self.registry)

    def observe(self, report: OperationsReport, task_class: str, now_ms: int) -> None:
        """Count one report; ``now_ms`` is when its outcome was known."""
        task = report.task_id
        if report.event_type is EventType.DISPATCHED:
            self.dispatched.labels(task, task_class).inc()
            self.latency.labels(task).observe(max(now_ms - report.fired_at_ms, 0))
        elif report.reason_code is ReasonCode.CRON_RUNNER_DUPLICATE_FIRE:
            self.duplicates.labels(task).inc()
        elif report.event_type is EventType.SUPPRESSED:
            self.suppressed.labels(str(report.reason_code), task).inc()
        elif report.event_type is EventType.FAILED:
            self.bus_failures.labels(task).inc()
        elif report.event_type is EventType.MISSED:
            self.missed.labels(task).inc(int(report.details.get("missed_count", 1)))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


#: Milliseconds; spec 002 warns when a sweep's p99 is above 25,000.
SWEEP_BUCKETS_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 60000)


class HeartbeatMetrics:
    """The HealthHeartbeat metrics of spec 002 §15, fed by its reports, in the same
    registry and namespace as the CronRunner's (``{namespace}_healthheartbeat_*``)."""

    def __init__(self, registry: CollectorRegistry, namespace: str = "cronwarden") -> None:
        prefix = f"{namespace}_healthheartbeat"
        self.healthy = Gauge(
            f"{prefix}_bots_healthy",
            "Number of bots currently in healthy state.",
            registry=registry,
        )
        self.unhealthy = Gauge(
            f"{prefix}_bots_unhealthy",
            "Number of bots currently in unhealthy state (above miss threshold).",
            registry=registry,
        )
        self.restarts = Counter(
            f"{prefix}_restarts",
            "Total auto-restarts triggered per bot slug.",
            ["slug"],
            registry=registry,
        )
        self.misses = Counter(
            f"{prefix}_misses",
            "Total missed heartbeat polls per bot slug.",
            ["slug"],
            registry=registry,
        )
        self.sweep_duration = Histogram(
            f"{prefix}_sweep_duration_ms",
            "Wall-clock latency of a full sweep cycle.",
            buckets=SWEEP_BUCKETS_MS,
            registry=registry,
        )
        self.sweeps = Counter(f"{prefix}_sweeps", "Total sweep cycles completed.",
                              registry=registry)  # fmt: skip

    def observe(self, report: OperationsReport) -> None:
        details = report.details
        if report.event_type is EventType.HEALTH_SWEEP_COMPLETE:
            self.sweeps.inc()
            self.sweep_duration.observe(float(details.get("sweep_duration_ms", 0.0)))
            self.healthy.set(int(details.get("healthy_count", 0)))
            self.unhealthy.set(int(details.get("down_count", 0)))
            for entry in details.get("unhealthy_bots", ()):
                self.misses.labels(str(entry["slug"])).inc()
        elif report.event_type is EventType.HEALTH_AUTO_RESTART:
            self.restarts.labels(report.task_id).inc()


class SupervisorCollector:
    """The supervisor's workloads as metrics, read from its snapshot at each scrape:
    ``{namespace}_supervisor_workloads{state}`` (how many are in each state),
    ``{namespace}_supervisor_workload_up{workload,workload_kind}`` (1 while running) and
    ``{namespace}_supervisor_restarts_total{workload}`` (automatic restarts)."""

    STATES = ("starting", "running", "backoff", "hung", "stopped", "failed")

    def __init__(self, snapshot: Callable[[], list[dict[str, Any]]], namespace: str) -> None:
        self._snapshot, self._prefix = snapshot, f"{namespace}_supervisor"

    def collect(self) -> Iterator[Metric]:
        workloads = self._snapshot()
        states = GaugeMetricFamily(
            f"{self._prefix}_workloads", "Supervised workloads in each state.", labels=["state"]
        )
        for state in self.STATES:
            states.add_metric([state], sum(w["state"] == state for w in workloads))
        up = GaugeMetricFamily(
            f"{self._prefix}_workload_up",
            "1 while the workload runs.",
            labels=["workload", "workload_kind"],
        )
        restarts = CounterMetricFamily(f"{self._prefix}_restarts",
                                       "Automatic restarts of each workload since start.",
                                       labels=["workload"])  # fmt: skip
        for w in workloads:
            kind = str(w.get("labels", {}).get("workload_kind", ""))
            up.add_metric([w["name"], kind], 1.0 if w["state"] == "running" else 0.0)
            restarts.add_metric([w["name"]], float(w.get("restarts_total", 0)))
        yield from (states, up, restarts)
