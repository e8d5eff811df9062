"""The watchdog's part of the manifest (spec 002): the ``services:`` registry and the
``heartbeat:`` settings, with the spec's names, defaults and limits.

Each registry entry is validated on its own: a bad one is rejected with its reason
and the others are watched. A setting above its hard limit, or a locked one changed,
is rejected with ``PARAMETER_CHANGE_REQUIRES_APPROVAL`` and its default kept; above
its warning threshold it is kept with a warning (ARCHITECTURE §4).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator

from cronwarden.manifest.base import _Strict, accepted_keys
from cronwarden.manifest.problems import (
    Level,
    Problem,
    describe,
    each_setting,
    invalid,
    unknown_keys,
)
from cronwarden.reasons import ReasonCode

#: ARCHITECTURE §4 / spec 002 §6: (default, warn above, reject above).
INTERVAL_LIMITS = (30.0, 30.0, 300.0)
MISSES_LIMITS = (3, 3, 10)
#: spec 002 §21: per-call timeout 10000 ms.
MAX_DEFAULT_TIMEOUT_S = 10.0
#: The statuses a body's ``status`` field may hold for a healthy service (spec 002 §11
#: shows ``"ok"``; the others are what common health libraries answer).
HEALTHY_STATUSES = frozenset({"ok", "healthy", "pass", "up"})


class RestartBudget(_Strict):
    """At most ``max_restarts`` automatic restarts in any ``window_s`` (a sliding window)."""

    max_restarts: int = Field(default=3, ge=0, le=1_000)
    window_s: float = Field(default=600.0, gt=0, le=7 * 86_400)


class SupervisorRestart(_Strict):
    """Restart through the supervisor: the workload of that name is restarted."""

    supervisor: str = Field(min_length=1)


class ServiceSpec(_Strict):
    """One watched service: where its health endpoint is and what healthy means.

    Healthy is: an answer within ``timeout_s`` with a status in ``expected_status``
    (default any 2xx); by default a JSON body (spec 002 §23) whose ``status`` field,
    when it has one, is one of :data:`HEALTHY_STATUSES`; ``json_path`` equal to
    ``expected_value`` when set; ``contains`` found in the body when set; and, with
    ``activity_field``, a last-activity time no older than ``max_staleness_s`` (a
    process that answers 200 but stopped working is a zombie, spec 002 §18).
    """

    slug: str = Field(min_length=1, max_length=200,
                      validation_alias=AliasChoices("slug", "bot_slug", "name"))  # fmt: skip
    health_url: str = Field(validation_alias=AliasChoices("health_url", "url"))
    #: spec 002 §21: a poll takes at most 10 s; one slow endpoint must not stretch
    #: every sweep.
    timeout_s: float | None = Field(default=None, gt=0, le=MAX_DEFAULT_TIMEOUT_S)
    expected_status: tuple[int, ...] = ()
    expect_json: bool = True
    json_path: str | None = None
    expected_value: Any = None
    contains: str | None = None
    activity_field: str | None = None
    max_staleness_s: float | None = Field(default=None, gt=0)
    restart_command: tuple[str, ...] | None = None
    restart: SupervisorRestart | None = None
    severity: Literal["page", "warn"] = "page"
    tags: tuple[str, ...] = ()

    @field_validator("health_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("expected_status")
    @classmethod
    def _statuses(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = [code for code in value if not 100 <= code <= 599]
        if bad:
            raise ValueError(f"{bad} are not HTTP status codes")
        return value

    @field_validator("restart_command", mode="before")
    @classmethod
    def _argv(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("must be a list of arguments (argv), not a shell line")
        if value is not None and not value:
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ServiceSpec:
        if self.restart_command and self.restart:
            raise ValueError("restart_command and restart: {supervisor} are exclusive")
        if (self.activity_field is None) != (self.max_staleness_s is None):
            raise ValueError("activity_field and max_staleness_s go together")
        if self.activity_field and not self.expect_json:
            raise ValueError("activity_field needs a JSON body (expect_json: true)")
        if self.json_path and not self.expect_json:
            raise ValueError("json_path needs a JSON body (expect_json: true)")
        return self

    def timeout_for(self, interval_s: float) -> float:
        """The poll's timeout: its own (at most 10 s and the interval), else a third of
        the interval (spec 002 §9), at most 10 s (spec 002 §21)."""
        if self.timeout_s is not None:
            return min(self.timeout_s, interval_s)  # never longer than the interval
        return min(interval_s / 3, MAX_DEFAULT_TIMEOUT_S)

    @property
    def can_restart(self) -> bool:
        return bool(self.restart_command or self.restart)


class HeartbeatSettings(_Strict):
    """The ``heartbeat:`` section, spec 002 §6 names."""

    heartbeat_interval_s: float = Field(default=INTERVAL_LIMITS[0], ge=1)
    missed_heartbeats_to_alert: int = Field(default=MISSES_LIMITS[0], ge=1)
    auto_restart: bool = True
    page_on_failure: bool = True
    restart_budget: RestartBudget = Field(default_factory=RestartBudget)
    max_in_flight: int = Field(default=97, ge=1, le=10_000)
    #: Processes a sweep is dealt to (one event loop polls about 1,200 endpoints a second
    #: on one core): 1 for up to a few thousand endpoints; about the number of cores for
    #: 10,000. Read at start.
    sweep_processes: int = Field(default=1, ge=1, le=64)
    #: How long a ``restart_command`` may take before it is stopped and counted failed.
    restart_timeout_s: float = Field(default=60.0, gt=0, le=3_600)
    #: Pinged after every sweep (healthchecks.io style); ``/fail`` appended when the
    #: sweep found a service down.
    deadman_url: str | None = None
    #: Channels (names from ``notifications.channels``, or ``memory``) that hear every
    #: page: a service down, its restart budget spent, its recovery from down.
    notify: tuple[str, ...] = ()
    #: Set false to run no watchdog at all (no sweeps, no health-heartbeat endpoint).
    enabled: bool = True

    @field_validator("deadman_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


SERVICE_KEYS = accepted_keys(ServiceSpec)


def validate_services(
    raw: Any, problems: list[Problem]
) -> tuple[tuple[ServiceSpec, ...], list[str]]:
    """The valid registry entries of ``services:`` and the slugs rejected."""
    if raw in (None, []):
        return (), []
    if not isinstance(raw, list):
        problems.append(invalid("services", f"a list of services, not {type(raw).__name__}"))
        return (), []
    valid: list[ServiceSpec] = []
    rejected: list[str] = []
    for index, entry in enumerate(raw):
        where = f"services[{index}]"
        if not isinstance(entry, dict):
            problems.append(invalid(where, f"an entry is a mapping, not {type(entry).__name__}"))
            continue
        slug = next((entry[k] for k in ("slug", "bot_slug", "name") if k in entry), None)
        if isinstance(slug, str):
            where = f"{where} {slug!r}"
        try:
            service = ServiceSpec.model_validate({str(k): v for k, v in entry.items()})
        except ValidationError as err:
            problems.extend(invalid(where, describe(error)) for error in err.errors())
            rejected.append(str(slug))
            continue
        if any(known.slug == service.slug for known in valid):
            problems.append(invalid(where, f"slug {service.slug!r} is already watched"))
            continue
        problems.extend(unknown_keys(entry.keys() - SERVICE_KEYS, where))
        valid.append(service)
    return tuple(valid), rejected


def validate_heartbeat(raw: Any, problems: list[Problem]) -> HeartbeatSettings:
    """The ``heartbeat:`` settings; each invalid or rejected one is reported and left at
    its default."""
    if raw is None:
        return HeartbeatSettings()
    if not isinstance(raw, dict):
        problems.append(invalid("heartbeat", f"a mapping, not {type(raw).__name__}"))
        return HeartbeatSettings()
    return _limited(each_setting(HeartbeatSettings, raw, "heartbeat", problems), problems)


def _limited(settings: HeartbeatSettings, problems: list[Problem]) -> HeartbeatSettings:
    """Spec 002 §6-7: hard limits reject, warning thresholds warn, page_on_failure is
    locked to true."""
    keep: dict[str, Any] = {}
    for name, (default, warn, hard), why in (
        ("heartbeat_interval_s", INTERVAL_LIMITS, "detection latency increased"),
        ("missed_heartbeats_to_alert", MISSES_LIMITS, "alert latency increased"),
    ):
        value = getattr(settings, name)
        if value > hard:
            problems.append(_approval(f"{name}: {value:g} is above the hard limit {hard:g}; "
                                      f"keeping the default {default:g}"))  # fmt: skip
            keep[name] = default
        elif value > warn:
            problems.append(Problem(Level.WARNING, ReasonCode.CRON_RUNNER_PARAMETER_WARNING,
                                    "heartbeat", f"{name}: {value:g} is above {warn:g}; {why} "
                                    "(spec 002)"))  # fmt: skip
    if not settings.page_on_failure:
        problems.append(_approval("page_on_failure: locked to true (spec 002 §7); "
                                  "paging on a down service cannot be turned off"))  # fmt: skip
        keep["page_on_failure"] = True
    return settings.model_copy(update=keep) if keep else settings


def _approval(message: str) -> Problem:
    return Problem(Level.ERROR, ReasonCode.PARAMETER_CHANGE_REQUIRES_APPROVAL, "heartbeat", message)
