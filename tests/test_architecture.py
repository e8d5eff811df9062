"""Dependency direction (STYLE.md): the core imports no backend or interface library."""

from __future__ import annotations

import subprocess
import sys

import pytest

BACKENDS = ["redis", "sqlalchemy", "fastapi", "httpx", "typer", "rich", "click"]


@pytest.mark.parametrize(
    ("modules", "forbidden"),
    [
        ("cronwarden.cron, cronwarden.errors, cronwarden.reasons", [*BACKENDS, "pydantic"]),
        ("cronwarden.manifest", BACKENDS),
        (
            "cronwarden.core.pipeline, cronwarden.services.dispatch, cronwarden.services.scheduler,"
            " cronwarden.services.worker, cronwarden.services.notifications,"
            " cronwarden.services.overlap, cronwarden.services.heartbeat,"
            " cronwarden.services.paging, cronwarden.services.supervisor,"
            " cronwarden.core.liveness",
            [*BACKENDS, "uvicorn", "prometheus_client", "watchfiles", "cronwarden.adapters"],
        ),
    ],
    ids=["cron-engine", "manifest", "core-and-services"],
)
def test_it_imports_no_backend_or_interface(modules: str, forbidden: list[str]) -> None:
    probe = f"import sys, {modules}; print(sorted(m for m in {forbidden!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
