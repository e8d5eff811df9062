"""Structured logs: one JSON object a line with the fields operators filter on."""

from __future__ import annotations

import json
import logging

import pytest

from cronwarden.core.report import EventType, OperationsReport
from cronwarden.reasons import ReasonCode
from cronwarden.telemetry.logging import JsonFormatter, log_report


def test_a_dispatch_logs_spec_000s_developer_log_fields(caplog: pytest.LogCaptureFixture) -> None:
    report = OperationsReport(EventType.DISPATCHED, "hourly_health_sweep", 1746788400000,
                              ("gov.health_heartbeat",), "tr_00deadbeef01",
                              ReasonCode.CRON_RUNNER_TASK_DISPATCHED)  # fmt: skip
    with caplog.at_level(logging.INFO, logger="cronwarden.scheduler"):
        log_report(report)
    (record,) = caplog.records
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "INFO"
    assert {key: line[key] for key in ("event_type", "task_id", "fired_at_ms", "targets",
                                        "lock_acquired", "trace_id", "reason_code")} == {
        "event_type": "CRON_TASK_DISPATCHED",
        "task_id": "hourly_health_sweep",
        "fired_at_ms": 1746788400000,
        "targets": ["gov.health_heartbeat"],
        "lock_acquired": True,
        "trace_id": "tr_00deadbeef01",
        "reason_code": "CRON_RUNNER_TASK_DISPATCHED",
    }  # fmt: skip


def test_failures_and_misses_log_as_warnings(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="cronwarden.scheduler"):
        for event, code in ((EventType.FAILED, ReasonCode.CRON_RUNNER_BUS_PUBLISH_FAILED),
                            (EventType.MISSED, ReasonCode.CRON_RUNNER_MISSED_FIRE)):  # fmt: skip
            log_report(OperationsReport(event, "t", 0, (), "tr", code))
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]
    assert not any(hasattr(r, "lock_acquired") for r in caplog.records)


def test_loads_and_reloads_log_their_details_and_unrecorded_reports_are_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reload = OperationsReport(EventType.MANIFEST_LOADED, "", 0, (), "tr",
                              ReasonCode.CRON_RUNNER_MANIFEST_RELOAD_OK,
                              details={"trigger": "SIGHUP", "added": ["scan"]})  # fmt: skip
    failed = OperationsReport(EventType.MANIFEST_RELOAD_FAILED, "", 0, (), "tr",
                              ReasonCode.CRON_RUNNER_MANIFEST_UNREADABLE)  # fmt: skip
    unrecorded = OperationsReport(
        EventType.DISPATCHED,
        "t",
        0,
        ("x",),
        "tr",
        ReasonCode.CRON_RUNNER_TASK_DISPATCHED,
        details={"recorded": False, "store_error": "disk full"},
    )
    with caplog.at_level(logging.INFO, logger="cronwarden.scheduler"):
        for report in (reload, failed, unrecorded):
            log_report(report)
    lines = [json.loads(JsonFormatter().format(record)) for record in caplog.records]
    assert [line["level"] for line in lines] == ["INFO", "WARNING", "ERROR"]
    assert lines[0]["details"] == {"trigger": "SIGHUP", "added": ["scan"]}
    assert lines[0]["message"] == "CRON_MANIFEST_LOADED - CRON_RUNNER_MANIFEST_RELOAD_OK"
    assert lines[2]["details"]["store_error"] == "disk full"
