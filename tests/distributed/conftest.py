"""The fault tests' own Redis (:class:`private_redis.PrivateRedis`); the machine's
services are never touched."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from private_redis import PrivateRedis


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
