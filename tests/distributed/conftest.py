"""The fault tests' own Redis and PostgreSQL (:class:`private_redis.PrivateRedis`,
:class:`private_postgres.PrivatePostgres`); the machine's services are never touched.
``bench/`` is importable: the chaos test runs the workload of
``bench/chaos_workload.py``."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from private_postgres import PrivatePostgres, bin_dir
from private_redis import PrivateRedis

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


def _absent(what: str) -> None:
    """A server program the fault tests need is not installed: skipped, failed under CI."""
    why = f"{what} is not installed"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs it: {why}")
    pytest.skip(why)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        _absent("redis-server")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    binaries = bin_dir()
    if binaries is None:
        _absent("PostgreSQL's initdb")
        return
    server = PrivatePostgres(binaries)
    server.start()
    yield server
    server.remove()
