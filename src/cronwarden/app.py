"""The composition root: settings and manifest → adapters → services. The only place
that knows every adapter."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import uvicorn
from watchfiles import awatch

from cronwarden.adapters.fallback import FallbackLock
from cronwarden.adapters.http_probe import HttpProber
from cronwarden.adapters.memory import LocalBus, MemoryLock
from cronwarden.adapters.notify import AppriseNotifier
from cronwarden.adapters.redis_bus import DEFAULT_PREFIX, RedisStreamBus, StreamSettings
from cronwarden.adapters.redis_client import connect as connect_redis
from cronwarden.adapters.redis_killswitch import RedisKillSwitch
from cronwarden.adapters.redis_lock import RedisLock
from cronwarden.adapters.sharded_probe import ShardedProber
from cronwarden.adapters.sql.controls import Cached, SqlKillSwitch, SqlPauses
from cronwarden.adapters.sql.store import SqlStore, sqlite_url
from cronwarden.adapters.system import SystemClock
from cronwarden.adapters.systemd import notify as sd_notify
from cronwarden.adapters.systemd import watchdog_period_s
from cronwarden.core.report import EventType, OperationsReport
from cronwarden.errors import BackendUnavailable, CronwardenError, ManifestError
from cronwarden.interfaces.api.app import DaemonViews, create_app
from cronwarden.manifest import LoadResult, Manifest, load_manifest
from cronwarden.manifest.services import HeartbeatSettings, ServiceSpec
from cronwarden.ports import Bus, Clock, KillSwitch, KillSwitchState, Lock, Pauses, Prober
from cronwarden.reasons import ReasonCode
from cronwarden.redact import redact_url
from cronwarden.services.dispatch import TRIGGER_TOPIC, Dispatcher
from cronwarden.services.health import CronHealth
from cronwarden.services.heartbeat import HealthHeartbeat, Leadership, NotRestarted, Restart
from cronwarden.services.notifications import Notifications
from cronwarden.services.overlap import OverlapLeases
from cronwarden.services.paging import Pager
from cronwarden.services.scheduler import CronRunner, new_trace_id
from cronwarden.services.supervisor import STOPPED_BY_OPERATOR, Supervisor
from cronwarden.services.worker import Worker
from cronwarden.telemetry.metrics import CronMetrics, HeartbeatMetrics, SupervisorCollector
from cronwarden.workers.command import run_command
from cronwarden.workers.http import send as send_http

LOGGER = logging.getLogger("cronwarden.app")
STATE_DIR_ENV = "CRONWARDEN_STATE_DIR"
REDIS_URL_ENV = "CRONWARDEN_REDIS_URL"
DATABASE_URL_ENV = "CRONWARDEN_DATABASE_URL"
REDIS_PREFIX_ENV = "CRONWARDEN_REDIS_PREFIX"
WORKER_IDLE_ENV = "CRONWARDEN_WORKER_IDLE_S"
#: The consumer group every worker of a deployment joins: each trigger runs on one.
WORKER_GROUP = "workers"


def state_dir(manifest_path: Path, manifest: Manifest | None) -> Path:
    """Where state lives: ``$CRONWARDEN_STATE_DIR``, else the manifest's ``state_dir``
    (relative to the manifest's folder), else ``.cronwarden`` beside the manifest."""
    from_env = os.environ.get(STATE_DIR_ENV)
    if from_env:
        return Path(from_env)
    folder = manifest_path.resolve().parent
    if manifest is not None and manifest.state_dir:
        return folder / manifest.state_dir
    return folder / ".cronwarden"


def artifacts_dir(manifest_path: Path, manifest: Manifest | None) -> Path:
    """Where runs keep their artifacts: the manifest's ``artifacts_dir`` (relative to its
    folder; spec 001's ``global.artifacts_dir``), else ``artifacts`` in the state folder."""
    if manifest is not None and manifest.artifacts_dir:
        return manifest_path.resolve().parent / manifest.artifacts_dir
    return state_dir(manifest_path, manifest) / "artifacts"


def open_store(directory: Path, *, upgrade: bool = True) -> SqlStore:
    """The store: PostgreSQL at ``$CRONWARDEN_DATABASE_URL`` when it is set (shared by
    every instance), else ``state.db`` (SQLite) in ``directory``; its schema brought up
    to date unless not ``upgrade``."""
    url = database_url()
    return SqlStore(url if url else sqlite_url(directory), upgrade=upgrade)


def database_url() -> str | None:
    """``$CRONWARDEN_DATABASE_URL`` with the driver cronwarden ships (``psycopg``) when
    it names none: ``postgresql://…`` and ``postgres://…`` are taken as written."""
    url = os.environ.get(DATABASE_URL_ENV)
    if not url:
        return None
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url.removeprefix(bare)
    return url


def shared_bus_url() -> str | None:
    """``$CRONWARDEN_REDIS_URL``: the shared bus of a distributed deployment, if any."""
    return os.environ.get(REDIS_URL_ENV) or None


def open_bus(manifest: Manifest) -> tuple[Bus, str]:
    """The bus, and how ``status`` names it (credentials masked): Redis Streams when
    ``CRONWARDEN_REDIS_URL`` is set, else the in-process bus. Call inside the event loop.

    A worker takes up to twice its ``max_concurrent_runs`` triggers at once (the rest
    wait in Redis for a free worker); one whose worker stopped is taken over after
    ``$CRONWARDEN_WORKER_IDLE_S`` (default 30) seconds.
    """
    url = shared_bus_url()
    if url is None:
        return LocalBus(), "in-process"
    settings = StreamSettings(
        prefix=os.environ.get(REDIS_PREFIX_ENV, DEFAULT_PREFIX),
        max_in_flight=2 * manifest.max_concurrent_runs,
        idle_ms=int(_seconds_env(WORKER_IDLE_ENV, 30.0) * 1000),
    )
    return RedisStreamBus(connect_redis(url), settings), f"redis streams {redact_url(url)}"


def _seconds_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        raise CronwardenError(f"${name}: {raw!r} is not a number of seconds",
                              code="CRONWARDEN_INVALID_OPTION") from None  # fmt: skip
    if not 1 <= seconds <= 86_400:
        raise CronwardenError(f"${name}: {raw} is outside 1 to 86400 seconds",
                              code="CRONWARDEN_INVALID_OPTION")  # fmt: skip
    return seconds


def backend_names(directory: Path) -> dict[str, str]:
    """Which backends this configuration uses, for ``status`` (credentials masked)."""
    url, database = shared_bus_url(), database_url()
    return {
        "store": f"postgresql {redact_url(database)}"
        if database
        else f"sqlite {directory / 'state.db'}",
        "bus": f"redis streams {redact_url(url)}" if url else "in-process",
        "lock": "redis (in-process while Redis is down)" if url else "in-process",
        "kill_switch": "redis, kept in the store too" if url else "in the store",
    }


def open_kill_switch(store: SqlStore, clock: Clock, bus: Bus) -> KillSwitch:
    """The daemon's kill switch: in Redis beside a shared bus (every instance sees a
    change at its next read), kept in the store too so that a Redis restart cannot
    forget it; else in the store."""
    durable = SqlKillSwitch(store)
    if not isinstance(bus, RedisStreamBus):
        return durable
    return RedisKillSwitch(bus.client, bus.settings.prefix, durable, clock)


@contextlib.asynccontextmanager
async def operator_kill_switch(
    store: SqlStore | BackendUnavailable, clock: Clock
) -> AsyncIterator[KillSwitch]:
    """The kill switch as the CLI reads and sets it: the one the daemons read. ``store``
    is the open store, or why it could not be opened: with Redis, the switch still
    works (the store's copy is brought up to date when it answers); without, the
    error is raised."""
    durable: KillSwitch = (
        SqlKillSwitch(store) if isinstance(store, SqlStore) else _UnreachableKillSwitch(store)
    )
    url = shared_bus_url()
    if url is None:
        if isinstance(store, BackendUnavailable):
            raise store
        yield durable
        return
    client = connect_redis(url)
    prefix = os.environ.get(REDIS_PREFIX_ENV, DEFAULT_PREFIX)
    try:
        yield RedisKillSwitch(client, prefix, durable, clock)
    finally:
        await client.aclose()


class _UnreachableKillSwitch:
    """The store's copy of the kill switch while the store cannot be opened."""

    def __init__(self, why: BackendUnavailable) -> None:
        self._why = why

    async def state(self) -> KillSwitchState:
        raise BackendUnavailable(str(self._why))

    async def set(self, active: bool, actor: str, reason: str, at: datetime) -> KillSwitchState:
        raise BackendUnavailable(str(self._why))


def open_store_or_why(directory: Path) -> SqlStore | BackendUnavailable:
    """The store, or why it cannot be opened (for commands that can do without it)."""
    try:
        return open_store(directory)
    except BackendUnavailable as err:
        return err


def shared_lock(bus: Bus, clock: Clock) -> Lock:
    """The claims of fires: in Redis beside a Redis bus (spec 000's ``SET NX PX``, the
    in-process lock behind it while Redis cannot be reached), else in-process."""
    if not isinstance(bus, RedisStreamBus):
        return MemoryLock(clock)
    return FallbackLock(RedisLock(bus.client), MemoryLock(clock), clock)


def overlap_leases(bus: Bus, clock: Clock) -> OverlapLeases | None:
    """With a shared bus, overlap policies hold across workers through leases in Redis
    (the in-process lock behind it during an outage); with the in-process bus, the one
    worker's own bookkeeping is enough."""
    if not isinstance(bus, RedisStreamBus):
        return None
    return OverlapLeases(shared_lock(bus, clock), clock, bus.settings.prefix, instance_name())


async def _close_bus(bus: Bus) -> None:
    if isinstance(bus, RedisStreamBus):
        await bus.aclose()


async def _prepare_bus(bus: Bus) -> None:
    """A shared bus gets its worker group before the first publish, so that triggers
    published while no worker runs wait for one."""
    if isinstance(bus, RedisStreamBus):
        try:
            await bus.ensure_group(TRIGGER_TOPIC, WORKER_GROUP)
        except CronwardenError as err:  # publishes will fail and say so, fire by fire
            LOGGER.warning("%s; the first worker to connect creates the group", err)


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def instance_gone(owner: str) -> bool:
    """Whether ``owner`` (an :func:`instance_name`) was a process of this host that no
    longer exists: its unsettled fires can be taken over at once."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def event_report(
    event: EventType, code: ReasonCode, now_ms: int, details: dict[str, Any], task_id: str = ""
) -> OperationsReport:
    """The report of something other than a fire: a load, a reload, an operator's action."""
    return OperationsReport(
        event_type=event,
        task_id=task_id,
        fired_at_ms=now_ms,
        targets=(),
        trace_id=new_trace_id(),
        reason_code=code,
        details=details,
    )


def _loaded_report(
    result: LoadResult, now_ms: int, trigger: str, diff: dict[str, list[str]]
) -> OperationsReport:
    return event_report(
        EventType.MANIFEST_LOADED,
        ReasonCode.CRON_RUNNER_MANIFEST_RELOAD_OK,
        now_ms,
        {
            "tasks": [task.task_id for task in result.manifest.tasks],
            "problems": [str(problem) for problem in result.problems],
            "trigger": trigger,
            **diff,
        },
    )


async def run_scheduler(
    manifest_path: Path,
    result: LoadResult,
    store: SqlStore,
    stop: asyncio.Event,
    *,
    on_report: Callable[[OperationsReport], None],
    clock: Clock | None = None,
    handle_sighup: bool = True,
    http: socket.socket | None = None,
    with_worker: bool = True,
) -> None:
    """Run the scheduler of ``result``'s manifest until ``stop``, reloading the manifest
    when its file changes or on SIGHUP; with ``with_worker``, a worker in-process too
    (it joins the shared worker group when the bus is Redis)."""
    clock = clock or SystemClock()
    namespace = str(result.manifest.metrics.get("namespace", "cronwarden"))
    observe = Observers(clock, namespace, on_report)
    on_report = observe.report
    bus, _ = open_bus(result.manifest)
    controls = Cached(open_kill_switch(store, clock, bus), SqlPauses(store), clock)
    await _prepare_bus(bus)
    triggers = bus.consume(TRIGGER_TOPIC, WORKER_GROUP, instance_name())  # before any fire
    lock = shared_lock(bus, clock)
    dispatcher = Dispatcher(
        clock=clock,
        lock=lock,
        bus=bus,
        kill_switch=controls,
        store=store,
        pauses=controls,
        owner=instance_name(),
        prefix=bus.settings.prefix if isinstance(bus, RedisStreamBus) else DEFAULT_PREFIX,
        owner_gone=instance_gone,
    )
    runner = CronRunner(result.manifest, dispatcher, on_report=on_report)
    observe.health.next_fire_ms = runner.next_due_ms
    observe.health.lock_mode = lambda: lock.mode
    observe.health.shared_lock_down = lambda: isinstance(lock, FallbackLock) and lock.shared_down
    observe.health.reports_waiting = lambda: dispatcher.unrecorded.depth
    observe.metrics.reports_waiting.set_function(lambda: dispatcher.unrecorded.depth)
    observe.metrics.reports_dropped.set_function(lambda: dispatcher.unrecorded.dropped)
    observe.task_class = runner.task_class
    await runner.record(_loaded_report(result, _ms(clock), "start", {}))
    reloader = Reloader(manifest_path, runner, clock)
    if handle_sighup:
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGHUP, lambda: asyncio.ensure_future(reloader.reload("SIGHUP"))
        )
    watcher = asyncio.ensure_future(reloader.watch(stop))
    refresher = asyncio.ensure_future(controls.keep_fresh(stop))
    artifacts = artifacts_dir(manifest_path, result.manifest)
    notifications = Notifications(clock, store, AppriseNotifier(), lambda: runner.manifest)
    worker = Worker(clock, store, lambda: runner.manifest, artifacts, request=send_http,
                    notifications=notifications, leases=overlap_leases(bus, clock),
                    die_with_worker=isinstance(bus, RedisStreamBus))  # fmt: skip
    working = asyncio.ensure_future(worker.run(triggers, stop) if with_worker else stop.wait())

    async def force(task_id: str, actor: str, reason: str) -> dict[str, Any]:
        return (await runner.force(task_id, actor, reason)).to_dict()

    async def record(reports: Sequence[OperationsReport]) -> None:
        recorded = await dispatcher.record(list(reports))
        await dispatcher.announce(recorded)
        for report in recorded:
            observe.report(report)

    pager = Pager(AppriseNotifier(), lambda: runner.manifest, record)

    async def keep(reports: Sequence[OperationsReport]) -> None:
        """Store, publish and observe the reports of the watchdog and the supervisor;
        page in the background for those that page."""
        await record(reports)
        pager.send(reports)

    directory = state_dir(manifest_path, result.manifest)
    supervisor, checker = supervise(clock, result.manifest, directory, keep)
    heartbeat = watchdog(
        clock, lambda: runner.manifest, keep, observe, controls,
        Leadership(lock, f"{dispatcher.prefix}:heartbeat:leader", instance_name())
        if isinstance(bus, RedisStreamBus) else None,
        service_restarter(directory, lambda: runner.manifest, supervisor), controls,
    )  # fmt: skip
    observe.heartbeat, observe.supervisor = heartbeat, supervisor
    if supervisor is not None:
        observe.metrics.registry.register(SupervisorCollector(supervisor.snapshot, namespace))
    views = DaemonViews(
        heartbeat_health=heartbeat.health if heartbeat else None,
        heartbeat_view=heartbeat.view if heartbeat else None,
        supervisor_view=supervisor.snapshot if supervisor else None,
        supervisor_restart=supervisor.restart if supervisor else None,
        supervisor_stop=supervisor.stop_workload if supervisor else None,
    )
    api = create_app(observe.metrics, observe.snapshot, force, views=views)
    server = _HttpServer(api) if http else None
    served = asyncio.ensure_future(server.serve(sockets=[http])) if server and http else None
    runner.start_at(_ms(clock), await store.last_recorded())  # what passed while stopped
    sweeping = asyncio.ensure_future(heartbeat.run(stop) if heartbeat else stop.wait())
    supervising = asyncio.ensure_future(supervisor.run(stop) if supervisor else stop.wait())
    systemd = asyncio.ensure_future(_tell_systemd(stop, heartbeat))
    # The manifest, the heap and the compiled schedules live as long as the process:
    # keep them out of the cycle collector's full passes, which would otherwise stall
    # a busy tick for tens of milliseconds with 100,000 tasks.
    gc.freeze()
    try:
        await runner.run(stop)
    finally:
        watcher.cancel()
        refresher.cancel()
        stop.set()  # the scheduler may have stopped on an error: the rest stop with it
        # workloads stop in reverse dependency order, each within its grace
        await asyncio.gather(sweeping, supervising, systemd, return_exceptions=True)
        await pager.aclose()
        await observe.aclose()
        if heartbeat is not None:
            await heartbeat.aclose()
        if checker is not None:
            await checker.aclose()
        await working  # runs still going are stopped and recorded as cancelled
        await triggers.aclose()
        await _close_bus(bus)
        if server and served:
            server.should_exit = True
            await served


async def run_worker(
    manifest_path: Path, result: LoadResult, store: SqlStore, stop: asyncio.Event,
    *, clock: Clock | None = None,
) -> None:  # fmt: skip
    """Only consume ``cron.trigger`` from the shared bus and run targets until ``stop``,
    following the manifest file (an unreadable one keeps the last good one)."""
    clock = clock or SystemClock()
    bus, _ = open_bus(result.manifest)
    manifest = ManifestFollower(manifest_path, result.manifest)
    notifications = Notifications(clock, store, AppriseNotifier(), manifest.current)
    worker = Worker(clock, store, manifest.current, artifacts_dir(manifest_path, result.manifest),
                    request=send_http, notifications=notifications,
                    leases=overlap_leases(bus, clock),
                    die_with_worker=isinstance(bus, RedisStreamBus))  # fmt: skip
    triggers = bus.consume(TRIGGER_TOPIC, WORKER_GROUP, instance_name())
    following = asyncio.ensure_future(manifest.follow(stop))
    try:
        await worker.run(triggers, stop)
    finally:
        following.cancel()
        await triggers.aclose()
        await _close_bus(bus)


class WorkloadRestarter(Protocol):
    """What the watchdog needs of the supervisor: its workloads, and a restart by name."""

    def snapshot(self) -> list[dict[str, Any]]: ...

    async def restart(self, name: str) -> dict[str, Any]: ...


def supervise(
    clock: Clock, manifest: Manifest, directory: Path,
    record: Callable[[Sequence[OperationsReport]], Awaitable[None]],
) -> tuple[Supervisor | None, HttpProber | None]:  # fmt: skip
    """The supervisor of the manifest's workloads (``None`` without any), their output in
    ``supervisor/NAME.log`` in the state folder, and the prober of their health URLs.

    Workloads are read at start: a reload that changes them is logged and takes effect
    at the next start (a reload must not restart running programs behind your back)."""
    if not manifest.workloads:
        return None, None
    prober = HttpProber(max(16, sum(1 for w in manifest.workloads if w.liveness.health_url)))

    async def check_url(url: str, timeout_s: float) -> bool:
        poll = await prober.poll(url, timeout_s)
        return poll.status_code is not None and 200 <= poll.status_code < 300

    async def record_one(report: OperationsReport) -> None:
        await record([report])

    supervisor = Supervisor(clock, manifest.workloads, directory / "supervisor",
                            check_url=check_url, record=record_one)  # fmt: skip
    return supervisor, prober


def watchdog(
    clock: Clock,
    manifest: Callable[[], Manifest],
    keep: Callable[[Sequence[OperationsReport]], Awaitable[None]],
    observe: Observers,
    kill_switch: KillSwitch,
    leadership: Leadership | None,
    restart: Restart,
    pauses: Pauses,
) -> HealthHeartbeat | None:
    """The HealthHeartbeat of the daemon (``None`` when the manifest turns it off): its
    reports stored and published like the scheduler's, the dead-man URL pinged after
    each sweep."""
    first = manifest()
    if not first.heartbeat_settings.enabled:
        return None
    settings = first.heartbeat_settings
    prober: HttpProber | ShardedProber = (
        HttpProber(settings.max_in_flight) if settings.sweep_processes == 1
        else ShardedProber(settings.sweep_processes, settings.max_in_flight)
    )  # fmt: skip

    async def kill_switch_active() -> bool:
        return (await kill_switch.state()).active

    async def after_sweep(report: OperationsReport) -> None:
        url = manifest().heartbeat_settings.deadman_url
        if url:  # "the watchdog swept": a service down is told by pages, not here
            observe.ping_deadman(prober, url)

    def registry() -> tuple[Sequence[ServiceSpec], HeartbeatSettings]:
        current = manifest()
        return current.watched, current.heartbeat_settings

    return HealthHeartbeat(
        clock, prober, registry, record=keep, restart=restart,
        kill_switch_active=kill_switch_active, after_sweep=after_sweep, leadership=leadership,
        registry_problems=lambda: observe.registry_problems, paused=pauses.paused_tasks,
    )  # fmt: skip


def service_restarter(
    directory: Path, manifest: Callable[[], Manifest], supervisor: WorkloadRestarter | None = None
) -> Restart:
    """How the watchdog restarts a service: through the supervisor when the service
    names a workload, else by running its ``restart_command``, its output kept in
    ``restarts/SLUG/`` in the state folder. The command must finish within
    ``restart_timeout_s``; what it started (``nohup server &``, a forking daemon) is
    left running when it exits: starting the service is its purpose. Only a command
    that overran its timeout, or is still running when the daemon stops, has its
    whole process group stopped."""

    async def restart(service: ServiceSpec) -> str:
        if service.restart is not None:
            name = service.restart.supervisor
            if supervisor is None:
                raise CronwardenError(f"no supervisor runs here to restart {name!r}",
                                      code="CRONWARDEN_RESTART_FAILED")  # fmt: skip
            _restartable(name, supervisor)
            snapshot = await supervisor.restart(name)
            return f"supervisor restarted {name} (pid {snapshot.get('pid')})"
        argv = service.restart_command or ()
        result = await run_command(
            argv, env=os.environ, cwd=None, out_dir=directory / "restarts" / service.slug,
            timeout_s=manifest().heartbeat_settings.restart_timeout_s, kill_orphans=False,
        )  # fmt: skip
        if result.status != "succeeded":
            stderr = " ".join(result.stderr_tail.split())[-300:]
            raise CronwardenError(f"{argv[0]}: {result.error or result.status}"
                                  f"{'; stderr: ' + stderr if stderr else ''}",
                                  code="CRONWARDEN_RESTART_FAILED")  # fmt: skip
        return f"ran {argv[0]}: exit 0 in {result.duration_ms} ms"

    return restart


def _restartable(name: str, supervisor: WorkloadRestarter) -> None:
    """Whether the watchdog may restart workload ``name`` now: not one an operator
    stopped, not one the supervisor gave up on (its budget is spent: a person decides),
    and no need while the supervisor is starting it already."""
    found = next((w for w in supervisor.snapshot() if w["name"] == name), None)
    if found is None:
        raise CronwardenError(f"the supervisor has no workload {name!r}",
                              code="CRONWARDEN_RESTART_FAILED")  # fmt: skip
    state, why = found["state"], found.get("last_reason", "")
    if state == "stopped" and why == STOPPED_BY_OPERATOR:
        raise CronwardenError(f"workload {name!r} was stopped by an operator; not restarted "
                              f"behind their back (`cronwarden supervisor restart {name}`)",
                              code="CRONWARDEN_RESTART_FAILED")  # fmt: skip
    if state == "failed":
        raise CronwardenError(f"the supervisor gave up on workload {name!r} ({why}); "
                              f"`cronwarden supervisor restart {name}` once it is fixed",
                              code="CRONWARDEN_RESTART_FAILED")  # fmt: skip
    if state in ("starting", "backoff"):
        raise NotRestarted(f"the supervisor is starting {name!r} already ({state})")


async def _tell_systemd(stop: asyncio.Event, heartbeat: HealthHeartbeat | None) -> None:
    """``READY=1`` now, ``WATCHDOG=1`` every half watchdog period while the watchdog
    sweeps on time (so systemd restarts a daemon whose sweeps stalled), ``STOPPING=1``
    at the end."""
    sd_notify("READY=1")
    period = watchdog_period_s()
    try:
        while period is not None and not stop.is_set():
            if heartbeat is None or heartbeat.on_time():
                sd_notify("WATCHDOG=1")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period)
        await stop.wait()
    finally:
        sd_notify("STOPPING=1")


class ManifestFollower:
    """The manifest a worker runs with: reread whenever its file changes; a file that
    cannot be read is logged and the last good manifest kept."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self._path, self._manifest = path, manifest

    def current(self) -> Manifest:
        return self._manifest

    async def follow(self, stop: asyncio.Event) -> None:
        async for _ in file_changes(self._path, stop):
            try:
                result = await asyncio.to_thread(load_manifest, self._path)
            except ManifestError as err:
                LOGGER.warning("manifest reload failed, the last good one stays: %s", err,
                               extra={"reason_code": str(err.code)})  # fmt: skip
                continue
            self._manifest = result.manifest
            LOGGER.info("manifest reloaded: %d task(s), %d target(s)", len(result.manifest.tasks),
                        len(result.manifest.targets))  # fmt: skip


class Observers:
    """Metrics and health, fed by every report before it reaches ``on_report``."""

    def __init__(
        self, clock: Clock, namespace: str, on_report: Callable[[OperationsReport], None]
    ) -> None:
        self._clock, self._on_report = clock, on_report
        self.metrics = CronMetrics(namespace)
        self.heartbeat_metrics = HeartbeatMetrics(self.metrics.registry, namespace)
        self.health = CronHealth(started_ms=_ms(clock))
        self.task_class: Callable[[str], str] = lambda task_id: ""
        self.heartbeat: HealthHeartbeat | None = None
        self.supervisor: Supervisor | None = None
        #: The errors of the last load in ``services:`` and ``heartbeat:`` (the
        #: watchdog is red while its registry did not load whole).
        self.registry_problems: list[str] = []
        self._pings: set[asyncio.Task[None]] = set()

    def report(self, report: OperationsReport) -> None:
        now_ms = _ms(self._clock)
        if report.event_type is EventType.MANIFEST_LOADED:
            self.metrics.entries.set(len(report.details.get("tasks", [])))
            self.registry_problems = [
                problem for problem in report.details.get("problems", ())
                if problem.startswith("ERROR ")
                and problem.split(" ", 3)[2].startswith(("services", "heartbeat"))
            ]  # fmt: skip
        self.heartbeat_metrics.observe(report)
        self.metrics.observe(report, self.task_class(report.task_id), now_ms)
        self.health.observe(report, now_ms)
        self._on_report(report)

    def snapshot(self) -> dict[str, Any]:
        snapshot = self.health.snapshot(_ms(self._clock))
        if self.heartbeat is not None:
            snapshot["heartbeat"] = self.heartbeat.health()
        if self.supervisor is not None:
            workloads = self.supervisor.snapshot()
            troubled = [f"{w['name']} {w['state']}: {w['last_reason'] or '-'}"
                        for w in workloads if w["state"] in ("failed", "hung")]  # fmt: skip
            snapshot["supervisor"] = {"workloads": len(workloads), "troubled": troubled}
            # a workload in trouble is told (and paged when its budget is spent); the
            # scheduler it runs beside still dispatches, so its health stays green
            snapshot["warnings"] = [*snapshot["warnings"],
                                    *(f"supervisor: {line}" for line in troubled)]  # fmt: skip
        return snapshot

    def ping_deadman(self, prober: Prober, url: str) -> None:
        """Ping the dead-man URL in the background: a slow one never delays a sweep."""

        async def ping() -> None:
            poll = await prober.poll(url, 10.0)
            if poll.status_code is None or poll.status_code >= 400:
                LOGGER.warning("dead-man ping %s failed: %s", redact_url(url),
                               poll.error or f"HTTP {poll.status_code}")  # fmt: skip

        task = asyncio.ensure_future(ping())
        self._pings.add(task)
        task.add_done_callback(self._pings.discard)

    async def aclose(self) -> None:
        """Give up the dead-man pings still under way (the daemon is stopping)."""
        for task in self._pings:
            task.cancel()
        await asyncio.gather(*self._pings, return_exceptions=True)


class _HttpServer(uvicorn.Server):
    """uvicorn inside our event loop; the daemon, not uvicorn, handles signals."""

    def __init__(self, app: Any) -> None:
        super().__init__(uvicorn.Config(app, log_level="warning", lifespan="off"))

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen(address: str) -> socket.socket | None:
    """A listening socket for ``HOST:PORT`` (port 0 picks a free one), or ``None`` for ``off``.

    :raises CronwardenError: when the address is malformed or cannot be bound.
    """
    if address == "off":
        return None
    host, _, port = address.rpartition(":")
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), int(port)))
    except (OSError, ValueError) as err:
        raise CronwardenError(f"http: cannot listen on {address!r}: {err}",
                              code="CRONWARDEN_HTTP_UNAVAILABLE") from None  # fmt: skip
    sock.listen(128)
    sock.setblocking(False)
    return sock


class Reloader:
    """Re-reads the manifest on demand; a valid one replaces the running one at once,
    an unreadable one keeps the last good manifest running. Either way, a report."""

    def __init__(self, path: Path, runner: CronRunner, clock: Clock) -> None:
        self._path, self._runner, self._clock = path, runner, clock

    async def reload(self, trigger: str) -> OperationsReport:
        now_ms = _ms(self._clock)
        try:
            result = await asyncio.to_thread(load_manifest, self._path)
        except ManifestError as err:
            report = _failed_reload_report(str(err), trigger, now_ms)
        else:
            _warn_start_only(self._runner.manifest, result.manifest)
            diff = self._runner.replace(result.manifest, now_ms)
            report = _loaded_report(result, now_ms, trigger, diff)
        return await self._runner.record(report)

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload whenever the manifest file is written (editors that replace it included)."""
        async for _ in file_changes(self._path, stop):
            await self.reload("file watch")


async def file_changes(path: Path, stop: asyncio.Event) -> AsyncIterator[None]:
    """Once per batch of writes to ``path`` (editors that replace the file included),
    until ``stop``."""
    name, folder = path.name, await asyncio.to_thread(lambda: path.resolve().parent)
    async for _ in awatch(
        folder,
        watch_filter=lambda _change, changed: Path(changed).name == name,
        stop_event=stop,
    ):
        yield None


def _ms(clock: Clock) -> int:
    return int(clock.now().timestamp() * 1000)


def _warn_start_only(running: Manifest, loaded: Manifest) -> None:
    """Say so when a reload changes what is read only at start."""
    before, after = running.heartbeat_settings, loaded.heartbeat_settings
    for what, changed in (
        ("supervisor.workloads", running.workloads != loaded.workloads),
        ("heartbeat.enabled", before.enabled != after.enabled),
        ("heartbeat.max_in_flight", before.max_in_flight != after.max_in_flight),
        ("heartbeat.sweep_processes", before.sweep_processes != after.sweep_processes),
    ):
        if changed:
            LOGGER.warning(
                "%s changed: it is read at start; the change takes effect at the "
                "next start (running workloads are kept as they are)",
                what,
            )


def _failed_reload_report(why: str, trigger: str, now_ms: int) -> OperationsReport:
    return event_report(
        EventType.MANIFEST_RELOAD_FAILED,
        ReasonCode.CRON_RUNNER_MANIFEST_UNREADABLE,
        now_ms,
        {"error": why, "trigger": trigger, "kept": "the last good manifest"},
    )
