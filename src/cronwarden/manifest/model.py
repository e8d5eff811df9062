"""The manifest as typed, frozen models (ARCHITECTURE §3 "Manifest").

Canonical keys, with the specs' names accepted as aliases: ``name`` for
``task_id``, ``schedule`` and ``cron`` for ``cron_expression``,
``enabled_strategies`` for ``targets``. Validation that needs more than one
field (cron expressions in the task's timezone, duplicate ids, parameter
limits) lives in :mod:`cronwarden.manifest.load`, which checks each entry on its
own so that one bad entry never takes the others down.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from enum import StrEnum
from functools import cached_property
from typing import Any

from pydantic import AliasChoices, ConfigDict, Field, field_validator

from cronwarden.cron.fields import DAY_OF_WEEK, field_bits
from cronwarden.cron.zones import resolve_zone
from cronwarden.errors import CronError
from cronwarden.manifest.base import _Strict
from cronwarden.manifest.services import HeartbeatSettings, ServiceSpec
from cronwarden.manifest.targets import BusTarget, CommandTarget, HttpTarget, PythonTarget, Target
from cronwarden.manifest.workloads import WorkloadSpec

BUS_ONLY = BusTarget()

#: spec 000: "Hourly default prevents unintentional high-frequency dispatch."
DEFAULT_CRON_EXPRESSION = "0 * * * *"


class TaskClass(StrEnum):
    """What the kill switch spares: it suppresses ``trading`` tasks only (spec 000)."""

    TRADING = "trading"
    GOVERNANCE = "governance"
    HEALTH = "health"


class NotifyOn(StrEnum):
    """When a task's channels hear about a run."""

    FAILURE = "failure"  # an attempt failed and another will follow
    RETRY_EXHAUSTED = "retry_exhausted"  # the last attempt failed
    SUCCESS = "success"


class Overlap(StrEnum):
    """What a new run does while the task's previous run is still running."""

    FORBID = "forbid"  # skipped and recorded (CRON_RUNNER_OVERLAP_SKIP)
    ALLOW = "allow"  # runs alongside
    REPLACE = "replace"  # the running one is cancelled (recorded), the new one runs
    QUEUE_ONE = "queue_one"  # waits for the running one; a further one is skipped


class CatchUp(StrEnum):
    """What to do with instants missed past their grace window."""

    SKIP = "skip"  # spec 000: missed ticks are not retroactively fired
    ONCE = "once"  # fire the latest missed instant once


def _zone_name(value: str) -> str:
    try:
        resolve_zone(value)
    except CronError as err:
        raise ValueError(str(err)) from None
    return value


class QuietHours(_Strict):
    """A window in which tasks with ``disable_during_quiet_hours`` are suppressed.

    ``end`` before ``start`` crosses midnight; ``days`` are the days the window
    starts on, in cron day-of-week syntax (``MON-FRI``, ``SAT,SUN``, ``1-5``).
    """

    name: str = ""
    start: time
    end: time
    days: tuple[str, ...] = ("*",)
    timezone: str = "UTC"

    @field_validator("days")
    @classmethod
    def _days_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            try:
                field_bits(str(text).upper(), DAY_OF_WEEK, None)
            except CronError as err:
                raise ValueError(str(err)) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone_known(cls, value: str) -> str:
        return _zone_name(value)


class ArtifactRetention(_Strict):
    """How many run folders a task keeps under ``{artifacts_dir}/{task_id}/``: at most
    ``max_runs``, none older than ``max_age_days`` (0: no limit). The task's latest
    successful run (its ``CRONWARDEN_PREVIOUS_ARTIFACT_DIR``) and runs still going are
    always kept."""

    max_runs: int = Field(default=1_000, ge=0, le=1_000_000)
    max_age_days: float = Field(default=30.0, ge=0, le=36_500)


class _EmptyConfig(dict[str, Any]):
    """An empty dict that refuses to change: safe to share, and it serializes, copies
    and pickles as a dict."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a task's absent config is shared and read-only")

    __setitem__ = __delitem__ = update = setdefault = pop = popitem = clear = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple[type[dict[str, Any]], tuple[()]]:
        return dict, ()  # a copy is an ordinary, writable empty dict

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return {}


#: The value of an absent ``config`` or ``inputs``: one shared empty mapping, so that
#: 100,000 tasks do not carry 200,000 empty dicts.
NOTHING: Mapping[str, Any] = _EmptyConfig()
_shared: dict[Any, Any] = {}
_shared_key_sets: dict[frozenset[str], set[str]] = {}


def _share(value: Any) -> Any:
    """One object for equal strings and tuples that many tasks repeat (expressions,
    timezones, target lists): a fleet shares a handful of each."""
    return _shared.setdefault(value, value) if len(_shared) < 65_536 else value


class TaskSpec(_Strict):
    """One scheduled task (spec 000 manifest entry, spec 001 job, spec 003 job).

    Keys that are not fields are ignored (the loader warns about each: see
    :func:`accepted_keys`), not kept on the task.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    task_id: str = Field(min_length=1, validation_alias=AliasChoices("task_id", "name"))
    cron_expression: str = Field(
        default=DEFAULT_CRON_EXPRESSION,
        validation_alias=AliasChoices("cron_expression", "schedule", "cron"),
    )
    targets: tuple[str, ...] = Field(
        default=(), validation_alias=AliasChoices("targets", "enabled_strategies")
    )
    task_class: TaskClass = TaskClass.TRADING
    disable_during_quiet_hours: bool = False
    enabled: bool = True
    timezone: str | None = None
    description: str = ""
    config: Mapping[str, Any] = Field(default_factory=lambda: NOTHING)
    misfire_grace_s: float = Field(default=30.0, gt=0, le=86_400)
    catch_up: CatchUp = CatchUp.SKIP
    overlap: Overlap = Overlap.FORBID
    # spec 003: what a skill job runs
    skill: str | None = None
    persona: str | None = None
    inputs: Mapping[str, Any] = Field(default_factory=lambda: NOTHING)
    notify: tuple[str, ...] = ()
    notify_on: tuple[NotifyOn, ...] = (NotifyOn.FAILURE, NotifyOn.RETRY_EXHAUSTED)
    #: This task's own artifact retention; ``None``: the manifest's.
    artifact_retention: ArtifactRetention | None = None

    @field_validator("timezone")
    @classmethod
    def _timezone_known(cls, value: str | None) -> str | None:
        return None if value is None else _share(_zone_name(value))

    @field_validator("cron_expression", "targets", "notify", "notify_on")
    @classmethod
    def _shared_value(cls, value: Any) -> Any:
        return _share(value)

    @field_validator("config", "inputs")
    @classmethod
    def _empty_shared(cls, value: Mapping[str, Any]) -> Mapping[str, Any]:
        return value or NOTHING

    def model_post_init(self, context: Any, /) -> None:
        # Which keys an entry wrote: a set per task (about 200 bytes), shared among the
        # tasks that wrote the same keys. The model is frozen, so nothing changes it.
        written = self.__pydantic_fields_set__
        if len(_shared_key_sets) < 4_096:
            shared = _shared_key_sets.setdefault(frozenset(written), written)
            object.__setattr__(self, "__pydantic_fields_set__", shared)


class Notifications(_Strict):
    """Where notifications go: channel name → apprise URL (``memory`` is built in: it
    only records the notification), and how long a repeat of the same one is held back."""

    channels: dict[str, str] = Field(default_factory=dict)
    dedupe_window_s: float = Field(default=3_600.0, ge=0, le=7 * 86_400)


class Settings(_Strict):
    """The manifest's top-level settings (everything but the task list)."""

    timezone: str = "UTC"
    max_concurrent_tasks: int = Field(default=20, ge=1)
    #: Target runs (commands) the in-process workers run at once; the rest wait in order.
    max_concurrent_runs: int = Field(default=8, ge=1, le=256)
    state_dir: str | None = None
    artifacts_dir: str | None = None
    log_level: str = "info"
    #: Reports and settled dispatch rows older than this are pruned, once a day.
    retention_days: int = Field(default=365, ge=1, le=36_500)
    #: Run folders kept per task (a task's own ``artifact_retention`` overrides it).
    artifact_retention: ArtifactRetention = Field(default_factory=ArtifactRetention)
    quiet_hours: tuple[QuietHours, ...] = ()
    # Sections of later components, kept as written until those components validate them.
    targets: dict[str, Any] = Field(default_factory=dict)
    execution_modes: dict[str, Any] = Field(default_factory=dict)
    services: Any = Field(default_factory=list)  # validated by manifest.services
    heartbeat: Any = Field(default_factory=dict)  # validated by manifest.services
    supervisor: Any = Field(default_factory=dict)  # validated by manifest.workloads
    alerts: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    notifications: Notifications = Field(default_factory=Notifications)

    @field_validator("timezone")
    @classmethod
    def _timezone_known(cls, value: str) -> str:
        return _zone_name(value)


class Manifest(Settings):
    """A whole manifest: settings plus the tasks that passed validation."""

    tasks: tuple[TaskSpec, ...] = ()
    #: The ``services:`` entries that passed validation (the watchdog's registry).
    watched: tuple[ServiceSpec, ...] = ()
    #: The ``heartbeat:`` section, validated, with its limits applied.
    heartbeat_settings: HeartbeatSettings = Field(default_factory=HeartbeatSettings)
    #: The ``supervisor:`` workloads that passed validation, in start order.
    workloads: tuple[WorkloadSpec, ...] = ()

    def task(self, task_id: str) -> TaskSpec:
        """The task named ``task_id``; :class:`KeyError` when there is none."""
        return self._by_id[task_id]

    @cached_property
    def _by_id(self) -> dict[str, TaskSpec]:
        return {task.task_id: task for task in self.tasks}

    def retention_of(self, task: TaskSpec) -> ArtifactRetention:
        """How many of ``task``'s run folders are kept: the manifest's rule with the
        task's own keys over it."""
        own = task.artifact_retention
        if own is None:
            return self.artifact_retention
        return self.artifact_retention.model_copy(
            update={key: getattr(own, key) for key in own.model_fields_set}
        )

    def zone_of(self, task: TaskSpec) -> str:
        """The timezone a task's expression is read in: its own, else the manifest's."""
        return task.timezone or self.timezone

    def target(self, name: str) -> Target:
        """How the target ``name`` runs: its validated entry, else only published."""
        spec = self.targets.get(name)
        return (
            spec
            if isinstance(spec, BusTarget | CommandTarget | HttpTarget | PythonTarget)
            else BUS_ONLY
        )
