"""A service's ``restart_command``, run as the watchdog runs it (real processes): what
it started is left running when it exits, and a command that hangs is stopped at
``restart_timeout_s`` with everything it started."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cronwarden.app import service_restarter
from cronwarden.errors import CronwardenError
from cronwarden.manifest import validate_document
from cronwarden.manifest.model import Manifest
from cronwarden.manifest.services import ServiceSpec
from processes import running


def _manifest(restart_command: list[str], **heartbeat: Any) -> Manifest:
    result = validate_document({
        "heartbeat": heartbeat,
        "services": [{"slug": "bot", "health_url": "http://127.0.0.1:9/h",
                      "restart_command": restart_command}],
    })  # fmt: skip
    assert not [p for p in result.problems if p.level == "error"], result.problems
    return result.manifest


def _restart(manifest: Manifest, state: Path) -> str:
    (service,) = manifest.watched
    assert isinstance(service, ServiceSpec)
    return asyncio.run(service_restarter(state, lambda: manifest)(service))


def _pid(path: Path) -> int:
    deadline = time.monotonic() + 10
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} was never written"
        time.sleep(0.02)
    return int(path.read_text())


@pytest.fixture
def pidfile(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "child.pid"
    yield path
    if path.exists() and path.read_text().strip():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(path.read_text()), signal.SIGKILL)


def test_what_a_restart_command_backgrounds_runs_on_after_it_exits(
    tmp_path: Path, pidfile: Path
) -> None:
    line = f"nohup sleep 60 >/dev/null 2>&1 & echo $! > {shlex.quote(str(pidfile))}"
    done = _restart(_manifest(["sh", "-c", line]), tmp_path / "state")
    assert done.startswith("ran sh: exit 0 in ")
    child = _pid(pidfile)
    time.sleep(0.3)
    assert running(child)


def test_a_restart_command_that_hangs_is_stopped_at_its_timeout_with_its_group(
    tmp_path: Path, pidfile: Path
) -> None:
    line = f"sleep 60 & echo $! > {shlex.quote(str(pidfile))}; sleep 60"
    manifest = _manifest(["sh", "-c", line], restart_timeout_s=1)
    started = time.monotonic()
    with pytest.raises(CronwardenError) as raised:
        _restart(manifest, tmp_path / "state")
    assert raised.value.code == "CRONWARDEN_RESTART_FAILED"
    assert "no exit within 1 s: process group stopped" in str(raised.value)
    assert time.monotonic() - started < 30
    child = _pid(pidfile)
    deadline = time.monotonic() + 5
    while running(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not running(child)


def test_a_failed_restart_says_why_with_this_attempt_s_stderr(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with pytest.raises(CronwardenError, match="first"):
        _restart(_manifest(["sh", "-c", "echo first >&2; exit 2"]), state)
    with pytest.raises(CronwardenError) as raised:
        _restart(_manifest(["sh", "-c", "echo second >&2; exit 3"]), state)
    assert "exit code 3; stderr: second" in str(raised.value)
    assert "first" not in str(raised.value)
    assert (state / "restarts" / "bot" / "stderr.log").read_text() == "first\nsecond\n"
