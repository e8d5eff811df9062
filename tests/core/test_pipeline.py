"""The pure pipeline steps: which rule suppresses a fire, in ARCHITECTURE §1's order."""

from __future__ import annotations

from datetime import UTC, datetime

from cronwarden.core.pipeline import lock_key, suppression
from cronwarden.manifest.model import QuietHours, TaskSpec
from cronwarden.reasons import ReasonCode

AT = datetime(2026, 3, 6, 14, 45, tzinfo=UTC)
ALWAYS = QuietHours.model_validate({"start": "00:00", "end": "00:00"})


def _task(**fields: object) -> TaskSpec:
    return TaskSpec.model_validate({"task_id": "t", "cron": "* * * * *", **fields})


def test_the_kill_switch_comes_before_quiet_hours_and_targets() -> None:
    task = _task(task_class="trading", disable_during_quiet_hours=True)
    assert suppression(task, AT, kill_switch_on=True, windows=[ALWAYS]) is (
        ReasonCode.KILL_SWITCH_ACTIVE
    )
    assert suppression(task, AT, kill_switch_on=False, windows=[ALWAYS]) is (
        ReasonCode.CRON_RUNNER_QUIET_HOURS_SKIP
    )
    assert suppression(task, AT, kill_switch_on=False, windows=[]) is (
        ReasonCode.CRON_RUNNER_NO_TARGETS
    )
    assert suppression(_task(targets=["x"]), AT, kill_switch_on=False, windows=[]) is None


def test_the_claim_key_is_the_task_and_its_instant() -> None:
    assert lock_key("cronwarden", "daily_pnl", 1746792000000) == (
        "cronwarden:fire:daily_pnl:1746792000000"
    )
