"""``cronwarden health`` and ``cronwarden deadman``: the watchdog from the command line.

* ``health sweep`` polls every service of the manifest once, now, from this process:
  nothing is restarted or recorded (a manual sweep must not look like the daemon's to
  the dead-man check). Exit 1 when a service missed.
* ``health status`` shows the running daemon's view; ``health history SLUG`` the
  recorded transitions and restarts of one service.
* ``deadman check`` exits 1 when no sweep report is younger than ``--max-age``: for an
  external cron or monitor to page on (spec 002 §9, "deadman timer").
"""

from __future__ import annotations

import asyncio
import getpass
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cronwarden.adapters.http_probe import HttpProber
from cronwarden.adapters.sql.controls import SqlPauses
from cronwarden.adapters.system import SystemClock
from cronwarden.app import open_store, state_dir
from cronwarden.core.report import HEALTH_HEARTBEAT_BOT_ID, EventType, OperationsReport
from cronwarden.errors import CronwardenError
from cronwarden.interfaces.cli_common import (
    DEFAULT_MANIFEST,
    daemon_call,
    manifest_if_readable,
    read_state,
)
from cronwarden.manifest import load_manifest
from cronwarden.reasons import ReasonCode
from cronwarden.services.heartbeat import RESTART_PAUSE_PREFIX, HealthHeartbeat
from cronwarden.services.scheduler import new_trace_id

EXIT_PROBLEM_FOUND = 1

health_app = typer.Typer(help="The watchdog: poll services, show what the daemon sees.")
deadman_app = typer.Typer(help="Watch the watcher: fail when its sweeps stopped.")

ManifestOption = Annotated[Path, typer.Option("--manifest", help="The manifest.")]
HttpOption = Annotated[
    str, typer.Option("--http", envvar="CRONWARDEN_HTTP", help="Where the daemon serves.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@health_app.command("sweep")
def sweep(manifest: ManifestOption = DEFAULT_MANIFEST, as_json: JsonOption = False) -> None:
    """Poll every service of the manifest once, now; restart nothing, record nothing.
    Exit 1 when a service missed."""
    result = load_manifest(manifest)
    for problem in result.problems:
        if str(problem.where).startswith(("services", "heartbeat")):
            typer.echo(str(problem), err=True)
    services, settings = result.manifest.watched, result.manifest.heartbeat_settings
    report, states = asyncio.run(_sweep_once(services, settings))
    if as_json:
        typer.echo(json.dumps({"sweep": report.to_dict(), "services": states}))
    else:
        _print_services(states, f"health sweep ({len(states)} service(s), "
                        f"{report.details['sweep_duration_ms']:.0f} ms)")  # fmt: skip
    if report.details["unhealthy_count"]:
        raise typer.Exit(EXIT_PROBLEM_FOUND)


async def _sweep_once(
    services: Sequence[Any], settings: Any
) -> tuple[OperationsReport, list[dict[str, Any]]]:
    prober = HttpProber(settings.max_in_flight)
    kept: list[OperationsReport] = []

    async def keep(reports: Sequence[OperationsReport]) -> None:
        kept.extend(reports)

    heartbeat = HealthHeartbeat(SystemClock(), prober, lambda: (services, settings), record=keep)
    try:
        report = await heartbeat.sweep()
    finally:
        await prober.aclose()
    return report, [heartbeat.states[s.slug].to_dict() for s in services]


@health_app.command("status")
def status(http: HttpOption = "127.0.0.1:9464", as_json: JsonOption = False) -> None:
    """What the running daemon's watchdog sees: every service and its own health."""
    view = daemon_call(http, "/api/health")
    if as_json:
        typer.echo(json.dumps(view))
        return
    own = view["self"]
    age = own.get("last_sweep_age_s")
    typer.echo(f"watchdog: {own['status']} ({own['role']}); last sweep "
               f"{'never' if age is None else f'{age:.1f} s ago'}; every "
               f"{own['interval_s']:g} s")  # fmt: skip
    for problem in own.get("problems", []):
        typer.echo(f"problem: {problem}")
    _print_services(view["services"], "services")
    if own["status"] != "green":
        raise typer.Exit(EXIT_PROBLEM_FOUND)


def _print_services(states: Sequence[dict[str, Any]], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("slug", "status", "latency", "misses", "restarts", "last error"):
        table.add_column(column)
    styles = {"healthy": "green", "missed": "yellow", "unknown": "yellow"}
    for state in states:
        style = styles.get(state["status"], "red")
        latency = state.get("latency_ms")
        table.add_row(
            state["slug"], f"[{style}]{state['status']}[/{style}]",
            "-" if latency is None else f"{latency:.0f} ms", str(state["miss_count"]),
            str(state.get("restarts_in_window", 0)), state.get("last_error") or "",
        )  # fmt: skip
    Console().print(table)


@health_app.command("history")
def history(
    slug: Annotated[str, typer.Argument(help="The service.")],
    manifest: ManifestOption = DEFAULT_MANIFEST,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """A service's recorded transitions (down, restarted, budget spent, recovered),
    newest first."""
    directory = state_dir(manifest, manifest_if_readable(manifest))
    found = read_state(directory, lambda store: store.reports(task_id=slug, limit=limit)) or []
    reports = [r for r in found if r.get("bot_id") == HEALTH_HEARTBEAT_BOT_ID]
    if as_json:
        typer.echo(json.dumps(reports))
        return
    table = Table(title=f"health history of {slug}", title_justify="left")
    for column in ("sweep (UTC)", "event", "misses", "detail"):
        table.add_column(column)
    for report in reports:
        at = datetime.fromtimestamp(int(report["fired_at_ms"]) / 1000, UTC).isoformat()
        table.add_row(at, str(report["event_type"]), str(report.get("miss_count", "")),
                      _detail(report))  # fmt: skip
    Console().print(table)


def _detail(report: dict[str, Any]) -> str:
    if report.get("restart_error"):
        return f"restart failed: {report['restart_error']}"
    if report.get("restart"):
        return str(report["restart"])
    if "was_down" in report:
        return "was down" if report["was_down"] else "after a blip"
    return str(report.get("last_error", ""))


ActorOption = Annotated[str, typer.Option("--actor", help="Who does this (default: $USER).")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why, for the record.")]


@health_app.command("pause-restart")
def pause_restart(
    slug: Annotated[str, typer.Argument(help="The service.")],
    reason: ReasonOption = "",
    actor: ActorOption = "",
    manifest: ManifestOption = DEFAULT_MANIFEST,
) -> None:
    """Stop restarting SLUG automatically while its crash loop is investigated (spec 002
    §27); it is still polled and paged. A running daemon sees it at its next sweep."""
    _pause_restart(manifest, slug, True, actor or getpass.getuser(), reason)


@health_app.command("resume-restart")
def resume_restart(
    slug: Annotated[str, typer.Argument(help="The service.")],
    reason: ReasonOption = "",
    actor: ActorOption = "",
    manifest: ManifestOption = DEFAULT_MANIFEST,
) -> None:
    """Restart SLUG automatically again."""
    _pause_restart(manifest, slug, False, actor or getpass.getuser(), reason)


def _pause_restart(manifest: Path, slug: str, paused: bool, actor: str, why: str) -> None:
    loaded = manifest_if_readable(manifest)
    if loaded is not None and slug not in {service.slug for service in loaded.watched}:
        raise CronwardenError(f"{slug!r} is not a service of {manifest}",
                              code="HEALTH_HEARTBEAT_UNKNOWN_SERVICE")  # fmt: skip
    store = open_store(state_dir(manifest, loaded))
    now = datetime.now(UTC)
    event = EventType.HEALTH_RESTART_PAUSED if paused else EventType.HEALTH_RESTART_RESUMED
    code = ReasonCode.CRON_RUNNER_TASK_PAUSED if paused else ReasonCode.CRON_RUNNER_TASK_RESUMED
    report = OperationsReport(
        event_type=event, task_id=slug, fired_at_ms=int(now.timestamp() * 1000), targets=(),
        trace_id=new_trace_id(), reason_code=code, bot_id=HEALTH_HEARTBEAT_BOT_ID,
        details={"actor": actor, "reason": why},
    )  # fmt: skip

    async def act() -> None:
        await SqlPauses(store).set_paused(RESTART_PAUSE_PREFIX + slug, paused, actor, why, now)
        await store.add_report(report.to_dict(), report.fired_at_ms)

    try:
        asyncio.run(act())
    finally:
        store.close()
    typer.echo(f"{slug}: automatic restarts {'paused' if paused else 'resumed'} by {actor}")


@deadman_app.command("check")
def check(
    manifest: ManifestOption = DEFAULT_MANIFEST,
    max_age: Annotated[
        float | None,
        typer.Option("--max-age", min=0.001, help="Seconds (default: 2 × heartbeat_interval_s)."),
    ] = None,
) -> None:
    """Exit 1 when no sweep report is younger than --max-age: the watchdog stopped."""
    loaded = manifest_if_readable(manifest)
    interval = loaded.heartbeat_settings.heartbeat_interval_s if loaded else 30.0
    limit_s = max_age if max_age is not None else 2 * interval
    directory = state_dir(manifest, loaded)
    found = read_state(directory, lambda store: store.reports(
        limit=1, event_type=str(EventType.HEALTH_SWEEP_COMPLETE)))  # fmt: skip
    if not found:
        typer.echo(f"HealthHeartbeatSweepMissing: no sweep report was ever recorded in "
                   f"{directory}: the watchdog never ran here", err=True)  # fmt: skip
        raise typer.Exit(EXIT_PROBLEM_FOUND)
    last = found[0]
    ended_ms = int(last["fired_at_ms"]) + int(float(last.get("sweep_duration_ms", 0)))
    age_s = time.time() - ended_ms / 1000
    if age_s > limit_s:
        typer.echo(f"HealthHeartbeatSweepMissing: the last sweep ended {age_s:.1f} s ago, more "
                   f"than {limit_s:g} s: the watchdog is not running", err=True)  # fmt: skip
        raise typer.Exit(EXIT_PROBLEM_FOUND)
    typer.echo(f"ok: the last sweep ended {age_s:.1f} s ago ({last['total_bots']} service(s), "
               f"{last['unhealthy_count']} unhealthy)")  # fmt: skip
