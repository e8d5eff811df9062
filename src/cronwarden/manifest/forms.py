"""The manifest shapes the specs write, turned into the canonical one.

* canonical: a mapping with ``tasks:`` (ARCHITECTURE §3);
* spec 000: a bare list of entries like its ``wire_examples.input`` payload;
* spec 001: ``global:`` (``timezone``, ``artifacts_dir``, ``log_level``) and
  ``jobs:`` with ``name``, ``schedule``, ``type``, ``enabled``, ``config``; a
  job's ``type`` is its target;
* spec 003: ``schedules:`` with ``enabled``, ``timezone``, ``execution_mode`` and
  ``jobs:`` with ``name``, ``cron``, ``skill``, ``persona``, ``inputs``,
  ``notify``, ``enabled``; the execution mode is each job's target and
  ``schedules.enabled: false`` turns every job off.

Each returns ``(settings, entries, section)``: the top-level settings, the raw
task entries and the name of the list they came from (for messages).
"""

from __future__ import annotations

from typing import Any

Raw = dict[str, Any]
Form = tuple[Raw, list[Any], str]


def canonical_form(document: Any) -> Form:
    """Split any supported manifest document into settings and raw entries."""
    if isinstance(document, list):
        return {}, document, "tasks"
    if not isinstance(document, dict):
        raise TypeError(f"a manifest is a mapping or a list, not {type(document).__name__}")
    if "tasks" not in document and isinstance(document.get("schedules"), dict):
        return _spec_003(document)
    if "tasks" not in document and "jobs" in document:
        return _spec_001(document)
    settings = {key: value for key, value in document.items() if key != "tasks"}
    return settings, _as_list(document.get("tasks")), "tasks"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _spec_001(document: Raw) -> Form:
    settings = {key: value for key, value in document.items() if key not in ("global", "jobs")}
    shared = document.get("global")
    if isinstance(shared, dict):
        settings.update(shared)
    entries = [_job_001(job) for job in _as_list(document.get("jobs"))]
    return settings, entries, "jobs"


def _job_001(job: Any) -> Any:
    if not isinstance(job, dict) or "type" not in job or "targets" in job:
        return job
    entry = {key: value for key, value in job.items() if key != "type"}
    entry["targets"] = [job["type"]]
    return entry


def _spec_003(document: Raw) -> Form:
    schedules: Raw = document["schedules"]
    settings = {key: value for key, value in document.items() if key != "schedules"}
    settings.update(
        {k: v for k, v in schedules.items() if k not in ("jobs", "enabled", "execution_mode")}
    )
    mode = schedules.get("execution_mode", "claude_cli")
    switched_on = schedules.get("enabled", True) is not False
    entries = [_job_003(job, mode, switched_on) for job in _as_list(schedules.get("jobs"))]
    return settings, entries, "schedules.jobs"


def _job_003(job: Any, mode: Any, switched_on: bool) -> Any:
    if not isinstance(job, dict):
        return job
    entry = dict(job)
    entry.setdefault("targets", [mode])
    if not switched_on:
        entry["enabled"] = False
    return entry
