"""The reason-code table against the specs it transcribes (000 CronRunner, 002 HealthHeartbeat).

The spec-backed tests read the real spec files in ``../shared/spec`` next to the repository;
where that folder is absent they skip, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from cronwarden.reasons import (
    REASONS,
    AlertLevel,
    Reason,
    ReasonCode,
    Severity,
    Situation,
    Spec,
    SpecText,
    reason,
    user_message,
)

SPEC_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "spec"

RAN_ON_TIME = "The system ran a scheduled internal task on time. No action needed."


# -- reading the specs ---------------------------------------------------------------


def _spec_path(spec: Spec) -> Path:
    path = SPEC_DIR / f"{spec.value}.txt"
    if not path.is_file():
        msg = f"spec file not found: {path} (the specs live in ../shared/spec)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _spec_text(spec: Spec) -> str:
    return _spec_path(spec).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def spec000() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_spec_text(Spec.CRON_RUNNER))
    return data


@pytest.fixture(scope="module")
def spec002() -> str:
    return _spec_text(Spec.HEALTH_HEARTBEAT)


def _section(text: str, heading: str, next_heading: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(heading)
    return lines[start + 1 : lines.index(next_heading, start)]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.split("|")]


def _table_rows(lines: list[str]) -> list[list[str]]:
    """Rows of a spec-002 table whose first column is not '|'-prefixed (headers are)."""
    return [_cells(line) for line in lines if "|" in line and not line.startswith("|")]


def _spec002_reason_rows(text: str) -> list[list[str]]:
    rows = _table_rows(_section(text, "14. Reason Codes", "15. Metrics & Logs"))
    assert rows, "spec 002 §14 has no rows: the parser no longer matches the spec"
    return rows


def _spec002_situations(text: str) -> list[tuple[str, str]]:
    lines = _section(text, "17. Plain-English Reporting", "18. Failure-Mode Block")
    rows = [_cells(line)[1:3] for line in lines if line.startswith("| ")]
    found = [(label, message) for label, message in rows if label != "Situation"]
    assert found, "spec 002 §17 has no rows: the parser no longer matches the spec"
    return found


def _alert_severities(spec000: dict[str, Any], spec002: str) -> dict[str, str]:
    alerts = {a["name"]: a["severity"] for a in spec000["metrics"]["alerts"]}
    metrics = _section(spec002, "15. Metrics & Logs", "16. Developer Reporting")
    alert_rows = _table_rows(metrics[metrics.index("Alerts") :])
    alerts.update({row[0]: row[2] for row in alert_rows})
    return alerts


def _wording(entry: Reason, spec: Spec) -> Reason | SpecText:
    if entry.spec == spec:
        return entry
    matches = [text for text in entry.also if text.spec == spec]
    assert matches, f"{entry.code} has no wording from spec {spec.value}"
    return matches[0]


def _situations() -> list[Situation]:
    return [s for entry in REASONS.values() for s in entry.situations]


# -- the spec tables -----------------------------------------------------------------


def test_it_lists_every_code_of_spec_000(spec000: dict[str, Any]) -> None:
    rows = spec000["reason_codes"]
    assert rows
    for row in rows:
        entry = reason(row["code"])
        text = _wording(entry, Spec.CRON_RUNNER)
        assert text.severity == Severity(row["severity"]), row["code"]
        assert text.meaning == row["meaning"], row["code"]
        assert text.action == row["action"], row["code"]
        assert text.user_message == row["user_message"], row["code"]


def test_it_lists_every_code_of_spec_002_section_14(spec002: str) -> None:
    for code, severity, meaning, action, message, *_ in _spec002_reason_rows(spec002):
        entry = reason(code)
        text = _wording(entry, Spec.HEALTH_HEARTBEAT)
        assert text.severity == Severity(severity), code
        assert text.meaning == meaning, code
        assert text.action == action, code
        assert text.user_message == message, code


def test_every_code_it_lists_is_named_by_each_spec_it_cites() -> None:
    for entry in REASONS.values():
        for spec in entry.specs:
            if spec is not Spec.CRONWARDEN:  # our own codes have no spec file
                assert entry.code.value in _spec_text(spec), f"{entry.code} not in {spec.value}"


def test_it_carries_every_situation_explanation_of_spec_000(spec000: dict[str, Any]) -> None:
    carried = {(s.spec, s.situation, s.message) for s in _situations()}
    explanations = spec000["user_explanations"]
    assert len(explanations) == 3
    for item in explanations:
        assert (Spec.CRON_RUNNER, item["situation"], item["message"]) in carried, item


def test_it_carries_every_plain_english_explanation_of_spec_002_section_17(
    spec002: str,
) -> None:
    carried = {(s.spec, s.situation, s.message) for s in _situations()}
    situations = _spec002_situations(spec002)
    assert len(situations) == 3
    for label, message in situations:
        assert (Spec.HEALTH_HEARTBEAT, label, message) in carried, label


def test_kill_switch_active_is_one_code_with_the_wording_of_both_specs() -> None:
    entry = reason(ReasonCode.KILL_SWITCH_ACTIVE)
    assert entry.specs == (Spec.CRON_RUNNER, Spec.HEALTH_HEARTBEAT)
    heartbeat = _wording(entry, Spec.HEALTH_HEARTBEAT)
    assert "sweep report" in heartbeat.meaning
    assert entry.meaning != heartbeat.meaning


def test_parameter_limit_rejections_of_both_specs_require_approval(
    spec000: dict[str, Any], spec002: str
) -> None:
    code = ReasonCode.PARAMETER_CHANGE_REQUIRES_APPROVAL
    entry = reason(code)
    assert entry.severity is Severity.HARD_REJECT
    assert set(entry.specs) == {Spec.CRON_RUNNER, Spec.HEALTH_HEARTBEAT}
    limited_000 = {p["name"] for p in spec000["parameters"] if code.value in json.dumps(p)}
    limited_002 = {
        name
        for line in spec002.splitlines()
        if code.value in line
        for name in re.findall(r"p\.(\w+)", line)
        if name != "hard"
    }
    assert limited_000 == {"max_concurrent_tasks"}
    assert limited_002 == {"heartbeat_interval_s", "missed_heartbeats_to_alert", "page_on_failure"}
    for name in limited_000:
        assert name in _wording(entry, Spec.CRON_RUNNER).meaning
    for name in limited_002:
        assert name in _wording(entry, Spec.HEALTH_HEARTBEAT).meaning


def test_redis_lock_unavailable_warns_as_spec_000s_failure_injection_says(
    spec000: dict[str, Any],
) -> None:
    (scenario,) = [
        s for s in spec000["failure_injection"] if s["scenario"] == "REDIS_LOCK_UNAVAILABLE"
    ]
    assert "with WARN" in scenario["expected_behavior"]
    entry = reason(ReasonCode.REDIS_LOCK_UNAVAILABLE)
    assert entry.severity is Severity.WARN
    assert entry.spec is Spec.CRON_RUNNER
    assert "in-process lock" in entry.meaning


def test_alert_rules_match_the_specs_alert_tables(spec000: dict[str, Any], spec002: str) -> None:
    alerts = _alert_severities(spec000, spec002)
    with_rule = [entry for entry in REASONS.values() if entry.alert_rule]
    assert with_rule
    for entry in with_rule:
        assert entry.alert_rule in alerts, entry.code
        assert entry.alert.value == alerts[entry.alert_rule], entry.code


def test_bot_down_and_an_exhausted_restart_budget_page() -> None:
    assert reason(ReasonCode.HEALTH_HEARTBEAT_BOT_DOWN).alert is AlertLevel.PAGE
    assert reason(ReasonCode.HEALTH_HEARTBEAT_RESTART_BUDGET_EXHAUSTED).alert is AlertLevel.PAGE


def test_an_action_that_pages_or_alerts_has_a_matching_alert_level() -> None:
    for entry in REASONS.values():
        action = entry.action.lower()
        if "page" in action:
            assert entry.alert is AlertLevel.PAGE, entry.code
        elif "alert" in action:
            assert entry.alert is not AlertLevel.NONE, entry.code
        elif not entry.alert_rule:
            assert entry.alert is AlertLevel.NONE, entry.code


# -- what a user is told -------------------------------------------------------------


def test_a_dispatched_task_is_explained_as_having_run_on_time() -> None:
    assert user_message(ReasonCode.CRON_RUNNER_TASK_DISPATCHED) == RAN_ON_TIME
    assert user_message("CRON_RUNNER_TASK_DISPATCHED") == RAN_ON_TIME


def test_the_situation_explanation_wins_over_the_table_message() -> None:
    code = ReasonCode.CRON_RUNNER_QUIET_HOURS_SKIP
    assert user_message(code) == reason(code).explanation
    assert user_message(code) != reason(code).user_message
    assert reason(code).user_message == "A scheduled task was paused during a quiet period."


def test_without_a_situation_the_table_message_is_told() -> None:
    code = ReasonCode.HEALTH_HEARTBEAT_BOT_DOWN
    assert reason(code).situations == ()
    assert user_message(code) == (
        "A system component is not responding. The on-call team has been notified."
    )


def test_a_code_without_any_user_text_tells_nothing() -> None:
    assert user_message(ReasonCode.HEALTH_HEARTBEAT_ENDPOINT_TIMEOUT) == ""


def test_a_conditional_situation_is_not_told_by_default() -> None:
    entry = reason(ReasonCode.HEALTH_HEARTBEAT_SWEEP_COMPLETE)
    (healthy,) = entry.situations
    assert healthy.situation == "All bots healthy"
    assert healthy.condition
    assert user_message(entry.code) == ""


# -- the table itself ----------------------------------------------------------------


def test_every_member_has_one_row_with_a_meaning_and_an_action() -> None:
    assert set(REASONS) == set(ReasonCode)
    for code, entry in REASONS.items():
        assert entry.code is code
        texts: tuple[Reason | SpecText, ...] = (entry, *entry.also)
        for text in texts:
            assert text.meaning.strip(), code
            assert text.action.strip(), code
            assert text.meaning == text.meaning.strip(), code


def test_members_equal_their_code_strings() -> None:
    for member in ReasonCode:
        assert member == member.name
    assert ReasonCode.CRON_RUNNER_DUPLICATE_FIRE == "CRON_RUNNER_DUPLICATE_FIRE"


def test_severities_are_the_specs_three() -> None:
    assert {s.value for s in Severity} == {"INFO", "WARN", "HARD_REJECT"}


def test_lookup_takes_a_member_or_its_string() -> None:
    assert reason("CRON_RUNNER_NO_TARGETS") is reason(ReasonCode.CRON_RUNNER_NO_TARGETS)


@pytest.mark.parametrize("code", ["NOT_A_CODE", "", "cron_runner_task_dispatched"])
def test_unknown_codes_raise_key_error(code: str) -> None:
    with pytest.raises(KeyError, match="unknown reason code"):
        reason(code)
    with pytest.raises(KeyError, match="unknown reason code"):
        user_message(code)


def test_the_table_is_read_only() -> None:
    entry = reason(ReasonCode.CRON_RUNNER_NO_TARGETS)
    with pytest.raises(TypeError):
        REASONS[ReasonCode.CRON_RUNNER_NO_TARGETS] = entry  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.meaning = "changed"  # type: ignore[misc]
