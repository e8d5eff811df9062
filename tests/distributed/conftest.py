"""The fault tests' own Redis (:class:`private_redis.PrivateRedis`); the machine's
services are never touched. ``bench/`` is importable: the chaos test runs the workload of
``bench/chaos_workload.py``."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from private_redis import PrivateRedis

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        why = "redis-server is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs it: {why}")
        pytest.skip(why)
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()
