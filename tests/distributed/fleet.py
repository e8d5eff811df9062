"""A manifest the distributed tests share: one task whose command target appends the
instant it ran for to a log, so that a test can count what ran."""

from __future__ import annotations

import sys
from pathlib import Path

JOB = (
    "import os, sys\n"
    "open(sys.argv[1], 'a').write(os.environ['CRONWARDEN_SCHEDULED_AT'] + chr(10))\n"
)


def logging_task(folder: Path, cron: str) -> tuple[Path, Path]:
    """Write the job and a manifest with the task ``tick`` on ``cron`` running it; the
    manifest and the log the job appends to."""
    log = folder / "ran.log"
    (folder / "job.py").write_text(JOB)
    manifest = folder / "cronwarden.yaml"
    manifest.write_text(
        f"targets: {{job: {{type: command, command: ['{sys.executable}', "
        f"'{folder / 'job.py'}', '{log}']}}}}\n"
        f"tasks: [{{task_id: tick, cron: '{cron}', targets: [job], task_class: health}}]\n"
    )
    return manifest, log
