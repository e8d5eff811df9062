"""Python targets: ``module:function`` called with a :class:`RunContext`.

``python -m cronwarden.workers.python module:function`` is how an isolated call runs:
a fresh interpreter builds the context from the ``CRONWARDEN_*`` environment the
worker sets for every run, calls the function (awaiting it when it is async) and
exits 0, or prints the traceback and exits 1. An inline call runs in the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import inspect
import json
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cronwarden.workers.command import CommandResult, tail


@dataclass(frozen=True)
class RunContext:
    """What a Python target is called with."""

    task_id: str
    target: str
    scheduled_at: datetime
    trace_id: str
    run_id: str
    attempt: int
    config: Mapping[str, Any]
    artifact_dir: Path
    previous_artifact_dir: Path | None
    logger: logging.Logger = field(repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunContext:
        previous = env.get("CRONWARDEN_PREVIOUS_ARTIFACT_DIR", "")
        return cls(
            task_id=env["CRONWARDEN_TASK_ID"],
            target=env.get("CRONWARDEN_TARGET", ""),
            scheduled_at=datetime.fromisoformat(env["CRONWARDEN_SCHEDULED_AT"]),
            trace_id=env.get("CRONWARDEN_TRACE_ID", ""),
            run_id=env.get("CRONWARDEN_RUN_ID", ""),
            attempt=int(env.get("CRONWARDEN_ATTEMPT", "1")),
            config=json.loads(env.get("CRONWARDEN_CONFIG", "{}")),
            artifact_dir=Path(env.get("CRONWARDEN_ARTIFACT_DIR", ".")),
            previous_artifact_dir=Path(previous) if previous else None,
            logger=logging.getLogger(f"cronwarden.job.{env['CRONWARDEN_TASK_ID']}"),
        )


def resolve(reference: str) -> Callable[..., Any]:
    """The callable named by ``module:function`` (``function`` may be dotted)."""
    module_name, _, path = reference.partition(":")
    found: Any = importlib.import_module(module_name)
    for name in path.split("."):
        found = getattr(found, name)
    if not callable(found):
        raise TypeError(f"{reference} is not callable")
    return found  # type: ignore[no-any-return]


async def call(function: Callable[..., Any], context: RunContext) -> Any:
    """Call ``function(context)``; a sync function runs in a daemon thread of its own, so
    that one which never returns is abandoned on timeout and never holds up a stop."""
    if inspect.iscoroutinefunction(function):
        return await function(context)
    result = await _in_daemon_thread(function, context)
    return await result if inspect.isawaitable(result) else result


def _in_daemon_thread(function: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def work() -> None:
        try:
            outcome = functools.partial(future.set_result, function(*args))
        except BaseException as err:  # handed to the awaiting task, whatever it is
            outcome = functools.partial(future.set_exception, err)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=work, name=f"cronwarden-job-{function.__name__}", daemon=True).start()
    return future


async def run_inline(
    reference: str, env: Mapping[str, str], out_dir: Path, timeout_s: float
) -> CommandResult:
    """Call the target in this process. A timeout abandons the call (a thread cannot be
    stopped); its result is ``timed_out``."""
    started = time.monotonic()
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    try:
        function = resolve(reference)
        value = await asyncio.wait_for(call(function, RunContext.from_env(env)), timeout_s)
    except TimeoutError:
        return _done("timed_out", None, started, out_dir, f"no return within {timeout_s:g} s")
    except Exception as err:  # the job's own failure, recorded with its traceback
        (out_dir / "stderr.log").write_text(traceback.format_exc())
        return _done("failed", None, started, out_dir, f"{type(err).__name__}: {err}")
    (out_dir / "stdout.log").write_text("" if value is None else f"{value!r}\n")
    return _done("succeeded", 0, started, out_dir, "")


def _done(status: str, code: int | None, started: float, out_dir: Path, error: str
          ) -> CommandResult:  # fmt: skip
    duration_ms = int((time.monotonic() - started) * 1000)
    return CommandResult(status, code, duration_ms, tail(out_dir / "stdout.log"),
                         tail(out_dir / "stderr.log"), error)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """``python -m cronwarden.workers.python module:function``: one isolated call."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m cronwarden.workers.python module:function\n")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    try:
        value = asyncio.run(call(resolve(args[0]), RunContext.from_env(os.environ)))
    except Exception:  # the job's failure: its traceback is the record's stderr
        traceback.print_exc()
        return 1
    if value is not None:
        sys.stdout.write(f"{value!r}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
