"""What ``cronwarden run TASK`` shows while its targets run.

On a terminal: a live line under the job's streamed output with the target, the
attempt (n/N), the elapsed time, the output written so far and the artifacts the job
has left in its folder, then one line per finished attempt. Anywhere else (a pipe, a
file, CI): only the streamed output and the per-attempt lines, nothing redrawn.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from cronwarden.ports import RunRecord

#: Files of a run folder that are the worker's, not the job's artifacts.
OWN_FILES = frozenset({"stdout.log", "stderr.log", "run.json", "response.body"})


@dataclass
class _Attempt:
    run: RunRecord
    of: int
    started: float


class RunProgress:
    """Progress of the attempts of one ``run``; feed it :meth:`started` and
    :meth:`finished`, and use it as a context manager around the runs."""

    def __init__(self, console: Console, *, live: bool) -> None:
        self._console, self._live = console, live
        self._running: dict[str, _Attempt] = {}

    @contextmanager
    def shown(self) -> Iterator[None]:
        """Show the live line (on a terminal) while the body runs; the job's output,
        written to ``sys.stdout`` and ``sys.stderr``, scrolls above it."""
        if not self._live:
            yield
            return
        with Live(get_renderable=self._render, console=self._console, refresh_per_second=8,
                  transient=True, redirect_stdout=True, redirect_stderr=True):  # fmt: skip
            yield

    def started(self, run: RunRecord, max_attempts: int) -> None:
        self._running[run.run_id] = _Attempt(run, max_attempts, time.monotonic())
        if not self._live:
            self._console.print(f"[bold]{run.target}[/] attempt {run.attempt}/{max_attempts}: "
                                f"{run.artifact_dir}", highlight=False)  # fmt: skip

    def finished(self, run: RunRecord) -> None:
        attempt = self._running.pop(run.run_id, None)
        of = f"/{attempt.of}" if attempt else ""
        style = "green" if run.status == "succeeded" else "red"
        why = f" - {run.error}" if run.error else ""
        artifacts = _artifacts(Path(run.artifact_dir)) if run.artifact_dir else []
        kept = f", {len(artifacts)} artifact(s)" if artifacts else ""
        self._console.print(
            f"[{style}]{run.target} attempt {run.attempt}{of}: {run.status}[/] "
            f"({run.duration_ms} ms{kept}){why}", highlight=False)  # fmt: skip
        if self._live and run.artifact_dir:
            self._console.print(f"  [dim]{run.artifact_dir}[/]", highlight=False)

    def _render(self) -> RenderableType:
        now = time.monotonic()
        lines = []
        for attempt in list(self._running.values()):  # drawn from rich's thread
            run, folder = attempt.run, Path(attempt.run.artifact_dir)
            artifacts = _artifacts(folder)
            status = Text.assemble(
                (f"{run.target}", "bold"), f"  attempt {run.attempt}/{attempt.of}",
                f"  elapsed {_elapsed(now - attempt.started)}",
                f"  output {_size(_output_bytes(folder))}",
                f"  artifacts {len(artifacts)}",
                (f" ({', '.join(artifacts[:3])}{', …' if len(artifacts) > 3 else ''})"
                 if artifacts else "", "dim"),
            )  # fmt: skip
            lines.append(Spinner("dots", status))
        return Group(*lines)


def _artifacts(folder: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in folder.iterdir() if entry.name not in OWN_FILES)
    except OSError:
        return []


def _output_bytes(folder: Path) -> int:
    total = 0
    for name in ("stdout.log", "stderr.log"):
        try:
            total += (folder / name).stat().st_size
        except OSError:
            pass
    return total


def _elapsed(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes):02d}:{rest:04.1f}"


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    size = float(count)
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    return f"{size:.1f} {unit}"
