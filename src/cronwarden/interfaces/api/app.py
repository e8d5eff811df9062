"""``create_app``: the daemon's HTTP endpoints (spec 000 health check, Prometheus)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from cronwarden._version import __version__
from cronwarden.telemetry.metrics import CronMetrics


def create_app(metrics: CronMetrics, health: Callable[[], dict[str, Any]]) -> FastAPI:
    """The app serving ``/metrics``, ``/healthz`` and ``/internal/health/cron-runner``."""
    app = FastAPI(title="cronwarden", version=__version__)

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
