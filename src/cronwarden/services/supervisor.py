"""Local workloads kept alive (spec 004 TaskSupervisor, ARCHITECTURE §2 supervisor).

Each workload of the manifest's ``supervisor:`` section runs as a child process in
its own session and process group (through ``setpriv --pdeathsig KILL`` when the daemon
asks, so that a SIGKILLed daemon takes its children with it), with stdout and stderr
appended to ``{log_dir}/{name}.log``. One asyncio task per workload starts it, watches
it and restarts it per its policy; one workload's crash, hang or supervision error
never disturbs another.

Timing (backoff, hang detection, restart budget, ages) reads the injected
:class:`~cronwarden.ports.Clock`; only waiting for a process to exit (and its stop
grace) is real time. Shutdown stops workloads in reverse dependency order, each
process group with its stop signal and then SIGKILL after its grace, and returns only
when every child is gone.

The module is over 500 lines because one workload's lifecycle (start, watch, decide,
stop) reads best in one place; each step is its own small method.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from cronwarden.core.report import SUPERVISOR_BOT_ID, EventType, OperationsReport
from cronwarden.manifest.workloads import RestartPolicy, WorkloadSpec
from cronwarden.ports import Clock
from cronwarden.reasons import ReasonCode
from cronwarden.services.scheduler import new_trace_id
from cronwarden.workers.command import check_runnable, dying_with_parent
from cronwarden.workers.group_keeper import GroupKeeper

LOGGER = logging.getLogger("cronwarden.supervisor")

#: ``check_url(url, timeout_s)``: whether a GET of ``url`` answered with a 2xx in time.
CheckUrl = Callable[[str, float], Awaitable[bool]]
Record = Callable[[OperationsReport], Awaitable[None]]

#: The longest stdout line read whole when watching ``stdout_pattern``; longer ones
#: still reach the log, in pieces.
LINE_LIMIT = 1 << 20
#: How long stdout may stay open after its process group is gone (a descendant that
#: left the group) before the reader gives up on it.
READER_DRAIN_S = 2.0
#: How long a stop waits for a SIGKILLed group's other members (descendants the
#: leader left behind) to disappear; waiting for exits is real time.
GROUP_GONE_S = 1.0


#: The ``last_reason`` of a workload an operator stopped: nothing restarts it but an
#: operator (not its policy, not the watchdog).
STOPPED_BY_OPERATOR = "stopped by operator"


class State(StrEnum):
    """Where a workload is: ``starting`` until its process runs (and, with a liveness
    signal, until the first sign of life), ``backoff`` while waiting to restart."""

    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    HUNG = "hung"
    STOPPED = "stopped"
    FAILED = "failed"


def backoff_delay(spec: WorkloadSpec, consecutive: int, rng: random.Random | None = None) -> float:
    """The wait before restart number ``consecutive`` (1, 2, …) of an unbroken run of
    exits: ``backoff_initial_s × 2^(consecutive-1)`` capped at ``backoff_max_s``, times
    ``1 ± backoff_jitter`` when ``rng`` is given."""
    exponent = min(max(consecutive - 1, 0), 62)
    delay = min(spec.backoff_initial_s * 2.0**exponent, spec.backoff_max_s)
    if rng is not None and spec.backoff_jitter:
        delay *= 1 + rng.uniform(-spec.backoff_jitter, spec.backoff_jitter)
    return delay


def exit_reason(code: int | None) -> str:
    """``exited 3`` or ``killed by SIGSEGV`` for a process's return code."""
    if code is None:
        return "never ran"
    if code >= 0:
        return f"exited {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


@dataclass(frozen=True, slots=True)
class _Exit:
    """How one process of a workload ended."""

    code: int | None
    reason: str
    uptime_s: float = 0.0
    hung: bool = False

    @property
    def clean(self) -> bool:
        return self.code == 0 and not self.hung


@dataclass(eq=False)
class _Slot:
    """One workload's live state; only its own task and the operator calls change it."""

    spec: WorkloadSpec
    log: Path
    depth: int  # 0 for no dependencies, else one more than its deepest dependency
    state: State = State.STARTING
    process: asyncio.subprocess.Process | None = None
    started_at: float | None = None
    last_alive: float | None = None
    restarts: deque[float] = field(default_factory=deque)
    restarts_total: int = 0
    consecutive: int = 0
    last_exit_code: int | None = None
    last_reason: str = ""
    backoff_s: float | None = None
    task: asyncio.Task[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    attempted: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        running = self.process is not None and self.process.returncode is None
        return self.process.pid if running and self.process else None


class Supervisor:
    """Starts, watches, restarts and stops local workloads.

    :raises ValueError: at construction, for duplicate names, a dependency that is not
        among ``workloads``, a dependency cycle, or a ``health_url`` without ``check_url``.
    """

    def __init__(
        self,
        clock: Clock,
        workloads: Sequence[WorkloadSpec],
        log_dir: Path,
        *,
        check_url: CheckUrl | None = None,
        record: Record | None = None,
        die_with_daemon: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        depths = _depths(workloads)
        if check_url is None and any(w.liveness.health_url for w in workloads):
            raise ValueError("a workload watches a health_url but no check_url was given")
        self._clock = clock
        self._check_url = check_url
        self._record = record
        self._die_with_daemon = die_with_daemon
        self._rng = rng or random.Random()
        self._stopping = False
        #: Operator actions under way: each runs to its end even when its caller is
        #: cancelled (a stop half done must not leave a workload unsupervised).
        self._operations: set[asyncio.Task[dict[str, Any]]] = set()
        self._slots = {
            w.name: _Slot(w, Path(log_dir) / f"{w.name}.log", depths[w.name]) for w in workloads
        }

    # -- the lifecycle -------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Start every workload (each once its dependencies run and, where they have a
        liveness signal, first showed it: bounded by their hang timeout), supervise until
        ``stop`` is set, then stop them all in reverse dependency order. Returns once
        every child process is gone, also when cancelled."""
        self._stopping = False
        for slot in self._slots.values():
            if slot.task is None or slot.task.done():
                slot.task = self._launch(slot, wait_deps=True)
        try:
            await stop.wait()
        finally:
            await self._shutdown()

    async def restart(self, name: str) -> dict[str, Any]:
        """Operator restart: stop the current process (stop signal, grace, SIGKILL) and
        start it again now, whatever its state (``failed`` too). It does not count
        against the restart budget and resets the backoff.

        :raises KeyError: for an unknown workload.
        """
        slot = self._slot(name)

        async def restart() -> dict[str, Any]:
            async with slot.lock:
                await self._halt(slot, report=False)
                await self._start_now(slot)
            return self._describe(slot)

        return await self._to_the_end(restart())

    async def stop_workload(self, name: str) -> dict[str, Any]:
        """Operator stop: stop the workload's process group and leave it ``stopped``, not
        restarted until :meth:`restart` or :meth:`start_workload`.

        :raises KeyError: for an unknown workload.
        """
        slot = self._slot(name)

        async def stop() -> dict[str, Any]:
            async with slot.lock:
                await self._halt(slot, report=True, why=STOPPED_BY_OPERATOR)
                slot.state, slot.last_reason = State.STOPPED, STOPPED_BY_OPERATOR
            return self._describe(slot)

        return await self._to_the_end(stop())

    async def start_workload(self, name: str) -> dict[str, Any]:
        """Operator start of a ``stopped`` or ``failed`` workload (nothing happens to one
        that is supervised now).

        :raises KeyError: for an unknown workload.
        """
        slot = self._slot(name)

        async def start() -> dict[str, Any]:
            async with slot.lock:
                if slot.task is None or slot.task.done():
                    await self._start_now(slot)
            return self._describe(slot)

        return await self._to_the_end(start())

    async def _to_the_end(self, action: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
        """Run an operator action in a task of the supervisor's own; a caller that is
        cancelled (a timeout) stops waiting, not the action."""
        task = asyncio.ensure_future(action)
        self._operations.add(task)
        task.add_done_callback(self._operations.discard)
        return await asyncio.shield(task)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every workload's state, in start order (see :meth:`_describe` for the keys)."""
        return [self._describe(slot) for slot in self._slots.values()]

    # -- one workload's task -------------------------------------------------------

    def _launch(
        self, slot: _Slot, *, wait_deps: bool, operator: bool = False
    ) -> asyncio.Task[None]:
        slot.attempted.clear()
        return asyncio.create_task(
            self._supervise(slot, wait_deps, operator), name=f"supervisor:{slot.name}"
        )

    async def _supervise(self, slot: _Slot, wait_deps: bool, operator: bool) -> None:
        """Start, watch and restart one workload until its policy or budget says stop.
        An unexpected error is logged with the workload's name and leaves it
        ``failed``; it never reaches another workload."""
        try:
            if wait_deps:
                await self._await_dependencies(slot)
            await self._keep_alive(slot, operator)
        except Exception as err:  # anything: this workload fails, the others go on
            LOGGER.exception("workload %s: supervision failed: %s", slot.name, err,
                             extra={"task_id": slot.name})  # fmt: skip
            slot.state, slot.last_reason = State.FAILED, f"supervisor error: {err!r}"
            slot.attempted.set()
            await self._report(slot, ReasonCode.SUPERVISOR_WORKLOAD_EXITED)

    async def _keep_alive(self, slot: _Slot, operator: bool) -> None:
        restarted = operator
        while True:
            ended = await self._run_once(slot, restarted, operator)
            restarted, operator = True, False
            if not await self._restart_due(slot, ended):
                return

    async def _await_dependencies(self, slot: _Slot) -> None:
        for name in slot.spec.depends_on:
            dep = self._slots[name]
            if dep.ready.is_set():
                continue
            slot.last_reason = f"waiting for {name!r}"
            bound = dep.spec.hang_timeout_s
            await dep.attempted.wait()
            if bound is None:
                await dep.ready.wait()
            else:
                await self._event_or_sleep(dep.ready, bound)
        slot.last_reason = ""

    async def _event_or_sleep(self, event: asyncio.Event, seconds: float) -> None:
        waits = [asyncio.ensure_future(event.wait()),
                 asyncio.ensure_future(self._clock.sleep(seconds))]  # fmt: skip
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    # -- one process ---------------------------------------------------------------

    async def _run_once(self, slot: _Slot, restarted: bool, operator: bool) -> _Exit:
        """Start the workload's process and return how it ended; cancelled, it stops
        the process group first (stop signal, grace, SIGKILL)."""
        # opened here, not in a thread: a cancellation while a thread opened it would
        # leak the file, and opening a local file for appending does not block
        with _open_log(slot.log) as log:
            try:
                process = await self._start_process(slot.spec, log)
            except OSError as err:  # not found, not executable, bad cwd
                slot.attempted.set()
                return _Exit(None, f"cannot start: {err}")
            reader = self._reader(slot, process, log)
            keeper: GroupKeeper | None = None
            try:
                # with the daemon's death the whole group goes, not only the workload
                if self._die_with_daemon and dying_with_parent() and process.returncode is None:
                    keeper = await GroupKeeper.start(process.pid)
                await self._started(slot, process, restarted, operator)
                return await self._until_exit(slot, process)
            except asyncio.CancelledError:
                await self._stop_process(slot, process)
                raise
            finally:
                try:
                    await self._reap(process, keeper)
                finally:
                    try:
                        if keeper is not None:  # released already, unless _reap failed
                            await keeper.release()
                    finally:
                        if reader is not None:
                            await _drain(reader)

    async def _start_process(self, spec: WorkloadSpec, log: BinaryIO) -> asyncio.subprocess.Process:
        """The workload in a new session and process group, ``/dev/null`` as its input;
        through ``setpriv --pdeathsig`` when it must die with the daemon."""
        env = {**os.environ, **spec.env}
        launcher = dying_with_parent() if self._die_with_daemon else ()
        if launcher and not isinstance(spec.command, str):
            check_runnable(spec.argv[0], env, spec.cwd)  # as exec would, before the launcher
        piped = spec.liveness.stdout_pattern is not None
        return await asyncio.create_subprocess_exec(
            *launcher, *spec.argv, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if piped else log, stderr=log, cwd=spec.cwd,
            env=env, start_new_session=True, limit=LINE_LIMIT)  # fmt: skip

    def _reader(
        self, slot: _Slot, process: asyncio.subprocess.Process, log: BinaryIO
    ) -> asyncio.Task[None] | None:
        pattern = slot.spec.liveness.stdout_pattern
        if pattern is None or process.stdout is None:
            return None
        watch = self._read_stdout(slot, process.stdout, log, re.compile(pattern))
        return asyncio.create_task(watch, name=f"supervisor:{slot.name}:stdout")

    async def _read_stdout(
        self, slot: _Slot, stream: asyncio.StreamReader, log: BinaryIO, pattern: re.Pattern[str]
    ) -> None:
        """Copy stdout to the log line by line; a line matching ``pattern`` is a sign of life."""
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # longer than LINE_LIMIT: dropped from the watch
                continue
            if not line:
                return
            log.write(line)
            if pattern.search(line.decode("utf-8", "replace")):
                self._alive(slot, self._clock.monotonic())

    async def _started(
        self, slot: _Slot, process: asyncio.subprocess.Process, restarted: bool, operator: bool
    ) -> None:
        now = self._clock.monotonic()
        slot.process, slot.started_at, slot.last_alive = process, now, now
        slot.backoff_s, slot.state = None, State.STARTING
        if slot.spec.liveness.kind is None:
            self._mark_ready(slot)
        slot.attempted.set()
        LOGGER.info("workload %s: started, pid %d", slot.name, process.pid,
                    extra={"task_id": slot.name})  # fmt: skip
        code = ReasonCode.SUPERVISOR_WORKLOAD_RESTARTED if restarted else (
            ReasonCode.SUPERVISOR_WORKLOAD_STARTED)  # fmt: skip
        await self._report(slot, code, operator=operator)

    async def _until_exit(self, slot: _Slot, process: asyncio.subprocess.Process) -> _Exit:
        """Wait for the process to exit; a workload found hung is stopped first."""
        exited = asyncio.ensure_future(process.wait())
        watching = slot.spec.liveness.kind not in (None, "stdout_pattern")
        watcher = asyncio.ensure_future(self._watch(slot)) if (
            watching or slot.spec.hang_timeout_s is not None) else None  # fmt: skip
        try:
            await asyncio.wait([t for t in (exited, watcher) if t],
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            if exited.done():
                return self._ended(slot, exited.result())
            assert watcher is not None
            return await self._hung(slot, process, watcher.result())
        finally:
            for task in (exited, watcher):
                if task is not None:
                    task.cancel()

    def _ended(self, slot: _Slot, code: int, *, reason: str = "") -> _Exit:
        started = slot.started_at if slot.started_at is not None else self._clock.monotonic()
        uptime = self._clock.monotonic() - started
        return _Exit(code, reason or exit_reason(code), uptime, hung=bool(reason))

    async def _hung(self, slot: _Slot, process: asyncio.subprocess.Process, why: str) -> _Exit:
        slot.state, slot.last_reason = State.HUNG, why
        LOGGER.warning("workload %s (pid %d): %s; stopping it", slot.name, process.pid, why,
                       extra={"task_id": slot.name})  # fmt: skip
        await self._report(slot, ReasonCode.SUPERVISOR_WORKLOAD_HUNG)
        await self._stop_process(slot, process)
        return self._ended(slot, process.returncode or 0, reason=why)

    # -- liveness ------------------------------------------------------------------

    async def _watch(self, slot: _Slot) -> str:
        """Poll the liveness signal every check interval; return the hang reason once
        the last sign of life is older than the hang timeout (never without one)."""
        hang = slot.spec.hang_timeout_s
        interval = min(hang / 4, 1.0) if hang is not None else 1.0
        while True:
            await self._clock.sleep(interval)
            await self._observe(slot)
            silent = self._clock.monotonic() - (slot.last_alive or 0.0)
            if hang is not None and silent > hang:
                return f"hung: no sign of life for {silent:.1f} s"

    async def _observe(self, slot: _Slot) -> None:
        liveness = slot.spec.liveness
        if liveness.heartbeat_file is not None:
            self._observe_heartbeat(slot, liveness.heartbeat_file)
        elif liveness.health_url is not None and self._check_url is not None:
            timeout = min(liveness.timeout_s, slot.spec.hang_timeout_s or liveness.timeout_s)
            try:
                healthy = await self._check_url(liveness.health_url, timeout)
            except Exception as err:  # a broken check is an unhealthy poll, never a crash
                LOGGER.warning("workload %s: health check of %s failed: %r", slot.name,
                               liveness.health_url, err, extra={"task_id": slot.name})  # fmt: skip
                healthy = False
            if healthy:
                self._alive(slot, self._clock.monotonic())

    def _observe_heartbeat(self, slot: _Slot, path: str) -> None:
        """The heartbeat file's mtime is wall time: its age on ``clock.now()`` places it on
        the monotonic clock. A beat from before this process started does not count."""
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return
        age = max(self._clock.now().timestamp() - mtime, 0.0)
        seen = self._clock.monotonic() - age
        if slot.started_at is not None and seen >= slot.started_at:
            self._alive(slot, seen)

    def _alive(self, slot: _Slot, at: float) -> None:
        slot.last_alive = max(slot.last_alive or at, at)
        if slot.state is State.STARTING:
            self._mark_ready(slot)

    @staticmethod
    def _mark_ready(slot: _Slot) -> None:
        slot.state = State.RUNNING
        slot.ready.set()

    # -- after an exit -------------------------------------------------------------

    async def _restart_due(self, slot: _Slot, ended: _Exit) -> bool:
        """Record how the process ended and decide: restart after a backoff (True), or
        leave the workload ``stopped`` / ``failed`` (False)."""
        slot.process = None
        if ended.uptime_s > slot.spec.backoff_max_s:
            slot.consecutive = 0
        slot.consecutive += 1
        slot.last_exit_code, slot.last_reason = ended.code, ended.reason
        policy = slot.spec.restart
        wanted = policy is RestartPolicy.ALWAYS or (
            policy is RestartPolicy.ON_FAILURE and not ended.clean
        )
        if not wanted:
            slot.state = State.STOPPED if ended.clean else State.FAILED
            LOGGER.log(logging.INFO if ended.clean else logging.WARNING, "workload %s: %s; "
                       "not restarted (restart: %s)", slot.name, ended.reason, policy,
                       extra={"task_id": slot.name})  # fmt: skip
            code = ReasonCode.SUPERVISOR_WORKLOAD_STOPPED if ended.clean else (
                ReasonCode.SUPERVISOR_WORKLOAD_EXITED)  # fmt: skip
            await self._report(slot, code)
            return False
        if self._in_window(slot) >= slot.spec.restart_budget.max_restarts:
            await self._budget_spent(slot)
            return False
        await self._back_off(slot)
        return True

    async def _budget_spent(self, slot: _Slot) -> None:
        budget = slot.spec.restart_budget
        slot.state = State.FAILED
        LOGGER.error("workload %s: %s; restart budget spent (%d in %g s): left failed",
                     slot.name, slot.last_reason, budget.max_restarts, budget.window_s,
                     extra={"task_id": slot.name})  # fmt: skip
        await self._report(slot, ReasonCode.SUPERVISOR_RESTART_BUDGET_EXHAUSTED)

    async def _back_off(self, slot: _Slot) -> None:
        slot.restarts.append(self._clock.monotonic())
        slot.restarts_total += 1
        slot.backoff_s = backoff_delay(slot.spec, slot.consecutive, self._rng)
        slot.state = State.BACKOFF
        LOGGER.warning("workload %s: %s; restarting in %.2f s", slot.name, slot.last_reason,
                       slot.backoff_s, extra={"task_id": slot.name})  # fmt: skip
        await self._report(slot, ReasonCode.SUPERVISOR_WORKLOAD_EXITED)
        await self._clock.sleep(slot.backoff_s)

    def _in_window(self, slot: _Slot) -> int:
        """How many automatic restarts the budget's sliding window holds now."""
        horizon = self._clock.monotonic() - slot.spec.restart_budget.window_s
        while slot.restarts and slot.restarts[0] <= horizon:
            slot.restarts.popleft()
        return len(slot.restarts)

    # -- stopping ------------------------------------------------------------------

    async def _stop_process(self, slot: _Slot, process: asyncio.subprocess.Process) -> None:
        """The stop signal to the process group; SIGKILL to it after the stop grace (real
        time), logged as an overrun naming the workload and pid."""
        spec = slot.spec
        if process.returncode is None:
            _signal_group(process.pid, spec.stop_signum)
            try:
                await asyncio.wait_for(process.wait(), spec.stop_grace_s)
            except TimeoutError:
                LOGGER.warning("workload %s (pid %d) overran its stop grace of %g s after %s: "
                               "killed with SIGKILL", slot.name, process.pid, spec.stop_grace_s,
                               spec.stop_signal, extra={"task_id": slot.name})  # fmt: skip
                await self._report(slot, ReasonCode.SUPERVISOR_STOP_OVERRAN, pid=process.pid)
        await self._reap(process)

    @staticmethod
    async def _reap(process: asyncio.subprocess.Process, keeper: GroupKeeper | None = None) -> None:
        """SIGKILL to whatever is left of the process group (its keeper released at once:
        the group is gone); wait for the leader, then (up to :data:`GROUP_GONE_S`) for
        the rest of the group, whose reaping is init's."""
        _signal_group(process.pid, signal.SIGKILL)
        if keeper is not None:
            await keeper.release()
        await process.wait()
        for _ in range(int(GROUP_GONE_S / 0.01)):
            if not _group_alive(process.pid):
                return
            await asyncio.sleep(0.01)

    async def _halt(self, slot: _Slot, *, report: bool, why: str = "shutdown") -> None:
        """Cancel the workload's task (which stops its process group) and wait for it."""
        task, slot.task = slot.task, None
        live = task is not None and not task.done()
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
            if not task.cancelled() and task.exception() is not None:
                LOGGER.error("workload %s: its task ended with %r", slot.name, task.exception())
        slot.process, slot.backoff_s = None, None
        if live:
            slot.state, slot.last_reason = State.STOPPED, why
            if report:
                await self._report(slot, ReasonCode.SUPERVISOR_WORKLOAD_STOPPED)

    async def _shutdown(self) -> None:
        """Stop every workload, dependents before their dependencies (one dependency
        level at a time, the workloads of a level together)."""
        self._stopping = True
        # operator actions under way end first (one that would start a process now
        # refuses: the supervisor is stopping)
        await asyncio.gather(*self._operations, return_exceptions=True)
        for depth in sorted({slot.depth for slot in self._slots.values()}, reverse=True):
            level = [slot for slot in self._slots.values() if slot.depth == depth]
            await asyncio.gather(*(self._halt_locked(slot) for slot in level))
        LOGGER.info("supervisor: every workload stopped")

    async def _halt_locked(self, slot: _Slot) -> None:
        async with slot.lock:  # an operator call under way finishes first
            await self._halt(slot, report=True)

    async def _start_now(self, slot: _Slot) -> None:
        if self._stopping:
            raise RuntimeError("the supervisor is shutting down")
        slot.consecutive, slot.backoff_s = 0, None
        slot.state, slot.last_reason = State.STARTING, ""
        slot.task = self._launch(slot, wait_deps=False, operator=True)
        attempted = asyncio.ensure_future(slot.attempted.wait())
        try:
            await asyncio.wait([attempted, slot.task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            attempted.cancel()

    # -- reporting -----------------------------------------------------------------

    def _slot(self, name: str) -> _Slot:
        try:
            return self._slots[name]
        except KeyError:
            raise KeyError(f"unknown workload: {name!r}") from None

    def _describe(self, slot: _Slot) -> dict[str, Any]:
        """``name, state, pid, age_s, restarts_in_window, restarts_total, last_exit_code,
        last_reason, restart, backoff_s, hang_timeout_s, liveness, last_alive_age_s,
        depends_on, labels, log``; ages in seconds on the clock, to 0.1 s. ``backoff_s``
        is the wait in effect while in ``backoff``, else the next one (without jitter);
        ``restarts_*`` count automatic restarts only (operator restarts are not)."""
        spec, now, pid = slot.spec, self._clock.monotonic(), slot.pid
        backoff = slot.backoff_s if slot.state is State.BACKOFF else None
        return {
            "name": slot.name,
            "state": str(slot.state),
            "pid": pid,
            "age_s": _age(now, slot.started_at) if pid is not None else None,
            "restarts_in_window": self._in_window(slot),
            "restarts_total": slot.restarts_total,
            "last_exit_code": slot.last_exit_code,
            "last_reason": slot.last_reason,
            "restart": str(spec.restart),
            "backoff_s": round(backoff or backoff_delay(spec, slot.consecutive + 1), 3),
            "hang_timeout_s": spec.hang_timeout_s,
            "liveness": spec.liveness.kind,
            "last_alive_age_s": _age(now, slot.last_alive) if pid is not None else None,
            "depends_on": list(spec.depends_on),
            "labels": {**spec.labels, "workload_kind": spec.workload_kind},
            "log": str(slot.log),
        }

    async def _report(self, slot: _Slot, code: ReasonCode, **extra: Any) -> None:
        """Hand a WORKLOAD_STATE report to ``record``; a failing ``record`` is logged."""
        if self._record is None:
            return
        details = {"state": str(slot.state), "pid": slot.pid, "exit_code": slot.last_exit_code,
                   "reason": slot.last_reason, "restarts_in_window": self._in_window(slot),
                   "restarts_total": slot.restarts_total, "backoff_s": slot.backoff_s,
                   "workload_kind": slot.spec.workload_kind, **extra}  # fmt: skip
        report = OperationsReport(
            event_type=EventType.WORKLOAD_STATE, task_id=slot.name,
            fired_at_ms=int(self._clock.now().timestamp() * 1000), targets=(),
            trace_id=new_trace_id(), reason_code=code, bot_id=SUPERVISOR_BOT_ID,
            details=details)  # fmt: skip
        try:
            await self._record(report)
        except Exception as err:  # recording must never stop supervision
            LOGGER.error("workload %s: recording %s failed: %r", slot.name, code, err,
                         extra={"task_id": slot.name, "reason_code": str(code)})  # fmt: skip


def _open_log(path: Path) -> BinaryIO:
    """``path`` opened for appending, unbuffered (the child and the stdout reader share
    it); its folder is created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "ab", buffering=0)


def _age(now: float, since: float | None) -> float | None:
    return None if since is None else round(max(now - since, 0.0), 1)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs. On Linux a zombie does not count:
    it holds no port or file any more, and a workload's leftover child, killed, is an
    orphan whose reaping is init's, which may take seconds. Elsewhere a zombie counts
    until reaped."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not sys.platform.startswith("linux"):
        return True
    try:
        entries = os.scandir("/proc")
    except OSError:
        return True
    with entries:
        return any(_running_in(entry.path, pgid) for entry in entries if entry.name.isdigit())


def _running_in(proc: str, pgid: int) -> bool:
    """Whether ``/proc/PID`` is a process of group ``pgid`` that is neither a zombie nor
    dead."""
    try:
        with open(f"{proc}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return int(fields[2]) == pgid and fields[0] not in (b"Z", b"X")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _drain(reader: asyncio.Task[None]) -> None:
    """Let the stdout reader reach end of file; give up after :data:`READER_DRAIN_S`."""
    await asyncio.wait([reader], timeout=READER_DRAIN_S)
    if not reader.done():
        reader.cancel()
        await asyncio.wait([reader])
    elif not reader.cancelled() and reader.exception() is not None:
        LOGGER.error("stdout reader failed: %r", reader.exception())


def _depths(workloads: Iterable[WorkloadSpec]) -> dict[str, int]:
    """Each workload's dependency depth.

    :raises ValueError: duplicate names, unknown dependencies, or a cycle.
    """
    specs: dict[str, WorkloadSpec] = {}
    for spec in workloads:
        if spec.name in specs:
            raise ValueError(f"workload {spec.name!r} is listed twice")
        specs[spec.name] = spec
    depths: dict[str, int] = {}

    def depth(name: str, trail: tuple[str, ...]) -> int:
        if name in trail:
            raise ValueError(f"dependency cycle: {' -> '.join([*trail, name])}")
        if name not in specs:
            raise ValueError(f"{trail[-1]!r} depends on unknown workload {name!r}")
        if name not in depths:
            deps = specs[name].depends_on
            depths[name] = 1 + max((depth(d, (*trail, name)) for d in deps), default=-1)
        return depths[name]

    for name in specs:
        depth(name, ())
    return depths
