"""The ``supervisor:`` manifest section (spec 004, ARCHITECTURE §2 supervisor): local
workloads the daemon starts, keeps alive and stops.

```yaml
supervisor:
  workloads:
    - name: db-proxy
      command: [./bin/proxy, --port, "6000"]
      liveness: {health_url: "http://127.0.0.1:6000/healthz"}
      hang_timeout_s: 30
    - name: ingest
      command: "python -m ingest >> /dev/null"   # a string runs through /bin/sh -c
      depends_on: [db-proxy]
      restart: always
      restart_budget: {max_restarts: 5, window_s: 300}
      liveness: {heartbeat_file: /run/ingest.beat}
      hang_timeout_s: 60
      stop_signal: INT
```

Each entry is validated on its own: a bad one is rejected with a
:class:`~cronwarden.manifest.problems.Problem` and the others load. A workload that
depends on an unknown or rejected workload, or sits in a dependency cycle, is rejected too.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from cronwarden.manifest.base import _Strict
from cronwarden.manifest.problems import Problem, describe, invalid, unknown_keys

SECTION = "supervisor.workloads"

#: The signals a workload may be stopped with (``stop_signal``), by name without ``SIG``.
STOP_SIGNALS = ("TERM", "INT", "HUP", "QUIT", "KILL")


class RestartPolicy(StrEnum):
    """When a workload whose process ended is started again."""

    NEVER = "never"  # exit 0 → stopped, anything else → failed
    ON_FAILURE = "on-failure"  # after a non-zero exit, a signal or a hang
    ALWAYS = "always"  # after any exit, a clean one too


class RestartBudget(_Strict):
    """At most ``max_restarts`` automatic restarts in any ``window_s`` seconds (a
    sliding window); once spent the workload goes ``failed``."""

    max_restarts: int = Field(default=5, ge=0, le=10_000)
    window_s: float = Field(default=300.0, gt=0, le=7 * 86_400)


class Liveness(_Strict):
    """The workload's sign of life, at most one of: ``health_url`` (a GET answered with a
    2xx), ``heartbeat_file`` (its modification time) or ``stdout_pattern`` (a stdout line
    matching this regular expression). ``timeout_s`` bounds one health-URL poll."""

    health_url: str | None = Field(default=None, pattern=r"^https?://")
    heartbeat_file: str | None = Field(default=None, min_length=1)
    stdout_pattern: str | None = Field(default=None, min_length=1)
    timeout_s: float = Field(default=2.0, gt=0, le=600)

    @field_validator("stdout_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as err:
                raise ValueError(f"not a regular expression: {err}") from None
        return value

    @model_validator(mode="after")
    def _at_most_one(self) -> Liveness:
        chosen = [name for name in _SIGNALS if getattr(self, name) is not None]
        if len(chosen) > 1:
            raise ValueError(f"at most one liveness signal, not {' and '.join(chosen)}")
        return self

    @property
    def kind(self) -> str | None:
        """Which signal is configured (``health_url``, ``heartbeat_file``,
        ``stdout_pattern``), or ``None``."""
        return next((name for name in _SIGNALS if getattr(self, name) is not None), None)


_SIGNALS = ("health_url", "heartbeat_file", "stdout_pattern")


class WorkloadSpec(_Strict):
    """One supervised workload, frozen. ``command`` is an argv list, or a string run
    through ``/bin/sh -c``; ``env`` is added to the daemon's environment."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    command: tuple[str, ...] | str
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    restart: RestartPolicy = RestartPolicy.ON_FAILURE
    backoff_initial_s: float = Field(default=1.0, gt=0, le=3_600)
    backoff_max_s: float = Field(default=60.0, gt=0, le=86_400)
    backoff_jitter: float = Field(default=0.1, ge=0, le=1)
    restart_budget: RestartBudget = Field(default_factory=RestartBudget)
    hang_timeout_s: float | None = Field(default=None, gt=0, le=86_400)
    liveness: Liveness = Field(default_factory=Liveness)
    depends_on: tuple[str, ...] = ()
    stop_signal: str = "SIGTERM"
    stop_grace_s: float = Field(default=10.0, ge=0, le=3_600)
    labels: dict[str, str] = Field(default_factory=dict)
    workload_kind: str = Field(default="service", min_length=1)

    @field_validator("command")
    @classmethod
    def _not_empty(cls, value: tuple[str, ...] | str) -> tuple[str, ...] | str:
        if not (value.strip() if isinstance(value, str) else value):
            raise ValueError("a command is needed")
        return value

    @field_validator("restart", mode="before")
    @classmethod
    def _dashes(cls, value: Any) -> Any:
        return value.replace("_", "-") if isinstance(value, str) else value

    @field_validator("stop_signal", mode="before")
    @classmethod
    def _signal_name(cls, value: Any) -> str:
        name = str(value).upper().removeprefix("SIG")
        if name not in STOP_SIGNALS:
            raise ValueError(f"{value!r} is not one of {', '.join(STOP_SIGNALS)}")
        return f"SIG{name}"

    @model_validator(mode="after")
    def _consistent(self) -> WorkloadSpec:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s is below backoff_initial_s")
        if self.hang_timeout_s is not None and self.liveness.kind is None:
            raise ValueError("hang_timeout_s needs a liveness signal to watch")
        if self.name in self.depends_on:
            raise ValueError("a workload cannot depend on itself")
        return self

    @property
    def argv(self) -> tuple[str, ...]:
        """What to execute: the argv list, or ``/bin/sh -c`` with the command string."""
        if isinstance(self.command, str):
            return ("/bin/sh", "-c", self.command)
        return self.command

    @property
    def stop_signum(self) -> signal.Signals:
        """The signal that asks the workload's process group to stop."""
        return signal.Signals[self.stop_signal]


def validate_supervisor(raw: Any, problems: list[Problem]) -> tuple[WorkloadSpec, ...]:
    """The workloads of the ``supervisor:`` section ``raw`` (``{workloads: [...]}`` or a
    bare list), in a valid start order: each after its dependencies, manifest order
    otherwise. Rejections and warnings are appended to ``problems``; a rejected entry
    never stops the others from loading."""
    entries = _entries(raw, problems)
    accepted: list[tuple[str, WorkloadSpec]] = []
    seen: set[str] = set()
    broken: set[str] = set()
    for index, entry in enumerate(entries):
        spec = _workload(entry, f"{SECTION}[{index}]", problems)
        if spec is None:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                broken.add(entry["name"])
            continue
        where = f"{SECTION}[{index}] {spec.name!r}"
        if spec.name in seen:
            problems.append(invalid(where, f"name: {spec.name!r} is already used"))
            continue
        seen.add(spec.name)
        accepted.append((where, spec))
    return _start_order(accepted, broken, problems)


def _entries(raw: Any, problems: list[Problem]) -> list[Any]:
    if raw is None:
        return []
    if isinstance(raw, list):
        return raw
    if not isinstance(raw, dict):
        problems.append(invalid("supervisor", f"a mapping, not {type(raw).__name__}"))
        return []
    problems.extend(unknown_keys(set(map(str, raw)) - {"workloads"}, "supervisor"))
    entries = raw.get("workloads") or []
    if not isinstance(entries, list):
        problems.append(invalid(SECTION, f"a list, not {type(entries).__name__}"))
        return []
    return entries


def _workload(entry: Any, where: str, problems: list[Problem]) -> WorkloadSpec | None:
    if not isinstance(entry, dict):
        problems.append(invalid(where, f"an entry is a mapping, not {type(entry).__name__}"))
        return None
    name = entry.get("name")
    label = f"{where} {name!r}" if isinstance(name, str) else where
    try:
        spec = WorkloadSpec.model_validate({str(key): value for key, value in entry.items()})
    except ValidationError as err:
        problems.extend(invalid(label, describe(error)) for error in err.errors())
        return None
    problems.extend(unknown_keys(spec.model_extra or {}, label))
    for field in ("restart_budget", "liveness"):
        nested: BaseModel = getattr(spec, field)
        problems.extend(unknown_keys((f"{field}.{k}" for k in nested.model_extra or {}), label))
    return spec


def _start_order(
    accepted: Sequence[tuple[str, WorkloadSpec]], broken: set[str], problems: list[Problem]
) -> tuple[WorkloadSpec, ...]:
    """``accepted`` without workloads whose dependencies are unknown, rejected (``broken``
    names entries rejected earlier) or cyclic, ordered dependencies first (stable: Kahn's
    algorithm in manifest order)."""
    specs = {spec.name: spec for _, spec in accepted}
    wheres = {spec.name: where for where, spec in accepted}
    rejected = _reject_cycles(specs, wheres, problems)
    ordered: list[WorkloadSpec] = []
    placed: set[str] = set()
    pending = [name for name in specs if name not in rejected]
    while pending:
        ready = [n for n in pending if all(d in placed for d in specs[n].depends_on)]
        if not ready:  # what is left depends on something unknown or rejected
            known = broken | set(specs)
            _reject_missing(pending, specs, wheres, known, placed, problems)
            break
        ordered.extend(specs[n] for n in ready)
        placed.update(ready)
        pending = [n for n in pending if n not in placed]
    return tuple(ordered)


def _reject_missing(
    pending: Iterable[str],
    specs: dict[str, WorkloadSpec],
    wheres: dict[str, str],
    known: set[str],
    placed: set[str],
    problems: list[Problem],
) -> None:
    for name in pending:
        missing = [d for d in specs[name].depends_on if d not in placed]
        why = ", ".join(
            f"{d!r} is {'rejected' if d in known else 'not a known workload'}" for d in missing
        )
        problems.append(invalid(wheres[name], f"depends_on: {why}"))


def _reject_cycles(
    specs: dict[str, WorkloadSpec], wheres: dict[str, str], problems: list[Problem]
) -> set[str]:
    """The names of workloads in a dependency cycle, each rejected naming its cycle."""
    in_cycle: set[str] = set()
    for name in specs:
        if name in in_cycle:
            continue
        cycle = _cycle_through(name, specs)
        if cycle:
            text = " -> ".join([*cycle, cycle[0]])
            problems.extend(invalid(wheres[m], f"depends_on: a cycle {text}") for m in cycle)
            in_cycle.update(cycle)
    return in_cycle


def _cycle_through(start: str, specs: dict[str, WorkloadSpec]) -> list[str]:
    """The shortest dependency cycle from ``start`` back to itself, or ``[]``
    (a breadth-first search over known workloads)."""
    paths: list[list[str]] = [[start]]
    visited = {start}
    while paths:
        path = paths.pop(0)
        for dep in specs[path[-1]].depends_on:
            if dep == start:
                return path
            if dep in specs and dep not in visited:
                visited.add(dep)
                paths.append([*path, dep])
    return []
