"""Artifact retention: each task keeps at most ``max_runs`` run folders, none older than
``max_age_days``, always with its latest successful run and the runs still going.

Only folders named as the worker names them (``{UTC start}Z_{run_id}``) are ever
removed; anything else a user puts beside them is left alone. Ages are read from the
names, so they follow the scheduler's clock, not the files' times.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cronwarden.manifest.model import ArtifactRetention

LOGGER = logging.getLogger("cronwarden.worker")
_RUN_FOLDER = re.compile(r"^(\d{8}T\d{6})Z_run_[0-9a-f]+$")


def prune(
    task_dir: Path, rule: ArtifactRetention, now: datetime, keep: Collection[str] = ()
) -> list[Path]:
    """Remove the run folders of ``task_dir`` that ``rule`` no longer keeps, except
    those in ``keep`` (paths: the latest good run, runs still going on any worker);
    the folders removed, oldest first."""
    runs: list[tuple[datetime, Path]] = []
    try:
        entries = list(task_dir.iterdir())
    except FileNotFoundError:
        return []
    for entry in entries:
        match = _RUN_FOLDER.match(entry.name)
        if match and entry.is_dir():
            started = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
            runs.append((started, entry))
    runs.sort()
    doomed: list[Path] = []
    excess = len(runs) - rule.max_runs if rule.max_runs else 0
    oldest_kept = now - timedelta(days=rule.max_age_days) if rule.max_age_days else None
    # by name, which holds the run id: the same run seen through another mount or a
    # relative state folder is still the same run
    kept = {Path(path).name for path in keep}
    for index, (started, folder) in enumerate(runs):
        too_many = index < excess
        too_old = oldest_kept is not None and started < oldest_kept
        if (too_many or too_old) and folder.name not in kept:
            doomed.append(folder)
    for folder in doomed:
        shutil.rmtree(folder, ignore_errors=True)
    if doomed:
        LOGGER.info("artifacts of %s: removed %d run folders", task_dir.name, len(doomed),
                    extra={"task_id": task_dir.name})  # fmt: skip
    return doomed


def task_dirs(artifacts_dir: Path) -> list[Path]:
    """The task folders under ``artifacts_dir``."""
    try:
        return [entry for entry in artifacts_dir.iterdir() if entry.is_dir()]
    except FileNotFoundError:
        return []
