"""``create_app``: the daemon's HTTP endpoints (spec 000 health check, Prometheus)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from cronwarden._version import __version__
from cronwarden.telemetry.metrics import CronMetrics

Force = Callable[[str, str, str], Awaitable[dict[str, Any]]]


class ForceDispatch(BaseModel):
    """Who forces a dispatch and why; both are recorded in the report."""

    actor: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)


View = Callable[[], dict[str, Any]]
WorkloadAction = Callable[[str], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class DaemonViews:
    """What the daemon's other parts show and do over HTTP; ``None``: not running here."""

    heartbeat_health: View | None = None
    heartbeat_view: View | None = None
    supervisor_view: Callable[[], list[dict[str, Any]]] | None = None
    supervisor_restart: WorkloadAction | None = None
    supervisor_stop: WorkloadAction | None = None


def create_app(
    metrics: CronMetrics,
    health: Callable[[], dict[str, Any]],
    force: Force | None = None,
    *,
    views: DaemonViews | None = None,
) -> FastAPI:
    """The app serving ``/metrics``, ``/healthz``, ``/internal/health/cron-runner``,
    ``/internal/health/health-heartbeat``, ``/api/health``, ``/api/supervisor`` and the
    operator actions: ``POST /api/tasks/{task_id}/force-dispatch``,
    ``POST /api/supervisor/{name}/restart`` and ``.../stop``."""
    app = FastAPI(title="cronwarden", version=__version__)
    views = views or DaemonViews()
    _watchdog_routes(app, views)
    _supervisor_routes(app, views)

    @app.post("/api/tasks/{task_id}/force-dispatch")
    async def force_dispatch(task_id: str, body: ForceDispatch) -> JSONResponse:
        if force is None:
            return _error(503, "CRONWARDEN_NOT_AVAILABLE", "this server runs no scheduler")
        try:
            return JSONResponse(await force(task_id, body.actor, body.reason))
        except KeyError:
            return _error(404, "CRON_RUNNER_UNKNOWN_TASK", f"{task_id!r} is not a running task")

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def alive() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/internal/health/cron-runner")
    def cron_runner() -> JSONResponse:
        snapshot = health()
        return JSONResponse(snapshot, status_code=200 if snapshot["status"] == "green" else 503)

    return app


def _watchdog_routes(app: FastAPI, views: DaemonViews) -> None:
    @app.get("/internal/health/health-heartbeat")
    def health_heartbeat() -> JSONResponse:
        """Spec 002 §27: green while the last sweep is younger than twice the interval."""
        if views.heartbeat_health is None:
            return _error(404, "CRONWARDEN_NOT_AVAILABLE", "the watchdog is off in this daemon")
        snapshot = views.heartbeat_health()
        return JSONResponse(snapshot, status_code=200 if snapshot["status"] == "green" else 503)

    @app.get("/api/health")
    def services() -> JSONResponse:
        if views.heartbeat_view is None:
            return _error(404, "CRONWARDEN_NOT_AVAILABLE", "the watchdog is off in this daemon")
        return JSONResponse(views.heartbeat_view())


def _supervisor_routes(app: FastAPI, views: DaemonViews) -> None:
    @app.get("/api/supervisor")
    def workloads() -> JSONResponse:
        if views.supervisor_view is None:
            return _error(404, "CRONWARDEN_NOT_AVAILABLE", "no supervisor runs in this daemon")
        return JSONResponse({"workloads": views.supervisor_view()})

    async def act(action: WorkloadAction | None, name: str) -> JSONResponse:
        if action is None:
            return _error(404, "CRONWARDEN_NOT_AVAILABLE", "no supervisor runs in this daemon")
        try:
            return JSONResponse(await action(name))
        except KeyError:
            return _error(404, "SUPERVISOR_UNKNOWN_WORKLOAD", f"{name!r} is not a workload")

    @app.post("/api/supervisor/{name}/restart")
    async def restart(name: str) -> JSONResponse:
        return await act(views.supervisor_restart, name)

    @app.post("/api/supervisor/{name}/stop")
    async def stop(name: str) -> JSONResponse:
        return await act(views.supervisor_stop, name)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)
