"""Run one command attempt: its own process group, output streamed to files, a timeout
that stops the whole group (SIGTERM, then SIGKILL after a grace), and the output's tail.

What a command leaves behind when it exits depends on what it is for. A job's command
is done when it exits, so whatever it left in its process group is killed ("no
orphans"); a command whose purpose is to start something long-lived (a service's
``restart_command``, a job with ``kill_orphans: false``) leaves it running. A timeout
or a cancellation stops the whole group either way: a command still running then is
not doing what it was meant to.

A job that prints a gigabyte costs the worker nothing: the child writes straight into
``stdout.log`` / ``stderr.log``; only the last :data:`TAIL_BYTES` are read back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cronwarden.failpoints import failpoint
from cronwarden.workers.group_keeper import GroupKeeper

#: How much of the end of stdout and stderr a run record keeps.
TAIL_BYTES = 4096
#: A log that is appended to (``kill_orphans=False``) and has grown past this size is
#: started anew when the next run opens it.
APPENDED_LOG_CAP = 1 << 20


@functools.cache
def dying_with_parent() -> tuple[str, ...]:
    """What to put before a command so that it dies with its worker: on Linux,
    ``setpriv --pdeathsig KILL --`` (util-linux) asks the kernel to SIGKILL the job
    when the worker dies. A worker killed with SIGKILL cannot stop its job, and the
    job must not run on beside the attempt that takes over its redelivered trigger.
    The kernel signals only the command itself; the rest of its process group (a
    script's children) is killed by the group's :class:`GroupKeeper`.

    A launcher, not ``preexec_fn``: running Python between fork and exec forbids
    ``vfork`` and made each start about 6 ms slower.
    """
    launcher = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    if launcher is None:
        return ()
    prefix = (launcher, "--pdeathsig", "KILL", "--")
    try:
        subprocess.run([*prefix, "true"], check=True, capture_output=True, timeout=5)
    except (OSError, subprocess.SubprocessError):  # an old setpriv without --pdeathsig
        return ()
    return prefix


@dataclass(frozen=True, slots=True)
class CommandResult:
    """How one attempt ended. ``exit_code`` is ``None`` when it was stopped or never ran."""

    status: str  # succeeded | failed | timed_out | cancelled
    exit_code: int | None  # a command's exit code, an HTTP target's status code
    duration_ms: int
    stdout_tail: str
    stderr_tail: str
    error: str = ""
    retriable: bool = True  # False when another attempt cannot help (an HTTP 4xx)


async def run_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    out_dir: Path,
    timeout_s: float,
    kill_grace_s: float = 5.0,
    shell: bool = False,
    die_with_worker: bool = False,
    kill_orphans: bool = True,
) -> CommandResult:
    """Run ``argv`` (a shell line only when ``shell``) with output in ``out_dir``.

    Stopping the group on timeout or cancellation reaches every descendant that stayed
    in it; the result says ``timed_out`` or ``cancelled``. Cancellation is re-raised
    after the group is gone. Once the command has exited, what it left in its group is
    killed with ``kill_orphans`` and left running without it (whatever the exit code:
    a failed restart script may still have started its service).

    With ``die_with_worker`` (workers on a shared bus, where a dead worker's trigger is
    run again elsewhere) the command and its whole group die with their worker while
    the command runs, even when the worker is killed with SIGKILL (on Linux with
    util-linux's ``setpriv``; elsewhere the command runs without that guarantee). The
    launcher and the group's keeper cost about 2 ms per start.

    Without ``kill_orphans`` the logs are appended to, not truncated: a process an
    earlier run of the same folder left running may still write to them. The tails
    returned start where this run began (what such a process wrote since is in them
    too), and a log past :data:`APPENDED_LOG_CAP` is started anew.
    """
    started = time.monotonic()
    out, err = await asyncio.to_thread(_open_logs, out_dir, not kill_orphans)
    since = (out.tell(), err.tell())
    with out, err:
        # checked once per process (a few ms), then cached
        launcher = dying_with_parent() if die_with_worker else ()
        try:
            command = ("/bin/sh", "-c", " ".join(argv)) if shell else tuple(argv)
            if launcher and not shell:
                check_runnable(command[0], env, cwd)  # as exec would, before the launcher
            process = await asyncio.create_subprocess_exec(
                *launcher, *command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd,
                env=dict(env), start_new_session=True)  # fmt: skip
        except OSError as failure:  # not found, not executable, bad cwd
            why = f"cannot start: {failure}"
            return await _result(out_dir, since, "failed", None, started, why)
        keeper: GroupKeeper | None = None
        exited = timed_out = False
        try:
            if launcher:
                keeper = await GroupKeeper.start(process.pid)
            failpoint("mid-run")
            code = await asyncio.wait_for(process.wait(), timeout_s)
            exited = True
        except TimeoutError:
            await _stop_group(process, kill_grace_s)
            timed_out = True
        except asyncio.CancelledError:
            await _stop_group(process, kill_grace_s)
            raise
        finally:
            if kill_orphans or not exited:
                _reap_group(process.pid)
            if keeper is not None:  # at once: the group is gone or left to itself
                await keeper.release()
    if timed_out:
        why = f"no exit within {timeout_s:g} s: process group stopped"
        return await _result(out_dir, since, "timed_out", None, started, why)
    status = "succeeded" if code == 0 else "failed"
    why = "" if code == 0 else f"exit code {code}"
    return await _result(out_dir, since, status, code, started, why)


def check_runnable(program: str, env: Mapping[str, str], cwd: str | None) -> None:
    """Raise the OSError that exec would for ``program`` (not found, not executable)."""
    if os.sep in program:
        path = program if os.path.isabs(program) or cwd is None else os.path.join(cwd, program)
        if not os.path.exists(path):
            raise FileNotFoundError(2, "No such file or directory", program)
        if not os.access(path, os.X_OK):
            raise PermissionError(13, "Permission denied", program)
    elif shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        raise FileNotFoundError(2, "No such file or directory", program)


def _open_logs(out_dir: Path, append: bool) -> tuple[BinaryIO, BinaryIO]:
    out_dir.mkdir(parents=True, exist_ok=True)
    if not append:
        return open(out_dir / "stdout.log", "wb"), open(out_dir / "stderr.log", "wb")
    out = open(out_dir / "stdout.log", "ab")
    try:
        handles = out, open(out_dir / "stderr.log", "ab")
    except OSError:
        out.close()
        raise
    for handle in handles:
        if handle.tell() > APPENDED_LOG_CAP:
            # Started anew in place. Whoever else writes to it (a process an earlier
            # run left) has it open for appending too, so it writes at the new end.
            handle.truncate(0)
            handle.seek(0)
    return handles


async def _stop_group(process: asyncio.subprocess.Process, grace_s: float) -> None:
    """SIGTERM to the group, SIGKILL to what is left after ``grace_s``."""
    _signal_group(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace_s)
    except TimeoutError:
        pass
    _signal_group(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        await process.wait()


def _reap_group(pgid: int) -> None:
    """Descendants left in the group once its leader is gone are killed: no orphans."""
    _signal_group(pgid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _result(
    out_dir: Path,
    since: tuple[int, int],
    status: str,
    code: int | None,
    started: float,
    error: str,
) -> CommandResult:
    duration_ms = int((time.monotonic() - started) * 1000)
    stdout, stderr = await asyncio.to_thread(
        lambda: (
            tail(out_dir / "stdout.log", since=since[0]),
            tail(out_dir / "stderr.log", since=since[1]),
        )
    )
    return CommandResult(status, code, duration_ms, stdout, stderr, error)


def tail(path: Path, size: int = TAIL_BYTES, *, since: int = 0) -> str:
    """The last ``size`` bytes of ``path`` after offset ``since``, as text (invalid
    UTF-8 replaced)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(handle.tell() - size, since, 0))
            return handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
