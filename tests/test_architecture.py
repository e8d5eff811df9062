"""Dependency direction (STYLE.md): the cron engine imports no backend or interface library."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ["redis", "sqlalchemy", "fastapi", "httpx", "typer", "rich", "click", "pydantic"]


def test_the_cron_engine_imports_no_backend_or_interface() -> None:
    probe = (
        "import sys, cronwarden.cron, cronwarden.errors, cronwarden.reasons;"
        f"print(sorted(m for m in {FORBIDDEN!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_the_manifest_imports_no_backend() -> None:
    backends = ["redis", "sqlalchemy", "fastapi", "httpx", "typer", "rich"]
    probe = (
        "import sys, cronwarden.manifest;"
        f"print(sorted(m for m in {backends!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
