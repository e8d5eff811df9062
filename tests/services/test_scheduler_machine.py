"""CronRunner as a state machine (hypothesis): random manifests, clock advances and jumps
both ways, reloads, pauses, kill-switch flips and forced dispatches, on a fake clock.

Invariants, after every step:
* no ``(task_id, scheduled_at_ms)`` is dispatched twice;
* every instant of every task, from when the task (as it is now) was loaded up to the
  latest time a tick saw, has exactly one outcome: dispatched, suppressed or missed;
  nothing is silent and nothing is invented;
* every outcome is one stored report.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cronwarden.adapters.memory import MemoryStore
from cronwarden.core.report import EventType, OperationsReport
from cronwarden.cron import parse
from cronwarden.manifest import Manifest, validate_document
from cronwarden.services.scheduler import CronRunner
from cronwarden.testing import FakeClock, memory_dispatcher

TASK_IDS = ("pnl", "scan", "sweep", "health")
EXPRESSIONS = ("* * * * * *", "*/7 * * * * *", "* * * * *", "*/2 * * * *", "30 */5 * * * *")

_task = st.fixed_dictionaries({
    "cron": st.sampled_from(EXPRESSIONS),
    "task_class": st.sampled_from(["trading", "governance", "health"]),
    "catch_up": st.sampled_from(["skip", "once"]),
    "misfire_grace_s": st.sampled_from([1, 30, 300]),
    "disable_during_quiet_hours": st.booleans(),
})  # fmt: skip
_manifests = st.dictionaries(st.sampled_from(TASK_IDS), _task, min_size=1, max_size=4)
_quiet = st.sampled_from([[], [{"start": "00:00", "end": "00:20", "timezone": "UTC"}]])


def _manifest(tasks: dict[str, dict[str, Any]], quiet: list[dict[str, str]]) -> Manifest:
    entries = [{"task_id": tid, "targets": ["gov.x"], **spec} for tid, spec in tasks.items()]
    result = validate_document({"quiet_hours": quiet, "tasks": entries})
    assert not result.problems
    return result.manifest


@dataclass
class _Life:
    """One stretch during which a task ran unchanged: instants after ``since_s`` count."""

    expression: str
    since_s: int
    seen_s: int  # the latest "now" a tick saw during the stretch
    outcomes: Counter[int] = field(default_factory=Counter)


class SchedulerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.store = MemoryStore()
        self.dispatcher = memory_dispatcher(self.clock, store=self.store)
        self.runner: CronRunner | None = None
        self.lives: dict[str, _Life] = {}
        self.ended: list[_Life] = []
        self.specs: dict[str, dict[str, Any]] = {}
        self.reports: list[OperationsReport] = []
        self.dispatched: Counter[tuple[str, int]] = Counter()

    def teardown(self) -> None:
        self.loop.close()

    def _now_s(self) -> int:
        return int(self.clock.now().timestamp())

    def _run(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    def _begin(self, task_ids: set[str]) -> None:
        for task_id in task_ids:
            old = self.lives.pop(task_id, None)
            if old is not None:
                self.ended.append(old)
            now = self._now_s()
            self.lives[task_id] = _Life(self.specs[task_id]["cron"], now, now)

    def _seen(self, reports: list[OperationsReport]) -> None:
        self.reports.extend(reports)
        for report in reports:
            key = (report.task_id, report.fired_at_ms)
            if report.event_type is EventType.DISPATCHED:
                self.dispatched[key] += 1
            if report.details.get("forced"):
                continue  # an operator's fire: not one of the schedule's instants
            life = self.lives[report.task_id]
            if "missed_count" in report.details:  # one report for a run of misses
                run = _instants(life.expression, report.details["missed_from_ms"] // 1000 - 1,
                                report.fired_at_ms // 1000)  # fmt: skip
                assert len(run) == report.details["missed_count"]
                life.outcomes.update(run)
            else:
                life.outcomes[report.fired_at_ms // 1000] += 1

    # -- rules ------------------------------------------------------------------------

    @precondition(lambda self: self.runner is None)
    @rule(tasks=_manifests, quiet=_quiet)
    def load(self, tasks: dict[str, dict[str, Any]], quiet: list[dict[str, str]]) -> None:
        self.specs = tasks
        self.runner = CronRunner(_manifest(tasks, quiet), self.dispatcher)
        self.runner.start_at(self._now_s() * 1000)
        self._begin(set(tasks))

    @precondition(lambda self: self.runner is not None)
    @rule(seconds=st.integers(0, 400))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)
        self._tick()

    @precondition(lambda self: self.runner is not None)
    @rule(seconds=st.integers(-600, 4_000))
    def jump(self, seconds: int) -> None:
        self.clock.jump(seconds)
        self._tick()

    def _tick(self) -> None:
        assert self.runner is not None
        reports = self._run(self.runner.tick())
        now = self._now_s()
        for life in self.lives.values():
            life.seen_s = max(life.seen_s, now)
        self._seen(reports)

    @precondition(lambda self: self.runner is not None)
    @rule(tasks=_manifests, quiet=_quiet)
    def reload(self, tasks: dict[str, dict[str, Any]], quiet: list[dict[str, str]]) -> None:
        assert self.runner is not None
        diff = self.runner.replace(_manifest(tasks, quiet), self._now_s() * 1000)
        for task_id in diff["removed"]:
            self.ended.append(self.lives.pop(task_id))
        self.specs = tasks
        self._begin(set(diff["added"]) | set(diff["changed"]))

    @precondition(lambda self: self.runner is not None)
    @rule(task_id=st.sampled_from(TASK_IDS), paused=st.booleans())
    def pause(self, task_id: str, paused: bool) -> None:
        at = self.clock.now()
        self._run(self.dispatcher.pauses.set_paused(task_id, paused, "ops", "", at))

    @precondition(lambda self: self.runner is not None)
    @rule(active=st.booleans())
    def kill_switch(self, active: bool) -> None:
        self._run(self.dispatcher.kill_switch.set(active, "ops", "drill", self.clock.now()))

    @precondition(lambda self: self.runner is not None and self.lives)
    @rule(data=st.data())
    def force(self, data: st.DataObject) -> None:
        assert self.runner is not None
        task_id = data.draw(st.sampled_from(sorted(self.lives)))
        self._seen([self._run(self.runner.force(task_id, "ops", "test"))])

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def nothing_is_dispatched_twice(self) -> None:
        assert all(count == 1 for count in self.dispatched.values())

    @invariant()
    def every_instant_has_exactly_one_outcome(self) -> None:
        for life in [*self.ended, *self.lives.values()]:
            expected = _instants(life.expression, life.since_s, life.seen_s)
            assert all(count == 1 for count in life.outcomes.values()), "two outcomes"
            assert sorted(life.outcomes) == expected, "an instant was silent or invented"

    @invariant()
    def every_outcome_is_one_stored_report(self) -> None:
        stored = self._run(self.store.reports(limit=10**9))
        assert len(stored) == len(self.reports)


def _instants(expression: str, after_s: int, until_s: int) -> list[int]:
    """The expression's instants (UTC seconds) in ``(after_s, until_s]``."""
    schedule = parse(expression, "UTC")
    found, at = [], schedule.next_instant(after_s)
    while at is not None and at <= until_s:
        found.append(at)
        at = schedule.next_instant(at)
    return found


SchedulerMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None
)
TestSchedulerMachine = SchedulerMachine.TestCase
