"""The worker: command targets run once per run key, retried on the clock, per overlap
policy, with artifacts and run records (real processes where a process is the point)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from cronwarden.adapters.memory import LocalBus, MemoryStore
from cronwarden.errors import BackendUnavailable
from cronwarden.manifest import validate_document
from cronwarden.manifest.model import Manifest
from cronwarden.ports import Delivery, RunRecord
from cronwarden.reasons import ReasonCode
from cronwarden.services.dispatch import TRIGGER_TOPIC
from cronwarden.services.worker import Worker
from cronwarden.testing import FakeClock
from cronwarden.workers.command import CommandResult
from processes import gone_within, running

AT_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class SelfAdvancingClock(FakeClock):
    """A fake clock whose sleeps pass at once, each one noted."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []

    async def sleep(self, seconds: float, *, precise: bool = False) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


def _manifest(target: dict[str, Any], **task: Any) -> Manifest:
    result = validate_document({
        "targets": {"job": target},
        "tasks": [{"task_id": "scan", "cron": "* * * * *", "targets": ["job"], **task}],
    })  # fmt: skip
    assert not [p for p in result.problems if p.level == "error"], result.problems
    return result.manifest


def _trigger(at_ms: int = AT_MS, target: str = "job") -> dict[str, Any]:
    return {"task_id": "scan", "target": target, "scheduled_at": at_ms, "trace_id": "tr_1"}


class Scripted:
    """An ``execute`` that returns the given statuses in turn, each after ``gate`` opens."""

    def __init__(self, *statuses: str, gate: asyncio.Event | None = None) -> None:
        self.statuses = list(statuses)
        self.gate = gate
        self.calls: list[Mapping[str, str]] = []
        self.started = asyncio.Event()

    async def __call__(self, argv: tuple[str, ...], *, env: Mapping[str, str],
                       **_: Any) -> CommandResult:  # fmt: skip
        self.calls.append(env)
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        status = self.statuses.pop(0)
        return CommandResult(status, 0 if status == "succeeded" else 1, 5, "out\n", "", "")


def test_a_command_target_runs_with_its_context_and_leaves_its_artifacts(tmp_path: Path) -> None:
    script = (
        "import json, os, pathlib\n"
        "folder = pathlib.Path(os.environ['CRONWARDEN_ARTIFACT_DIR'])\n"
        "(folder / 'report.csv').write_text('a,b\\n')\n"
        "keys = ['CRONWARDEN_TASK_ID', 'CRONWARDEN_SCHEDULED_AT', 'CRONWARDEN_TRACE_ID',"
        " 'CRONWARDEN_ATTEMPT', 'CRONWARDEN_CONFIG', 'GREETING']\n"
        "print(json.dumps({k: os.environ[k] for k in keys}))\n"
    )
    manifest = _manifest({"type": "command", "command": [sys.executable, "-c", script],
                          "env": {"GREETING": "hi"}}, config={"depth": 3})  # fmt: skip
    store = MemoryStore()
    worker = Worker(FakeClock(), store, lambda: manifest, tmp_path / "artifacts")
    (run,) = asyncio.run(worker.handle(_trigger()))
    assert (run.status, run.exit_code, run.attempt, run.reason_code) == ("succeeded", 0, 1, "")
    seen = json.loads(run.output_tail)
    assert seen == {"CRONWARDEN_TASK_ID": "scan", "CRONWARDEN_SCHEDULED_AT":
                    "2026-01-01T00:00:00+00:00", "CRONWARDEN_TRACE_ID": "tr_1",
                    "CRONWARDEN_ATTEMPT": "1", "CRONWARDEN_CONFIG": '{"depth": 3}',
                    "GREETING": "hi"}  # fmt: skip
    folder = Path(run.artifact_dir)
    assert folder.parent == tmp_path / "artifacts" / "scan"
    assert sorted(p.name for p in folder.iterdir()) == ["report.csv", "run.json", "stderr.log",
                                                         "stdout.log"]  # fmt: skip
    assert json.loads((folder / "run.json").read_text())["status"] == "succeeded"
    assert asyncio.run(store.runs()) == [run]


def test_the_next_run_finds_the_last_good_artifacts(tmp_path: Path) -> None:
    manifest = _manifest({"type": "command", "command": ["true"]})
    execute = Scripted("succeeded", "succeeded")
    worker = Worker(FakeClock(), MemoryStore(), lambda: manifest, tmp_path, execute=execute)
    (first,) = asyncio.run(worker.handle(_trigger()))
    asyncio.run(worker.handle(_trigger(AT_MS + 60_000)))
    assert execute.calls[0]["CRONWARDEN_PREVIOUS_ARTIFACT_DIR"] == ""
    assert execute.calls[1]["CRONWARDEN_PREVIOUS_ARTIFACT_DIR"] == first.artifact_dir


def test_failures_are_retried_with_backoff_read_from_the_clock(tmp_path: Path) -> None:
    retry = {"max_attempts": 4, "delay_seconds": 10, "backoff_multiplier": 2,
             "max_delay_seconds": 15}  # fmt: skip
    manifest = _manifest({"type": "command", "command": ["x"], "retry": retry})
    clock = SelfAdvancingClock()
    execute = Scripted("failed", "timed_out", "failed", "succeeded")
    worker = Worker(clock, MemoryStore(), lambda: manifest, tmp_path, execute=execute)
    runs = asyncio.run(worker.handle(_trigger()))
    assert [(r.attempt, r.status) for r in runs] == [
        (1, "failed"), (2, "timed_out"), (3, "failed"), (4, "succeeded")]  # fmt: skip
    assert clock.slept == [10, 15, 15]  # 10, then 20 and 40 capped at 15
    assert {r.reason_code for r in runs[:3]} == {ReasonCode.CRON_RUNNER_RUN_FAILED}


def test_jitter_spreads_the_waits_within_its_bounds(tmp_path: Path) -> None:
    retry = {"max_attempts": 30, "delay_seconds": 10, "backoff_multiplier": 1, "jitter": 0.2}
    manifest = _manifest({"type": "command", "command": ["x"], "retry": retry})
    clock = SelfAdvancingClock()
    worker = Worker(clock, MemoryStore(), lambda: manifest, tmp_path,
                    execute=Scripted(*["failed"] * 30))  # fmt: skip
    asyncio.run(worker.handle(_trigger()))
    assert len(clock.slept) == 29 and all(8 <= s <= 12 for s in clock.slept)
    assert len(set(clock.slept)) > 1


def test_a_trigger_published_twice_runs_once(tmp_path: Path) -> None:
    manifest = _manifest({"type": "command", "command": ["x"]})
    execute = Scripted("succeeded")
    worker = Worker(FakeClock(), MemoryStore(), lambda: manifest, tmp_path, execute=execute)
    assert len(asyncio.run(worker.handle(_trigger()))) == 1
    assert asyncio.run(worker.handle(_trigger())) == []
    assert len(execute.calls) == 1


def test_a_bus_only_target_is_left_to_its_consumer(tmp_path: Path) -> None:
    manifest = _manifest({"type": "bus"})
    store = MemoryStore()
    worker = Worker(FakeClock(), store, lambda: manifest, tmp_path, execute=Scripted())
    assert asyncio.run(worker.handle(_trigger())) == []
    assert asyncio.run(worker.handle(_trigger(target="unconfigured"))) == []
    assert asyncio.run(store.runs()) == []


def _overlapping(policy: str, tmp_path: Path, count: int) -> tuple[list[list[RunRecord]], int]:
    """``count`` triggers of one task, each arriving while the first still runs."""
    manifest = _manifest({"type": "command", "command": ["x"]}, overlap=policy)

    async def scenario() -> tuple[list[list[RunRecord]], int]:
        gate = asyncio.Event()
        execute = Scripted(*["succeeded"] * count, gate=gate)
        worker = Worker(FakeClock(), MemoryStore(), lambda: manifest, tmp_path, execute=execute)
        first = asyncio.ensure_future(worker.handle(_trigger()))
        await execute.started.wait()
        later = [asyncio.ensure_future(worker.handle(_trigger(AT_MS + n * 1000)))
                 for n in range(1, count)]  # fmt: skip
        for _ in range(10):
            await asyncio.sleep(0)
        gate.set()
        return [await first, *[await run for run in later]], len(execute.calls)

    return asyncio.run(scenario())


def test_overlap_forbid_skips_a_trigger_while_the_last_run_runs(tmp_path: Path) -> None:
    (first, second), started = _overlapping("forbid", tmp_path, 2)
    assert [r.status for r in first] == ["succeeded"] and started == 1
    assert [(r.status, r.reason_code) for r in second] == [
        ("skipped", ReasonCode.CRON_RUNNER_OVERLAP_SKIP)]  # fmt: skip


def test_overlap_allow_runs_alongside(tmp_path: Path) -> None:
    runs, started = _overlapping("allow", tmp_path, 2)
    assert [[r.status for r in rs] for rs in runs] == [["succeeded"], ["succeeded"]]
    assert started == 2


def test_overlap_replace_cancels_the_running_one(tmp_path: Path) -> None:
    manifest = _manifest({"type": "command", "command": ["x"]}, overlap="replace")
    store = MemoryStore()

    async def scenario() -> list[RunRecord]:
        gate = asyncio.Event()
        execute = Scripted("succeeded", "succeeded", gate=gate)
        worker = Worker(FakeClock(), store, lambda: manifest, tmp_path, execute=execute)
        first = asyncio.ensure_future(worker.handle(_trigger()))
        await execute.started.wait()
        second = asyncio.ensure_future(worker.handle(_trigger(AT_MS + 1000)))
        for _ in range(10):
            await asyncio.sleep(0)
        gate.set()
        (replaced,) = await first  # it ends, with its record: its trigger is done
        assert (replaced.status, replaced.reason_code) == (
            "cancelled", ReasonCode.CRON_RUNNER_RUN_REPLACED)  # fmt: skip
        return await second

    (replacement,) = asyncio.run(scenario())
    assert replacement.status == "succeeded"
    assert [r.status for r in asyncio.run(store.runs())] == ["succeeded", "cancelled"]


class Deliveries:
    """Triggers delivered to a worker as a bus would, noting each ack and nack."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self.acked: list[str] = []
        self.nacked: list[str] = []
        self.any_acked = asyncio.Event()

    def put(self, trigger: dict[str, Any], message_id: str) -> None:
        async def ack() -> None:
            self.acked.append(message_id)
            self.any_acked.set()

        async def nack() -> None:
            self.nacked.append(message_id)

        self.queue.put_nowait(Delivery(trigger, message_id, 1, ack, nack))

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        while True:
            yield await self.queue.get()


def test_a_replaced_trigger_is_acknowledged_and_a_stop_leaves_the_running_one_unacked(
    tmp_path: Path,
) -> None:
    manifest = _manifest({"type": "command", "command": ["x"]}, overlap="replace")
    store = MemoryStore()

    async def scenario() -> Deliveries:
        deliveries, gate = Deliveries(), asyncio.Event()
        execute = Scripted("succeeded", "succeeded", gate=gate)
        worker = Worker(FakeClock(), store, lambda: manifest, tmp_path, execute=execute)
        stop = asyncio.Event()
        consuming = asyncio.ensure_future(worker.run(aiter(deliveries), stop))
        deliveries.put(_trigger(), "1-0")
        await execute.started.wait()
        execute.started.clear()
        deliveries.put(_trigger(AT_MS + 1000), "2-0")  # replaces the first
        await execute.started.wait()

        # the first's end is written (in a thread) before the stop
        await asyncio.wait_for(deliveries.any_acked.wait(), timeout=5)
        stop.set()  # the worker stops while the second runs
        await asyncio.wait_for(consuming, timeout=5)
        return deliveries

    deliveries = asyncio.run(scenario())
    assert deliveries.acked == ["1-0"] and deliveries.nacked == []  # 2-0: delivered again
    records = sorted(asyncio.run(store.runs()), key=lambda r: r.scheduled_at_ms)
    assert [(r.status, r.reason_code) for r in records] == [
        ("cancelled", ReasonCode.CRON_RUNNER_RUN_REPLACED),
        ("cancelled", ReasonCode.CRON_RUNNER_RUN_ABANDONED)]  # fmt: skip


def _prior(store: MemoryStore, *attempts: tuple[str, int | None]) -> None:
    """Attempts of the fire at AT_MS as a worker that then stopped left them."""
    for number, (status, code) in enumerate(attempts, start=1):
        record = RunRecord(run_id=f"run_{number:012x}", task_id="scan", target="job",
                           trace_id="tr_1", scheduled_at_ms=AT_MS, attempt=number,
                           status=status, started_at_ms=AT_MS, exit_code=code)  # fmt: skip
        asyncio.run(store.begin_run(record))


def _redelivered(target: dict[str, Any], store: MemoryStore, tmp_path: Path,
                 *statuses: str) -> tuple[list[RunRecord], SelfAdvancingClock]:  # fmt: skip
    manifest = _manifest(target)
    clock = SelfAdvancingClock()
    worker = Worker(clock, store, lambda: manifest, tmp_path, execute=Scripted(*statuses))
    return asyncio.run(worker.handle(_trigger(), deliveries=2)), clock


def test_a_trigger_taken_from_a_dead_worker_resumes_where_the_run_stopped(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    _prior(store, ("running", None))  # killed in the middle of its only attempt
    (resumed,), clock = _redelivered({"type": "command", "command": ["x"]}, store, tmp_path,
                                     "succeeded")  # fmt: skip
    assert (resumed.attempt, resumed.status, resumed.deliveries) == (2, "succeeded", 2)
    assert clock.slept == []  # an abandoned attempt is not a failure: no retry delay
    first = asyncio.run(store.fire_runs("scan", AT_MS, "job"))[0]
    assert (first.status, first.reason_code) == ("cancelled",
                                                 ReasonCode.CRON_RUNNER_RUN_ABANDONED)  # fmt: skip


def test_a_worker_killed_between_retries_is_followed_by_the_next_attempt(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    _prior(store, ("failed", 1))
    retry = {"max_attempts": 3, "delay_seconds": 10}
    runs, clock = _redelivered({"type": "command", "command": ["x"], "retry": retry}, store,
                               tmp_path, "failed", "succeeded")  # fmt: skip
    assert [(r.attempt, r.status) for r in runs] == [(2, "failed"), (3, "succeeded")]
    assert clock.slept == [10, 20]  # the backoff goes on where it was


@pytest.mark.parametrize(("prior", "target"), [
    (("succeeded", 0), {"type": "command", "command": ["x"]}),
    (("failed", 1), {"type": "command", "command": ["x"]}),  # its only attempt was spent
    (("failed", 404), {"type": "http", "url": "http://127.0.0.1:9/x",
                       "retry": {"max_attempts": 3}}),  # final: a 4xx
])  # fmt: skip
def test_a_trigger_whose_run_had_ended_runs_nothing_again(
    prior: tuple[str, int], target: dict[str, Any], tmp_path: Path
) -> None:
    store = MemoryStore()
    _prior(store, prior)
    runs, _ = _redelivered(target, store, tmp_path)
    assert runs == []


def test_overlap_queue_one_waits_and_skips_a_third(tmp_path: Path) -> None:
    (first, second, third), started = _overlapping("queue_one", tmp_path, 3)
    assert [r.status for r in first] == ["succeeded"]
    assert [r.status for r in second] == ["succeeded"]  # waited for the first
    assert [r.status for r in third] == ["skipped"]  # one was already waiting
    assert started == 2


def test_the_worker_consumes_triggers_from_the_bus_until_stopped(tmp_path: Path) -> None:
    manifest = _manifest({"type": "command", "command": ["x"]})
    seen: list[RunRecord] = []

    async def scenario() -> None:
        bus = LocalBus()
        worker = Worker(FakeClock(), MemoryStore(), lambda: manifest, tmp_path,
                        execute=Scripted("succeeded"), on_run=seen.append)  # fmt: skip
        stop = asyncio.Event()
        consuming = asyncio.ensure_future(
            worker.run(bus.consume(TRIGGER_TOPIC, "workers", "w1"), stop)
        )
        await bus.publish(TRIGGER_TOPIC, _trigger())
        for _ in range(500):  # the run's record is written from a thread: real time passes
            if seen:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(consuming, timeout=5)

    asyncio.run(scenario())
    assert [r.status for r in seen] == ["succeeded"]


@pytest.mark.parametrize(
    "target",
    [{"type": "command"}, {"type": "command", "command": []}, {"type": "ftp"},
     {"type": "command", "command": ["x"], "timeout_s": -1},
     {"type": "command", "command": ["x"], "retry": {"max_attempts": 0}},
     {"type": "command", "command": ["x"], "surprise": 1}],
    ids=["no-command", "empty-command", "unknown-type", "negative-timeout", "no-attempts",
         "unknown-key"],
)  # fmt: skip
def test_a_bad_target_is_rejected_with_its_tasks_and_the_rest_run(target: dict[str, Any]) -> None:
    result = validate_document({
        "targets": {"broken": target, "fine": {"type": "command", "command": ["true"]}},
        "tasks": [{"task_id": "a", "cron": "* * * * *", "targets": ["broken"]},
                  {"task_id": "b", "cron": "* * * * *", "targets": ["fine"]}],
    })  # fmt: skip
    codes = {(p.code, p.where.split(":")[0]) for p in result.problems}
    assert (ReasonCode.CRON_RUNNER_TARGET_INVALID, "targets.broken") in codes
    assert (ReasonCode.CRON_RUNNER_TARGET_INVALID, "a") in codes
    assert [t.task_id for t in result.manifest.tasks] == ["b"]
    assert set(result.manifest.targets) == {"fine"}


def test_a_spec_003_job_runs_through_its_execution_mode_template(tmp_path: Path) -> None:
    printer = "import json, sys; print(json.dumps(sys.argv[1:]))"
    document = {
        "execution_modes": {"claude_cli": {"command": [
            sys.executable, "-c", printer, "--print", "--skill", "{skill}", "--session",
            "{session_id}", "--persona", "{persona}", "--inputs", "{inputs_json}"]}},
        "schedules": {"timezone": "America/New_York", "execution_mode": "claude_cli", "jobs": [
            {"name": "daily_standup", "cron": "0 9 * * MON-FRI", "skill": "coffee",
             "persona": "developer", "inputs": {"team": "a b"}, "enabled": True}]},
    }  # fmt: skip
    result = validate_document(document)
    assert not result.problems
    manifest = result.manifest
    worker = Worker(FakeClock(), MemoryStore(), lambda: manifest, tmp_path)
    trigger = {"task_id": "daily_standup", "target": "claude_cli", "scheduled_at": AT_MS,
               "trace_id": "tr_1"}  # fmt: skip
    (run,) = asyncio.run(worker.handle(trigger))
    assert json.loads(run.output_tail) == [
        "--print", "--skill", "coffee", "--session", "cron-coffee-20260101-000000",
        "--persona", "developer", "--inputs", '{"team": "a b"}']  # fmt: skip


def test_a_bad_execution_mode_rejects_its_jobs_only() -> None:
    result = validate_document({
        "execution_modes": {"claude_cli": {"command": []}},
        "tasks": [{"task_id": "a", "cron": "* * * * *", "targets": ["claude_cli"]},
                  {"task_id": "b", "cron": "* * * * *", "targets": ["ops.bus"]}],
    })  # fmt: skip
    assert {p.where.split(":")[0] for p in result.problems} >= {"execution_modes.claude_cli", "a"}
    assert [t.task_id for t in result.manifest.tasks] == ["b"]


class FinishOutage(MemoryStore):
    """The in-memory store, unable to record the end of a run ``failures`` times."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def finish_run(self, run: RunRecord) -> None:
        if self.failures:
            self.failures -= 1
            raise BackendUnavailable("store: connection refused")
        await super().finish_run(run)


def test_a_run_that_ended_while_the_store_was_down_is_recorded_when_it_returns(
    tmp_path: Path,
) -> None:
    manifest = _manifest({"type": "command", "command": ["x"]})
    clock, store, execute = SelfAdvancingClock(), FinishOutage(failures=6), Scripted("succeeded")
    worker = Worker(clock, store, lambda: manifest, tmp_path, execute=execute)
    (run,) = asyncio.run(worker.handle(_trigger()))
    assert len(execute.calls) == 1  # ran once, not again for the store's sake
    assert clock.slept == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2]
    assert [r.status for r in asyncio.run(store.runs())] == ["succeeded"]
    assert run.status == "succeeded"


def test_a_trigger_that_met_a_store_outage_is_handled_when_it_returns(tmp_path: Path) -> None:
    """Not handed back (that would spend its deliveries towards the dead-letter stream):
    kept, tried again with backoff, and acknowledged once handled."""

    class BeginOutage(MemoryStore):
        def __init__(self) -> None:
            super().__init__()
            self.failures = 5

        async def begin_run(self, run: RunRecord) -> bool:
            if self.failures:
                self.failures -= 1
                raise BackendUnavailable("store: connection refused")
            return await super().begin_run(run)

    manifest = _manifest({"type": "command", "command": ["x"]})
    clock, store, execute = SelfAdvancingClock(), BeginOutage(), Scripted("succeeded")
    worker = Worker(clock, store, lambda: manifest, tmp_path, execute=execute)

    async def scenario() -> Deliveries:
        deliveries = Deliveries()
        deliveries.put(_trigger(), "1-0")
        stop = asyncio.Event()
        consuming = asyncio.ensure_future(worker.run(aiter(deliveries), stop))
        await asyncio.wait_for(deliveries.any_acked.wait(), timeout=5)
        stop.set()
        await asyncio.wait_for(consuming, timeout=5)
        return deliveries

    deliveries = asyncio.run(scenario())
    assert (deliveries.acked, deliveries.nacked) == (["1-0"], [])
    assert len(execute.calls) == 1
    assert clock.slept == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert [r.status for r in asyncio.run(store.runs())] == ["succeeded"]


@pytest.mark.parametrize("kill_orphans", [True, False])
def test_a_job_s_leftover_children_are_reaped_unless_its_target_opts_out(
    tmp_path: Path, kill_orphans: bool
) -> None:
    target = {"type": "command", "command": ["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"]}
    manifest = _manifest(target if kill_orphans else {**target, "kill_orphans": False})
    worker = Worker(FakeClock(), MemoryStore(), lambda: manifest, tmp_path / "artifacts")
    (run,) = asyncio.run(worker.handle(_trigger()))
    child = int(run.output_tail)
    try:
        assert run.status == "succeeded"
        if kill_orphans:
            assert gone_within(child)
        else:
            time.sleep(0.3)  # left running: still there a while later
            assert running(child)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def test_kill_orphans_false_on_an_inline_python_target_is_rejected() -> None:
    result = validate_document({
        "targets": {"job": {"type": "python", "function": "jobs:run", "isolation": "inline",
                            "kill_orphans": False}},
        "tasks": [{"task_id": "scan", "cron": "* * * * *", "targets": ["job"]}],
    })  # fmt: skip
    errors = [p for p in result.problems if p.level == "error"]
    assert errors and "isolation: process" in errors[0].message
