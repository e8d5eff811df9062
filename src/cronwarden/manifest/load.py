"""Loading a manifest: read, split into entries, validate each on its own.

Every problem becomes a :class:`Problem` with its reason code and a message
naming the entry and the field. A rejected entry or setting never stops the
others: the result holds every task that passed. Only a file that cannot be
read or parsed at all raises (:class:`ManifestError`), so that a running daemon
keeps its last good manifest.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from cronwarden.cron import parse
from cronwarden.errors import CronError, ManifestError
from cronwarden.manifest.base import accepted_keys
from cronwarden.manifest.forms import canonical_form
from cronwarden.manifest.model import (
    DEFAULT_CRON_EXPRESSION,
    Manifest,
    Settings,
    TaskSpec,
)
from cronwarden.manifest.problems import (
    Level,
    Problem,
    describe,
    each_setting,
    invalid,
    unknown_keys,
)
from cronwarden.manifest.services import ServiceSpec, validate_heartbeat, validate_services
from cronwarden.manifest.targets import Target, TargetSpec
from cronwarden.manifest.workloads import WorkloadSpec, validate_supervisor
from cronwarden.reasons import ReasonCode

TASK_KEYS = accepted_keys(TaskSpec)

#: ARCHITECTURE §4: warn above, reject above.
CONCURRENCY_WARN, CONCURRENCY_LIMIT = 20, 60


@dataclass(frozen=True, slots=True)
class LoadResult:
    """The manifest of every valid entry, and every problem found on the way."""

    manifest: Manifest
    problems: tuple[Problem, ...] = field(default=())

    @property
    def rejected(self) -> bool:
        return any(problem.level is Level.ERROR for problem in self.problems)


def load_manifest(path: str | Path) -> LoadResult:
    """Read and validate the manifest at ``path`` (``.yaml``/``.yml``, ``.json``, ``.toml``)."""
    return validate_document(read_document(Path(path)))


def read_document(path: Path) -> Any:
    """The parsed file; :class:`ManifestError` when it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ManifestError(f"{path}: cannot read: {err}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return json.loads(text)
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix in (".yaml", ".yml"):
            return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError, RecursionError) as err:
        detail = " ".join(str(err).split())
        raise ManifestError(f"{path}: not valid {suffix[1:].upper()}: {detail}") from None
    raise ManifestError(f"{path}: unknown extension {suffix!r} (use .yaml, .json or .toml)")


def validate_document(document: Any) -> LoadResult:
    """Validate a parsed manifest document (any shape of :mod:`~cronwarden.manifest.forms`)."""
    try:
        raw_settings, entries, section = canonical_form(document)
    except TypeError as err:
        raise ManifestError(str(err)) from None
    problems: list[Problem] = []
    settings = _settings(raw_settings, problems)
    targets, broken = _targets(settings.targets, problems)
    modes, broken_modes = _execution_modes(settings.execution_modes, problems)
    targets = {**modes, **targets}  # a target entry wins over a mode of the same name
    broken |= broken_modes - targets.keys()
    tasks = _routable(_tasks(entries, section, settings, problems), broken, problems)
    _warn_channels(tasks, settings, problems)
    watched, _ = validate_services(settings.services, problems)
    heartbeat = validate_heartbeat(settings.heartbeat, problems)
    _warn_undefined(heartbeat.notify, settings, "heartbeat", problems)
    workloads = validate_supervisor(settings.supervisor, problems)
    _warn_unsupervised(watched, workloads, problems)
    manifest = Manifest.model_validate({**settings.model_dump(), "tasks": tasks})
    update = {"targets": targets, "watched": watched, "heartbeat_settings": heartbeat,
              "workloads": workloads}  # fmt: skip
    return LoadResult(manifest.model_copy(update=update), tuple(problems))


# -- targets ----------------------------------------------------------------------

_TARGET: TypeAdapter[Target] = TypeAdapter(TargetSpec)


def _targets(
    raw: dict[str, Any], problems: list[Problem], section: str = "targets", **forced: Any
) -> tuple[dict[str, Target], set[str]]:
    """The valid target configurations of ``section``, and the names of the invalid
    ones; ``forced`` keys are set on every entry (an execution mode is a template)."""
    valid: dict[str, Target] = {}
    broken: set[str] = set()
    for name, entry in raw.items():
        try:
            # ``forced`` is only given for execution modes, whose entries are mappings
            valid[str(name)] = _TARGET.validate_python({**entry, **forced} if forced else entry)
        except ValidationError as err:
            broken.add(str(name))
            problems.extend(
                Problem(
                    Level.ERROR,
                    ReasonCode.CRON_RUNNER_TARGET_INVALID,
                    f"{section}.{name}",
                    describe(error),
                )  # fmt: skip
                for error in err.errors()
            )
    return valid, broken


def _execution_modes(
    raw: dict[str, Any], problems: list[Problem]
) -> tuple[dict[str, Target], set[str]]:
    """Spec 003's execution modes as command templates, by mode name."""
    entries = {name: entry if isinstance(entry, dict) else {"command": entry}
               for name, entry in raw.items()}  # fmt: skip
    return _targets(entries, problems, "execution_modes", type="command", template=True)


def _warn_channels(tasks: list[TaskSpec], settings: Settings, problems: list[Problem]) -> None:
    """A channel a task names that is neither defined nor ``memory`` is warned about; its
    notifications will be recorded as failed."""
    for task in tasks:
        _warn_undefined(task.notify, settings, task.task_id, problems)


def _warn_undefined(
    channels: Iterable[str], settings: Settings, where: str, problems: list[Problem]
) -> None:
    defined = settings.notifications.channels.keys() | {"memory"}
    problems.extend(
        Problem(Level.WARNING, ReasonCode.CRON_RUNNER_UNKNOWN_KEY, where,
                f"notify: channel {channel!r} is not defined under notifications.channels")
        for channel in channels
        if channel not in defined
    )  # fmt: skip


def _warn_unsupervised(
    services: Iterable[ServiceSpec], workloads: Iterable[WorkloadSpec], problems: list[Problem]
) -> None:
    """A service restarted through a workload the supervisor does not run is watched and
    paged, but its restarts will fail: said at load, not at the first outage."""
    names = {workload.name for workload in workloads}
    problems.extend(
        Problem(Level.WARNING, ReasonCode.CRON_RUNNER_TARGET_INVALID, f"services {s.slug!r}",
                f"restart.supervisor: {s.restart.supervisor!r} is not a workload of "
                "supervisor.workloads; its restarts will fail")
        for s in services
        if s.restart is not None and s.restart.supervisor not in names
    )  # fmt: skip


def _routable(tasks: list[TaskSpec], broken: set[str], problems: list[Problem]) -> list[TaskSpec]:
    """Tasks routed to an invalid target are rejected too: never silently bus-only."""
    kept = []
    for task in tasks:
        bad = sorted(broken.intersection(task.targets))
        if bad:
            why = f"targets: {', '.join(bad)} is invalid"
            problems.append(
                Problem(Level.ERROR, ReasonCode.CRON_RUNNER_TARGET_INVALID, task.task_id, why)
            )
        else:
            kept.append(task)
    return kept


# -- settings ---------------------------------------------------------------------


def _settings(raw: dict[str, Any], problems: list[Problem]) -> Settings:
    """The valid settings; each invalid one is reported and left at its default."""
    return _limit_concurrency(each_setting(Settings, raw, "settings", problems), problems)


def _limit_concurrency(settings: Settings, problems: list[Problem]) -> Settings:
    wanted = settings.max_concurrent_tasks
    if wanted > CONCURRENCY_LIMIT:
        problems.append(
            Problem(
                Level.ERROR,
                ReasonCode.PARAMETER_CHANGE_REQUIRES_APPROVAL,
                "settings",
                f"max_concurrent_tasks: {wanted} is above the hard limit {CONCURRENCY_LIMIT}; "
                f"keeping the default {CONCURRENCY_WARN}",
            )
        )
        return settings.model_copy(update={"max_concurrent_tasks": CONCURRENCY_WARN})
    if wanted > CONCURRENCY_WARN:
        problems.append(
            Problem(
                Level.WARNING,
                ReasonCode.CRON_RUNNER_PARAMETER_WARNING,
                "settings",
                f"max_concurrent_tasks: {wanted} is above {CONCURRENCY_WARN}; "
                "bus throughput may degrade (spec 000)",
            )
        )
    return settings


# -- tasks ------------------------------------------------------------------------


def _tasks(
    entries: list[Any], section: str, settings: Settings, problems: list[Problem]
) -> list[TaskSpec]:
    tasks: list[TaskSpec] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        task = _task(entry, f"{section}[{index}]", problems)
        if task is None:
            continue
        where = _where(section, index, task.task_id)
        if task.task_id in seen:
            problems.append(
                Problem(
                    Level.ERROR,
                    ReasonCode.CRON_RUNNER_DUPLICATE_TASK_ID,
                    where,
                    f"task_id {task.task_id!r} is already used by an earlier entry",
                )
            )
        elif _cron_ok(task, settings, where, problems):
            seen.add(task.task_id)
            tasks.append(task)
            problems.extend(unknown_keys(entry.keys() - TASK_KEYS, where))
            _warn_defaults(entry, task, where, problems)
    return tasks


def _task(entry: Any, where: str, problems: list[Problem]) -> TaskSpec | None:
    if not isinstance(entry, dict):
        problems.append(invalid(where, f"an entry is a mapping, not {type(entry).__name__}"))
        return None
    try:
        return TaskSpec.model_validate({str(key): value for key, value in entry.items()})
    except ValidationError as err:
        label = _label(where, entry)
        problems.extend(invalid(label, describe(error)) for error in err.errors())
        return None


def _cron_ok(task: TaskSpec, settings: Settings, where: str, problems: list[Problem]) -> bool:
    try:
        parse(task.cron_expression, task.timezone or settings.timezone, hash_key=task.task_id)
    except CronError as err:
        problems.append(
            Problem(Level.ERROR, ReasonCode(err.code), where, f"cron_expression: {err}")
        )
        return False
    return True


def _warn_defaults(
    entry: dict[Any, Any], task: TaskSpec, where: str, problems: list[Problem]
) -> None:
    if not {"cron_expression", "schedule", "cron"} & set(entry):
        problems.append(
            Problem(
                Level.WARNING,
                ReasonCode.CRON_RUNNER_DEFAULT_EXPRESSION,
                where,
                f"no cron_expression: scheduled hourly ({DEFAULT_CRON_EXPRESSION!r})",
            )
        )
    if not task.targets:
        problems.append(
            Problem(
                Level.WARNING,
                ReasonCode.CRON_RUNNER_NO_TARGETS,
                where,
                "no targets (enabled_strategies): each fire will be skipped",
            )
        )


# -- helpers ----------------------------------------------------------------------


def _label(where: str, entry: dict[Any, Any]) -> str:
    name = entry.get("task_id", entry.get("name"))
    return f"{where} {name!r}" if isinstance(name, str) else where


def _where(section: str, index: int, task_id: str) -> str:
    return f"{section}[{index}] {task_id!r}"
