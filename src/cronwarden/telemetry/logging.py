"""Structured logs: one JSON object a line, with the fields an operator filters on,
and credentials masked (:mod:`cronwarden.redact`) in every line, JSON or text.

Every report (outcomes, manifest loads and reloads, operator actions) is logged by
``cronwarden.scheduler`` with ``reason_code``, ``task_id``, ``trace_id``,
``event_type``, its ``details`` and, for dispatches, ``lock_acquired`` (spec 000
``developer_log``). Problems the scheduler survives without a report (a backend
down between fires) are logged with ``reason_code`` and ``error``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from cronwarden.core.report import EventType, OperationsReport
from cronwarden.redact import redact_text

FIELDS = ("event_type", "task_id", "trace_id", "reason_code", "fired_at_ms", "lock_acquired",
          "lock_mode", "targets", "where", "details", "error")  # fmt: skip
LOGGER = logging.getLogger("cronwarden.scheduler")


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", ...fields}`` per record."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({key: getattr(record, key) for key in FIELDS if hasattr(record, key)})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return redact_text(json.dumps(line, default=str))


class TextFormatter(logging.Formatter):
    """``time level logger message`` per record, credentials masked."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def configure(level: str, json_lines: bool) -> None:
    """Send cronwarden's logs to stderr at ``level``, as JSON lines or as text."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger("cronwarden")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


_WARN = (EventType.FAILED, EventType.MISSED, EventType.MANIFEST_RELOAD_FAILED)


def log_report(report: OperationsReport) -> None:
    """One log line for one report (an outcome, a load, an operator's action), with its
    details: WARNING for failures, misses and failed reloads, ERROR for a report the
    store refused (``recorded: false``), else INFO."""
    level = logging.WARNING if report.event_type in _WARN else logging.INFO
    if report.details.get("recorded") is False:
        level = logging.ERROR
    extra: dict[str, Any] = {
        "event_type": str(report.event_type),
        "task_id": report.task_id,
        "trace_id": report.trace_id,
        "reason_code": str(report.reason_code),
        "fired_at_ms": report.fired_at_ms,
        "lock_mode": report.lock_mode,
        "targets": list(report.targets),
    }
    if report.event_type is EventType.DISPATCHED:
        extra["lock_acquired"] = True
    if report.details:
        extra["details"] = report.details
    LOGGER.log(level, "%s %s %s", report.event_type, report.task_id or "-", report.reason_code,
               extra=extra)  # fmt: skip


def log_problem(level: str, code: str, where: str, message: str) -> None:
    """One log line for one manifest problem."""
    severity = logging.ERROR if level == "error" else logging.WARNING
    LOGGER.log(severity, "%s %s: %s", code, where, message,
               extra={"reason_code": str(code), "where": where})  # fmt: skip
