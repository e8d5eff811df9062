"""``create_app``: the daemon's HTTP endpoints (spec 000 health check, Prometheus)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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


def create_app(
    metrics: CronMetrics, health: Callable[[], dict[str, Any]], force: Force | None = None
) -> FastAPI:
    """The app serving ``/metrics``, ``/healthz``, ``/internal/health/cron-runner`` and
    ``POST /api/tasks/{task_id}/force-dispatch``."""
    app = FastAPI(title="cronwarden", version=__version__)

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


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)
