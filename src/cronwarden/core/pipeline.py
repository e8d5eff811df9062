"""The decision pipeline's pure steps (ARCHITECTURE §1, steps 2-4).

Given a task, its scheduled instant and the state of the world, each step says
whether the fire is suppressed and by which rule. The steps that touch backends
(claim, publish, store) live in :mod:`cronwarden.services.dispatch`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from cronwarden.core.quiet_hours import quiet_window
from cronwarden.manifest.model import QuietHours, TaskClass, TaskSpec
from cronwarden.reasons import ReasonCode

Step = Callable[[TaskSpec, datetime, bool, Sequence[QuietHours]], ReasonCode | None]


def kill_switch_step(
    task: TaskSpec, at: datetime, kill_switch_on: bool, windows: Sequence[QuietHours]
) -> ReasonCode | None:
    """Step 2: an active kill switch suppresses trading tasks; governance and health go on."""
    if kill_switch_on and task.task_class is TaskClass.TRADING:
        return ReasonCode.KILL_SWITCH_ACTIVE
    return None


def quiet_hours_step(
    task: TaskSpec, at: datetime, kill_switch_on: bool, windows: Sequence[QuietHours]
) -> ReasonCode | None:
    """Step 3: tasks that opted in are suppressed inside a quiet window."""
    if task.disable_during_quiet_hours and quiet_window(at, windows) is not None:
        return ReasonCode.CRON_RUNNER_QUIET_HOURS_SKIP
    return None


def targets_step(
    task: TaskSpec, at: datetime, kill_switch_on: bool, windows: Sequence[QuietHours]
) -> ReasonCode | None:
    """Step 4: a task with no targets has nothing to dispatch."""
    return None if task.targets else ReasonCode.CRON_RUNNER_NO_TARGETS


STEPS: tuple[Step, ...] = (kill_switch_step, quiet_hours_step, targets_step)


def explain(
    task: TaskSpec, at: datetime, *, kill_switch_on: bool, windows: Sequence[QuietHours]
) -> list[tuple[str, ReasonCode | None]]:
    """Every step's verdict for this fire, in order: ``(step name, reason or None)``."""
    return [
        (step.__name__.removesuffix("_step"), step(task, at, kill_switch_on, windows))
        for step in STEPS
    ]


def suppression(
    task: TaskSpec, at: datetime, *, kill_switch_on: bool, windows: Sequence[QuietHours]
) -> ReasonCode | None:
    """The first rule that suppresses this fire, or ``None`` when it should be dispatched."""
    for step in STEPS:
        reason = step(task, at, kill_switch_on, windows)
        if reason is not None:
            return reason
    return None


def lock_key(prefix: str, task_id: str, scheduled_at_ms: int) -> str:
    """The claim key of one fire (spec 000: ``{task_id}:{scheduled_at_ms}``, namespaced)."""
    return f"{prefix}:fire:{task_id}:{scheduled_at_ms}"
