"""The ``cronwarden`` command line (typer + rich).

Exit codes (documented in docs/cli.md):

* 0 — success
* 1 — the command ran and found a problem (reserved for validate, status, ...)
* 2 — invalid input: a bad expression, timezone or option; one line on stderr,
  ``REASON_CODE: why``, never a traceback
* 70 — an internal error (a bug): one line on stderr
* 130 — interrupted
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import getpass
import json
import signal
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, tzinfo
from itertools import islice
from pathlib import Path
from typing import Annotated, Any, TextIO, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from cronwarden._version import __version__
from cronwarden.adapters.notify import AppriseNotifier
from cronwarden.adapters.sql.controls import SqlPauses
from cronwarden.adapters.sql.migrate import HEAD, upgrade_sql
from cronwarden.adapters.sql.store import SqlStore, sqlite_url
from cronwarden.adapters.system import SystemClock
from cronwarden.app import (
    artifacts_dir,
    backend_names,
    database_url,
    event_report,
    listen,
    open_store,
    open_store_or_why,
    operator_kill_switch,
    run_scheduler,
    run_worker,
    shared_bus_url,
    state_dir,
)
from cronwarden.core.pipeline import explain, lock_key
from cronwarden.core.report import HEALTH_HEARTBEAT_BOT_ID, EventType, OperationsReport
from cronwarden.cron import CronSchedule, describe, parse
from cronwarden.cron.zones import resolve_zone
from cronwarden.errors import (
    BackendUnavailable,
    CronError,
    CronwardenError,
    ManifestError,
    UnknownTask,
)
from cronwarden.interfaces.cli_common import (
    DEFAULT_MANIFEST,
    has_state,
    manifest_if_readable,
    read_state,
)
from cronwarden.interfaces.cli_health import deadman_app, health_app
from cronwarden.interfaces.cli_supervisor import supervisor_app
from cronwarden.interfaces.progress import RunProgress
from cronwarden.manifest import Level, LoadResult, Manifest, Problem, TaskSpec, load_manifest
from cronwarden.manifest.model import TaskClass
from cronwarden.manifest.targets import CommandTarget, HttpTarget, PythonTarget
from cronwarden.ports import KillSwitchState, RunRecord
from cronwarden.reasons import ReasonCode
from cronwarden.services.notifications import Notifications
from cronwarden.services.scheduler import new_trace_id
from cronwarden.services.worker import Worker
from cronwarden.telemetry.logging import configure, log_problem, log_report
from cronwarden.workers.http import send as send_http

T = TypeVar("T")

EXIT_PROBLEM_FOUND = 1
EXIT_INVALID_INPUT = 2
EXIT_INTERNAL_ERROR = 70
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="cronwarden",
    help="Operations control plane: exactly-once scheduled work, explained.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cronwarden {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """cronwarden: fires scheduled work exactly once and explains every decision."""


def _parse_after(text: str | None, zone: tzinfo) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CronError(f"--after: {text!r} is not an ISO 8601 date-time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _fires(schedule: CronSchedule, after: datetime, count: int) -> list[datetime]:
    return list(islice(schedule.iter_after(after), count))


def _print_table(expr: str, schedule: CronSchedule, fires: list[datetime]) -> None:
    console = Console()
    title = f"[bold]{expr}[/bold] — {describe(expr)} ({schedule.tz})"
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column(f"local ({schedule.tz})")
    table.add_column("UTC")
    for number, fire in enumerate(fires, start=1):
        table.add_row(str(number), fire.isoformat(), fire.astimezone(UTC).isoformat())
    console.print(table)


@app.command("next")
def next_fires(
    task_or_expression: Annotated[
        str,
        typer.Argument(
            metavar="TASK|EXPR", help="A task id of the manifest, or a cron expression."
        ),
    ],
    count: Annotated[
        int, typer.Option("-n", "--count", min=1, max=100_000, help="How many fires to list.")
    ] = 5,
    tz: Annotated[
        str | None,
        typer.Option("--tz", help="IANA timezone of the expression [default: UTC or the task's]."),
    ] = None,
    after: Annotated[
        str | None,
        typer.Option(
            "--after",
            help="ISO 8601 instant to start after (default: now); naive means in --tz.",
        ),
    ] = None,
    hash_key: Annotated[
        str | None, typer.Option("--hash-key", help="Task id that seeds H fields.")
    ] = None,
    manifest: Annotated[
        Path, typer.Option("--manifest", help="Manifest to look TASK up in.")
    ] = DEFAULT_MANIFEST,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON array of ISO 8601 instants.")
    ] = False,
) -> None:
    """List the next fires of a task or a cron expression, in its timezone and in UTC."""
    expression, zone_name, key = _task_schedule(task_or_expression, manifest)
    zone = resolve_zone(tz or zone_name)
    schedule = parse(expression, zone, hash_key=hash_key or key)
    fires = _fires(schedule, _parse_after(after, zone), count)
    if as_json:
        typer.echo(json.dumps([fire.isoformat() for fire in fires]))
    else:
        _print_table(expression, schedule, fires)


def _task_schedule(text: str, manifest: Path) -> tuple[str, str, str | None]:
    """``(expression, timezone, hash key)`` of the task named ``text``, else ``text`` itself."""
    if len(text.split()) != 1 or text.startswith("@"):
        return text, "UTC", None
    if not manifest.exists():
        raise CronError(f"{text!r} is not a cron expression and {manifest} does not exist")
    loaded = load_manifest(manifest).manifest
    try:
        task = loaded.task(text)
    except KeyError:
        raise CronError(f"{text!r} is neither a task of {manifest} nor a cron expression") from None
    return task.cron_expression, loaded.zone_of(task), task.task_id


@app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="Manifest: .yaml/.yml, .json or .toml.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Check a manifest: one line per problem with its reason code; exit 1 if any is rejected."""
    try:
        result = load_manifest(file)
    except ManifestError as err:
        typer.echo(f"ERROR {err.code} {err}")
        raise typer.Exit(EXIT_PROBLEM_FOUND) from None
    if as_json:
        findings = [
            {"level": p.level, "code": p.code, "where": p.where, "message": p.message}
            for p in result.problems
        ]
        tasks = [task.task_id for task in result.manifest.tasks]
        typer.echo(json.dumps({
            "tasks": tasks, "problems": findings, "rejected": result.rejected,
            "services": [service.slug for service in result.manifest.watched],
            "workloads": [workload.name for workload in result.manifest.workloads],
        }))  # fmt: skip
    else:
        for problem in result.problems:
            typer.echo(str(problem))
        typer.echo(_summary(result.manifest.tasks, result.problems))
        watched, workloads = len(result.manifest.watched), len(result.manifest.workloads)
        if watched or workloads:
            typer.echo(f"{watched} service(s) watched, {workloads} workload(s) supervised")
    if result.rejected:
        raise typer.Exit(EXIT_PROBLEM_FOUND)


def _summary(tasks: Sequence[object], problems: Sequence[Problem]) -> str:
    errors = sum(problem.level is Level.ERROR for problem in problems)
    warnings = len(problems) - errors
    return f"{len(tasks)} task(s) valid, {errors} rejected, {warnings} warning(s)"


@app.command("schema")
def schema() -> None:
    """Print the manifest's JSON Schema (for editor completion and CI checks)."""
    typer.echo(json.dumps(Manifest.model_json_schema(by_alias=False), indent=2))


RunForOption = Annotated[
    float | None,
    typer.Option("--for", min=0, help="Stop after this many seconds (default: run until stopped)."),
]
LogLevelOption = Annotated[
    str | None, typer.Option("--log-level", help="Default: the manifest's log_level.")
]


def _check_log_format(log_format: str) -> None:
    if log_format not in ("text", "json"):
        raise CronwardenError(f"--log-format: {log_format!r} is not text or json",
                              code="CRONWARDEN_INVALID_OPTION")  # fmt: skip


@app.command("start")
def start(
    manifest: Annotated[
        Path, typer.Option("--manifest", help="The manifest to run.")
    ] = DEFAULT_MANIFEST,
    http: Annotated[
        str,
        typer.Option(
            "--http",
            envvar="CRONWARDEN_HTTP",
            help="HOST:PORT for /metrics and health (port 0: any free port; off: none).",
        ),
    ] = "127.0.0.1:9464",
    run_for: RunForOption = None,
    log_format: Annotated[
        str, typer.Option("--log-format", help="text (a live line per outcome) or json.")
    ] = "text",
    log_level: LogLevelOption = None,
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker",
            help="Only schedule; `cronwarden worker` processes run "
            "the targets (needs CRONWARDEN_REDIS_URL).",
        ),
    ] = False,
) -> None:
    """Run the scheduler: fire every task of the manifest, recording every outcome; and,
    unless --no-worker, a worker that runs the targets."""
    if no_worker and shared_bus_url() is None:
        raise CronwardenError("--no-worker leaves the triggers to `cronwarden worker` "
                              "processes, which need a shared bus: set CRONWARDEN_REDIS_URL",
                              code="CRONWARDEN_NO_SHARED_BUS")  # fmt: skip
    _check_log_format(log_format)
    result = load_manifest(manifest)
    _configure_logs(log_level or result.manifest.log_level, log_format == "json")
    sock = listen(http)
    for problem in result.problems:
        if log_format == "json":
            log_problem(problem.level, problem.code, problem.where, problem.message)
        else:
            typer.echo(str(problem), err=True)
    directory = state_dir(manifest, result.manifest)
    store = open_store(directory)
    console = Console()
    console.print(
        f"cronwarden {__version__}: {len(result.manifest.tasks)} task(s) from {manifest}; "
        f"state in {directory}; Ctrl-C stops"
    )
    if sock is not None:
        host, port = sock.getsockname()[:2]
        console.print(f"http: serving /metrics and /internal/health/cron-runner on {host}:{port}")
    try:
        live = log_format == "text"
        asyncio.run(_run_until_stopped(manifest, result, store, console, run_for, sock,
                                       live=live, with_worker=not no_worker))  # fmt: skip
    finally:
        store.close()


async def _run_until_stopped(
    manifest: Path,
    result: LoadResult,
    store: SqlStore,
    console: Console,
    run_for: float | None,
    sock: socket.socket | None,
    *,
    live: bool,
    with_worker: bool,
) -> None:
    stop = _stop_event(run_for)
    await run_scheduler(
        manifest, result, store, stop,
        on_report=lambda r: _show(r, console if live else None), http=sock,
        with_worker=with_worker,
    )  # fmt: skip
    console.print("cronwarden: stopped")


def _stop_event(run_for: float | None) -> asyncio.Event:
    """Set by SIGINT, SIGTERM or, with ``run_for``, after that many seconds."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if run_for is not None:
        loop.call_later(run_for, stop.set)
    return stop


@app.command("worker")
def worker(
    manifest: Annotated[
        Path, typer.Option("--manifest", help="The manifest whose targets to run.")
    ] = DEFAULT_MANIFEST,
    run_for: RunForOption = None,
    log_format: Annotated[str, typer.Option("--log-format", help="text or json.")] = "text",
    log_level: LogLevelOption = None,
) -> None:
    """Only run targets: consume cron.trigger from the shared bus (CRONWARDEN_REDIS_URL)
    with the other workers of the deployment, each trigger on one of them."""
    _check_log_format(log_format)
    if shared_bus_url() is None:
        raise CronwardenError("a worker consumes triggers from a shared bus: set "
                              "CRONWARDEN_REDIS_URL (with the embedded default, `cronwarden "
                              "start` runs the workers itself)",
                              code="CRONWARDEN_NO_SHARED_BUS")  # fmt: skip
    result = load_manifest(manifest)
    _configure_logs(log_level or result.manifest.log_level, log_format == "json")
    for problem in result.problems:
        log_problem(problem.level, problem.code, problem.where, problem.message)
    directory = state_dir(manifest, result.manifest)
    store = open_store(directory)
    names = backend_names(directory)
    typer.echo(f"cronwarden {__version__} worker: targets of {manifest}; bus {names['bus']}; "
               f"store {names['store']}; Ctrl-C stops", err=True)  # fmt: skip

    async def work() -> None:
        await run_worker(manifest, result, store, _stop_event(run_for))

    try:
        asyncio.run(work())
    finally:
        store.close()
    typer.echo("cronwarden worker: stopped", err=True)


def _configure_logs(level: str, json_lines: bool) -> None:
    try:
        configure(level, json_lines)
    except ValueError:
        raise CronwardenError(f"log level {level!r} is not debug, info, warning or error",
                              code="CRONWARDEN_INVALID_OPTION") from None  # fmt: skip


def _show(report: OperationsReport, console: Console | None) -> None:
    """Each outcome: a live line in the terminal (text mode) or a JSON log line."""
    if console is None:
        log_report(report)
    else:
        console.print(_live_line(report), soft_wrap=True)


_STYLES = {"CRON_TASK_DISPATCHED": "green", "CRON_TASK_FAILED": "red",
           "HEALTH_SWEEP_COMPLETE": "dim", "HEALTH_BOT_RECOVERED": "green",
           "HEALTH_BOT_DOWN": "red", "HEALTH_RESTART_BUDGET_EXHAUSTED": "red"}  # fmt: skip


def _live_line(report: OperationsReport, *, markup: bool = True) -> str:
    at = datetime.fromtimestamp(report.fired_at_ms / 1000, UTC).isoformat()
    event = str(report.event_type)
    if markup:
        style = _STYLES.get(event, "yellow")
        event = f"[{style}]{event}[/{style}]"
    if report.bot_id == HEALTH_HEARTBEAT_BOT_ID:
        return f"{at} {event} {_watchdog_summary(report)} {report.trace_id}"
    targets = ",".join(report.targets)
    return f"{at} {event} {report.task_id} {targets} {report.reason_code} {report.trace_id}"


def _watchdog_summary(report: OperationsReport) -> str:
    found = report.details
    if report.event_type is EventType.HEALTH_SWEEP_COMPLETE:
        took = f"{found['sweep_duration_ms']:.0f} ms"
        return (f"{found['total_bots']} service(s): {found['healthy_count']} healthy, "
                f"{found['unhealthy_count']} missed, {found['down_count']} down, "
                f"{found['restarted_count']} restarted in {took}")  # fmt: skip
    if report.event_type is EventType.HEALTH_AUTO_RESTART:
        how = found.get("restart") if found.get("restart_ok") else found.get("restart_error")
        return f"{report.task_id} {report.reason_code} {how}"
    misses = found.get("miss_count", found.get("misses_before", ""))
    return f"{report.task_id} {report.reason_code} misses={misses} {found.get('last_error', '')}"


@app.command("status")
def status(
    manifest: Annotated[Path, typer.Option("--manifest", help="Whose state.")] = DEFAULT_MANIFEST,
    http: Annotated[
        str, typer.Option("--http", envvar="CRONWARDEN_HTTP", help="Where the daemon serves.")
    ] = "127.0.0.1:9464",
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Whether the scheduler is up (its health endpoint), the kill switch, and the last 24 h."""
    directory = state_dir(manifest, manifest_if_readable(manifest))
    daemon = _daemon_health(http)
    kill_switch: KillSwitchState | None = KillSwitchState(active=False)
    counts, errors = dict[str, int](), list[str]()
    if has_state(directory):
        kill_switch, counts, errors = asyncio.run(_state_summary(directory))
    report = {
        "daemon": daemon,
        "kill_switch": None
        if kill_switch is None
        else {
            "active": kill_switch.active,
            "actor": kill_switch.actor,
            "reason": kill_switch.reason,
        },  # fmt: skip
        "last_24h": counts,
        "state_dir": str(directory),
        "backends": backend_names(directory),
        "errors": errors,
    }
    if as_json:
        typer.echo(json.dumps(report))
        return
    up = daemon.get("status", "down") if daemon else "down (no answer on " + http + ")"
    typer.echo(f"scheduler:   {up}")
    watchdog = daemon.get("heartbeat") if daemon else None
    if isinstance(watchdog, dict):
        age = watchdog.get("last_sweep_age_s")
        typer.echo(f"watchdog:    {watchdog['status']}, {watchdog.get('total_bots') or 0} "
                   f"service(s), {watchdog.get('down_count') or 0} down, last sweep "
                   f"{'never' if age is None else f'{age:.0f} s ago'}")  # fmt: skip
    switch = "unknown" if kill_switch is None else _kill_switch_line(kill_switch)
    typer.echo(f"kill switch: {switch.removeprefix('kill switch: ')}")
    typer.echo("last 24 h:   " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"))
    for error in errors:
        typer.echo(f"unreachable: {error}")
    names = backend_names(directory)
    typer.echo("backends:    " + ", ".join(f"{part} {name}" for part, name in names.items()))


def _daemon_health(http: str) -> dict[str, object] | None:
    if http == "off":
        return None
    try:
        with urllib.request.urlopen(
            f"http://{http}/internal/health/cron-runner", timeout=2
        ) as reply:
            return dict(json.loads(reply.read()))
    except urllib.error.HTTPError as err:  # 503: up, but red
        return dict(json.loads(err.read()))
    except (OSError, ValueError):
        return None


async def _state_summary(
    directory: Path,
) -> tuple[KillSwitchState | None, dict[str, int], list[str]]:
    """The kill switch and the last 24 h's counts, each as far as its backend answers,
    and what did not answer."""
    store = open_store_or_why(directory)
    kill_switch, counts, errors = None, dict[str, int](), list[str]()
    try:
        try:
            kill_switch = await _kill_switch_state(store)
        except BackendUnavailable as err:
            errors.append(f"kill switch: {err}")
        if isinstance(store, SqlStore):
            since = _ms(datetime.now(UTC)) - 86_400_000
            counts = await store.event_counts(since)
        else:
            errors.append(str(store))
    except BackendUnavailable as err:
        errors.append(str(err))
    finally:
        if isinstance(store, SqlStore):
            store.close()
    return kill_switch, counts, errors


@app.command("force-dispatch")
def force_dispatch(
    task_id: Annotated[str, typer.Option("--task-id", help="The task to dispatch now.")],
    reason: ReasonOption = "",
    actor: ActorOption = "",
    http: Annotated[
        str, typer.Option("--http", envvar="CRONWARDEN_HTTP", help="Where the daemon serves.")
    ] = "127.0.0.1:9464",
) -> None:
    """Dispatch a task now through the running scheduler (claim, kill switch, publish),
    recorded as forced with who and why; quiet hours and pauses do not apply."""
    body = json.dumps({"actor": actor or _user(), "reason": reason}).encode()
    url = f"http://{http}/api/tasks/{urllib.parse.quote(task_id, safe='')}/force-dispatch"
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            report = json.loads(reply.read())
    except urllib.error.HTTPError as err:
        problem = json.loads(err.read() or b"{}")
        code = str(problem.get("code", "CRONWARDEN_API_ERROR"))
        raise CronwardenError(str(problem.get("message", err)), code=code) from None
    except OSError as err:
        raise CronwardenError(f"no scheduler answers on {http}: {err}",
                              code="CRONWARDEN_DAEMON_UNREACHABLE") from None  # fmt: skip
    line = _live_line(OperationsReport(
        EventType(report["event_type"]), report["task_id"], report["fired_at_ms"],
        tuple(report["targets"]), report["trace_id"], ReasonCode(report["reason_code"]),
    ), markup=False)  # fmt: skip
    typer.echo(line)


@app.command("history")
def history(
    task: Annotated[str | None, typer.Argument(help="Only this task's reports.")] = None,
    manifest: Annotated[
        Path, typer.Option("--manifest", help="Whose state to read.")
    ] = DEFAULT_MANIFEST,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON array of OperationsReports.")
    ] = False,
) -> None:
    """The recorded reports, newest first."""
    directory = state_dir(manifest, manifest_if_readable(manifest))
    reports = read_state(directory, lambda store: store.reports(task_id=task, limit=limit)) or []
    if as_json:
        typer.echo(json.dumps(reports))
        return
    table = Table(title=f"history ({directory})", title_justify="left")
    for column in ("scheduled (UTC)", "event", "task", "reason", "trace"):
        table.add_column(column)
    for report in reports:
        at = datetime.fromtimestamp(int(str(report["fired_at_ms"])) / 1000, UTC)
        cells = [str(report.get(key, "")) for key in ("event_type", "task_id", "reason_code")]
        table.add_row(at.isoformat(), *cells, str(report.get("trace_id", "")))
    Console().print(table)


@app.command("runs")
def runs(
    task: Annotated[str | None, typer.Argument(help="Only this task's runs.")] = None,
    manifest: Annotated[
        Path, typer.Option("--manifest", help="Whose state to read.")
    ] = DEFAULT_MANIFEST,
    status: Annotated[
        str | None,
        typer.Option("--status", help="succeeded, failed, timed_out, cancelled, skipped, running."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array of runs.")] = False,
) -> None:
    """The runs the workers made of command targets, newest first: one per attempt."""
    directory = state_dir(manifest, manifest_if_readable(manifest))
    found = read_state(directory, lambda store: store.runs(task_id=task, status=status,
                                                             limit=limit)) or []  # fmt: skip
    if as_json:
        typer.echo(json.dumps([run.to_dict() for run in found]))
        return
    table = Table(title=f"runs ({directory})", title_justify="left")
    for column in ("started (UTC)", "task", "target", "attempt", "status", "exit", "ms", "run"):
        table.add_column(column)
    for run in found:
        started = datetime.fromtimestamp(run.started_at_ms / 1000, UTC).isoformat()
        cells = [run.task_id, run.target, str(run.attempt), run.status,
                 "" if run.exit_code is None else str(run.exit_code),
                 "" if run.duration_ms is None else str(run.duration_ms), run.run_id]  # fmt: skip
        table.add_row(started, *cells)
    Console().print(table)


@app.command("logs")
def logs(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run (a unique prefix).")],
    manifest: Annotated[
        Path, typer.Option("--manifest", help="Whose state to read.")
    ] = DEFAULT_MANIFEST,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")
    ] = False,
) -> None:
    """A run's output: its stdout, then its stderr (on stderr); --follow streams stdout."""
    directory = state_dir(manifest, manifest_if_readable(manifest))
    if not has_state(directory):
        raise CronwardenError(f"no runs recorded in {directory}", code="CRONWARDEN_UNKNOWN_RUN")
    store = open_store(directory)
    try:
        run = asyncio.run(store.run_by_id(run_id))
        if run is None:
            raise CronwardenError(f"{run_id!r} names no run, or more than one",
                                  code="CRONWARDEN_UNKNOWN_RUN")  # fmt: skip
        folder = Path(run.artifact_dir)
        if follow and run.status == "running":
            asyncio.run(_follow_run(store, run.run_id, folder))
        else:
            output = _read_from(folder / "stdout.log", 0, limit=None)
            sys.stdout.write(output.decode("utf-8", "replace"))
        sys.stderr.write(
            _read_from(folder / "stderr.log", 0, limit=None).decode("utf-8", "replace")
        )
    finally:
        store.close()


async def _follow_run(store: SqlStore, run_id: str, folder: Path) -> None:
    finished = asyncio.Event()

    async def watch() -> None:
        while True:
            run = await store.run_by_id(run_id)
            if run is None or run.status != "running":
                finished.set()
                return
            await asyncio.sleep(0.5)

    watcher = asyncio.ensure_future(watch())
    await _follow(folder / "stdout.log", finished, sys.stdout)
    await watcher


@app.command("list")
def list_tasks(
    manifest: Annotated[Path, typer.Option("--manifest", help="The manifest.")] = DEFAULT_MANIFEST,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """The tasks: schedule, timezone, state, next fire, last outcome, run and failure counts."""
    result = load_manifest(manifest)
    directory = state_dir(manifest, result.manifest)
    rows = asyncio.run(_task_rows(result.manifest, directory))
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table(title=f"{len(rows)} task(s) in {manifest}", title_justify="left")
    for column in ("task", "schedule", "timezone", "state", "next fire", "last", "runs", "fails"):
        table.add_column(column)
    for row in rows:
        state = "paused" if row["paused"] else "enabled" if row["enabled"] else "disabled"
        table.add_row(
            str(row["task_id"]),
            f"{row['cron_expression']}\n[dim]{row['description']}[/dim]",
            str(row["timezone"]), state, str(row["next_fire"] or "-"),
            str(row["last_status"] or "-"), str(row["run_count"]), str(row["failure_count"]),
        )  # fmt: skip
    Console().print(table)


async def _task_rows(manifest: Manifest, directory: Path) -> list[dict[str, object]]:
    summaries: dict[str, dict[str, object]] = {}
    paused: set[str] = set()
    if has_state(directory):
        store = open_store(directory)
        try:
            summaries = dict(await store.task_summaries())
            paused = set(await SqlPauses(store).paused_tasks())
        finally:
            store.close()
    now = datetime.now(UTC)
    return [_task_row(manifest, task, now, task.task_id in paused, summaries.get(task.task_id, {}))
            for task in manifest.tasks]  # fmt: skip


def _task_row(
    manifest: Manifest, task: TaskSpec, now: datetime, paused: bool, summary: dict[str, object]
) -> dict[str, object]:
    zone = manifest.zone_of(task)
    fire = parse(task.cron_expression, zone, hash_key=task.task_id).next_after(now)
    last_ms = summary.get("last_run_ms")
    return {
        "task_id": task.task_id,
        "cron_expression": task.cron_expression,
        "description": task.description or describe(task.cron_expression),
        "timezone": zone,
        "task_class": str(task.task_class),
        "targets": list(task.targets),
        "enabled": task.enabled,
        "paused": paused,
        "next_fire": fire.isoformat() if fire and task.enabled and not paused else None,
        "last_run": _iso_ms(last_ms) if isinstance(last_ms, int) else None,
        "last_status": summary.get("last_status"),
        "run_count": summary.get("run_count", 0),
        "failure_count": summary.get("failure_count", 0),
    }


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


@app.command("run")
def run_task(
    task_id: Annotated[str, typer.Argument(metavar="TASK", help="The task to walk through.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what each step would decide.")
    ] = False,
    manifest: Annotated[Path, typer.Option("--manifest", help="The manifest.")] = DEFAULT_MANIFEST,
) -> None:
    """Run TASK's targets now, in the foreground, and exit with the job's exit code; with
    --dry-run, walk it through the decision pipeline and print each step's decision."""
    result = load_manifest(manifest)
    task = _task_of(result.manifest, task_id, manifest, result.problems)
    now = datetime.now(UTC).replace(microsecond=0)
    directory = state_dir(manifest, result.manifest)
    if dry_run:
        for line in asyncio.run(_dry_run(result.manifest, task, now, directory)):
            typer.echo(line)
        return
    store = open_store(directory)
    try:
        code = asyncio.run(_run_now(result.manifest, task, store, manifest))
    finally:
        store.close()
    raise typer.Exit(code)


#: Exit codes of `run` for a target that did not exit by itself (as timeout(1) and shells do).
EXIT_TIMED_OUT, EXIT_NOT_STARTED, EXIT_CANCELLED = 124, 127, 130


async def _run_now(manifest: Manifest, task: TaskSpec, store: SqlStore, path: Path) -> int:
    if task.task_class is TaskClass.TRADING and (await _kill_switch_state(store)).active:
        raise CronwardenError(f"{task.task_id} is a trading task and the kill switch is on",
                              code=str(ReasonCode.KILL_SWITCH_ACTIVE))  # fmt: skip
    console = Console(stderr=True)
    progress = RunProgress(console, live=console.is_terminal and sys.stdout.isatty())
    done: dict[str, asyncio.Event] = {}
    followers: list[asyncio.Task[None]] = []

    def started(run: RunRecord) -> None:
        target = manifest.target(run.target)
        attempts = 1
        if isinstance(target, CommandTarget | HttpTarget | PythonTarget):
            attempts = target.retry.max_attempts
        progress.started(run, attempts)
        done[run.run_id] = asyncio.Event()
        folder = Path(run.artifact_dir)
        streams = {"stdout.log": sys.stdout, "stderr.log": sys.stderr}
        followers.extend(asyncio.ensure_future(_follow(folder / name, done[run.run_id], out))
                         for name, out in streams.items())  # fmt: skip

    def finished(run: RunRecord) -> None:
        if run.run_id in done:
            done[run.run_id].set()
        progress.finished(run)

    clock = SystemClock()
    notifications = Notifications(clock, store, AppriseNotifier(), lambda: manifest)
    worker = Worker(clock, store, lambda: manifest, artifacts_dir(path, manifest),
                    request=send_http, notifications=notifications, on_run=finished,
                    on_start=started)  # fmt: skip
    at_ms = _ms(datetime.now(UTC))
    with progress.shown():
        return await _run_targets(manifest, task, worker, followers, console, at_ms)


async def _run_targets(
    manifest: Manifest, task: TaskSpec, worker: Worker, followers: list[asyncio.Task[None]],
    console: Console, at_ms: int,
) -> int:  # fmt: skip
    code = 0
    for target in task.targets:
        if not isinstance(manifest.target(target), CommandTarget | HttpTarget | PythonTarget):
            console.print(f"{target}: bus only, nothing to run here")
            continue
        trigger = {"task_id": task.task_id, "target": target, "scheduled_at": at_ms,
                   "trace_id": new_trace_id()}  # fmt: skip
        runs = await worker.handle(trigger)
        await asyncio.gather(*followers)  # the output is printed whole before going on
        last = runs[-1] if runs else None
        if code == 0 and last is not None and last.status != "succeeded":
            code = _exit_code(last)
    return code


async def _follow(path: Path, finished: asyncio.Event, out: TextIO) -> None:
    """Copy what a running attempt writes to ``path`` to ``out`` as it comes, to its end."""
    offset, decoder = 0, codecs.getincrementaldecoder("utf-8")("replace")
    while True:
        last_round = finished.is_set()
        chunk = await asyncio.to_thread(_read_from, path, offset)
        while chunk:
            offset += len(chunk)
            out.write(decoder.decode(chunk, final=False))
            out.flush()
            chunk = await asyncio.to_thread(_read_from, path, offset)
        if last_round:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finished.wait(), 0.2)


def _read_from(path: Path, offset: int, limit: int | None = 1 << 20) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(-1 if limit is None else limit)
    except FileNotFoundError:
        return b""


def _exit_code(run: RunRecord) -> int:
    if run.exit_code is not None:
        return run.exit_code or 1
    stopped = {"timed_out": EXIT_TIMED_OUT, "cancelled": EXIT_CANCELLED}
    return stopped.get(run.status, EXIT_NOT_STARTED)


async def _dry_run(manifest: Manifest, task: TaskSpec, now: datetime, directory: Path) -> list[str]:
    kill_switch_on, paused = False, False
    if has_state(directory):
        store = open_store(directory)
        try:
            kill_switch_on = (await _kill_switch_state(store)).active
            paused = await SqlPauses(store).paused(task.task_id)
        finally:
            store.close()
    at_ms = _ms(now)
    lines = [f"{task.task_id} at {now.isoformat()} (dry run: nothing is claimed or published)",
             f"  {'claim':<12} {lock_key('cronwarden', task.task_id, at_ms)}",
             f"  {'paused':<12} {'CRON_RUNNER_TASK_PAUSED' if paused else 'pass'}"]  # fmt: skip
    verdicts = explain(task, now, kill_switch_on=kill_switch_on, windows=manifest.quiet_hours)
    lines += [f"  {name:<12} {reason or 'pass'}" for name, reason in verdicts]
    blocked = paused or any(reason for _, reason in verdicts)
    targets = ", ".join(task.targets)
    lines.append(f"  {'publish':<12} {'-' if blocked else 'cron.trigger to ' + targets}")
    lines.append("  => " + ("suppressed" if blocked else "would be dispatched"))
    return lines


killswitch_app = typer.Typer(help="The kill switch: suppresses trading tasks while on.")
app.add_typer(killswitch_app, name="killswitch")
db_app = typer.Typer(help="The state database's schema (SQLite, or $CRONWARDEN_DATABASE_URL).")
app.add_typer(db_app, name="db")
app.add_typer(health_app, name="health")
app.add_typer(deadman_app, name="deadman")
app.add_typer(supervisor_app, name="supervisor")

ManifestOption = Annotated[Path, typer.Option("--manifest", help="Whose state to change.")]
ActorOption = Annotated[str, typer.Option("--actor", help="Who does this (default: $USER).")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why, for the record.")]


def _user() -> str:
    return getpass.getuser()


def _control(
    manifest: Path,
    action: Callable[[SqlStore, datetime], Coroutine[Any, Any, str]],
    loaded: Manifest | None = None,
) -> None:
    """Open the manifest's store, apply one operator action, print what it says."""
    store = open_store(state_dir(manifest, loaded or manifest_if_readable(manifest)))
    try:
        typer.echo(asyncio.run(action(store, datetime.now(UTC))))
    finally:
        store.close()


def _task_of(
    manifest: Manifest, task_id: str, path: Path, problems: Sequence[Problem] = ()
) -> TaskSpec:
    try:
        return manifest.task(task_id)
    except KeyError:
        rejected = [p for p in problems if p.level == "error" and f"{task_id!r}" in p.where]
        if rejected:
            why = "; ".join(f"{p.code} {p.message}" for p in rejected)
            raise UnknownTask(f"{task_id!r} was rejected by {path}: {why}") from None
        raise UnknownTask(f"{task_id!r} is not a task of {path}") from None


async def _record(store: SqlStore, report: OperationsReport) -> None:
    await store.add_report(report.to_dict(), report.fired_at_ms)


@killswitch_app.command("on")
def killswitch_on(
    reason: ReasonOption, manifest: ManifestOption = DEFAULT_MANIFEST, actor: ActorOption = ""
) -> None:
    """Turn the kill switch on; a running scheduler suppresses trading tasks from its next fire."""
    _set_kill_switch(manifest, True, actor or _user(), reason)


@killswitch_app.command("off")
def killswitch_off(
    manifest: ManifestOption = DEFAULT_MANIFEST, actor: ActorOption = "", reason: ReasonOption = ""
) -> None:
    """Turn the kill switch off."""
    _set_kill_switch(manifest, False, actor or _user(), reason)


def _set_kill_switch(manifest: Path, active: bool, actor: str, why: str) -> None:
    """Set the switch, and record the change as a report. With Redis, a store that
    cannot be reached does not stop it (the emergency brake must work when the database
    does not): the change is then said to be missing from the history."""
    directory = state_dir(manifest, manifest_if_readable(manifest))

    async def action() -> str:
        store = open_store_or_why(directory)
        now = datetime.now(UTC)
        try:
            async with operator_kill_switch(store, SystemClock()) as switch:
                state = await switch.set(active, actor, why, now)
            code = ReasonCode.KILL_SWITCH_ACTIVE if active else ReasonCode.KILL_SWITCH_RELEASED
            report = event_report(EventType.KILL_SWITCH_CHANGED, code, _ms(now),
                                  {"actor": actor, "reason": why})  # fmt: skip
            line = _kill_switch_line(state)
            try:
                if isinstance(store, BackendUnavailable):
                    raise store
                await _record(store, report)
            except BackendUnavailable as err:
                sys.stderr.write(f"warning: set in Redis; not in the history yet ({err})\n")
            return line
        finally:
            if isinstance(store, SqlStore):
                store.close()

    typer.echo(asyncio.run(action()))


@killswitch_app.command("status")
def killswitch_status(
    manifest: ManifestOption = DEFAULT_MANIFEST,
    as_json: Annotated[bool, typer.Option("--json", help="Print the state as JSON.")] = False,
) -> None:
    """Show whether the kill switch is on, who set it, why and when."""
    directory = state_dir(manifest, manifest_if_readable(manifest))

    async def action() -> str:
        store = open_store_or_why(directory)
        try:
            state = await _kill_switch_state(store)
        finally:
            if isinstance(store, SqlStore):
                store.close()
        if as_json:
            changed = state.changed_at.isoformat() if state.changed_at else None
            return json.dumps({"active": state.active, "actor": state.actor,
                               "reason": state.reason, "changed_at": changed})  # fmt: skip
        return _kill_switch_line(state)

    typer.echo(asyncio.run(action()))


async def _kill_switch_state(store: SqlStore | BackendUnavailable) -> KillSwitchState:
    async with operator_kill_switch(store, SystemClock()) as switch:
        return await switch.state()


def _kill_switch_line(state: KillSwitchState) -> str:
    if state.changed_at is None:
        return "kill switch: off (never set)"
    word = "ON" if state.active else "off"
    return (
        f"kill switch: {word} (by {state.actor} at {state.changed_at.isoformat()}: {state.reason})"
    )


@app.command("pause")
def pause(
    task: Annotated[str, typer.Argument(help="The task to pause.")],
    manifest: ManifestOption = DEFAULT_MANIFEST,
    actor: ActorOption = "",
    reason: ReasonOption = "",
) -> None:
    """Pause a task: its fires are suppressed (and recorded) until it is resumed."""
    _set_paused(manifest, task, True, actor or _user(), reason)


@app.command("resume")
def resume(
    task: Annotated[str, typer.Argument(help="The task to resume.")],
    manifest: ManifestOption = DEFAULT_MANIFEST,
    actor: ActorOption = "",
    reason: ReasonOption = "",
) -> None:
    """Resume a paused task."""
    _set_paused(manifest, task, False, actor or _user(), reason)


def _set_paused(manifest: Path, task_id: str, paused: bool, actor: str, why: str) -> None:
    loaded = manifest_if_readable(manifest)
    if loaded is not None:
        _task_of(loaded, task_id, manifest)

    async def action(store: SqlStore, now: datetime) -> str:
        await SqlPauses(store).set_paused(task_id, paused, actor, why, now)
        event, code = (
            (EventType.TASK_PAUSED, ReasonCode.CRON_RUNNER_TASK_PAUSED)
            if paused
            else (EventType.TASK_RESUMED, ReasonCode.CRON_RUNNER_TASK_RESUMED)
        )
        report = event_report(event, code, _ms(now), {"actor": actor, "reason": why}, task_id)
        await _record(store, report)
        return f"{task_id}: {'paused' if paused else 'resumed'} by {actor}"

    _control(manifest, action, loaded)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@db_app.command("upgrade")
def db_upgrade(
    manifest: Annotated[Path, typer.Option("--manifest", help="Whose state.")] = DEFAULT_MANIFEST,
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL of every migration instead of applying it.")
    ] = False,
) -> None:
    """Apply the schema migrations the state database lacks (``start`` does too)."""
    directory = state_dir(manifest, manifest_if_readable(manifest))
    if sql:
        typer.echo(upgrade_sql(database_url() or sqlite_url(directory)), nl=False)
        return
    store = open_store(directory, upgrade=False)
    try:
        before, after = store.upgrade()
    finally:
        store.close()
    where = backend_names(directory)["store"]
    if before == after:
        typer.echo(f"{where}: already at revision {after} (the newest)")
    else:
        typer.echo(f"{where}: upgraded from revision {before or '(none)'} to {after}")


@db_app.command("current")
def db_current(
    manifest: Annotated[Path, typer.Option("--manifest", help="Whose state.")] = DEFAULT_MANIFEST,
) -> None:
    """Show the revision the state database is at, and the newest this build knows."""
    directory = state_dir(manifest, manifest_if_readable(manifest))
    store = open_store(directory, upgrade=False)
    try:
        revision = store.revision()
    finally:
        store.close()
    behind = "" if revision == HEAD else " (behind: run `cronwarden db upgrade`)"
    typer.echo(f"revision {revision or '(none)'}; newest {HEAD}{behind}")


def main() -> None:
    """Console entry point: every error becomes one line on stderr and an exit code."""
    try:
        app()  # usage errors are printed by typer itself, with exit code 2
    except CronwardenError as err:
        _fail(f"{err.code}: {err}", EXIT_INVALID_INPUT)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    except Exception as err:  # the last guard: one line, never a traceback
        _fail(f"internal error: {type(err).__name__}: {err}", EXIT_INTERNAL_ERROR)


def _fail(line: str, code: int) -> None:
    sys.stderr.write(line.replace("\n", " ") + "\n")
    sys.exit(code)
