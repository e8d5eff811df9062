"""Every reason code cronwarden emits, with the spec's own words for it.

This module is the one place that lists reason codes. Each :class:`Reason` carries the
severity exactly as the spec's table states it (``INFO``, ``WARN``, ``HARD_REJECT``), the
meaning and action, the table's user-facing message (verbatim; ``""`` where the spec has
none), the situation-level plain-English explanations of the spec, whether the spec asks
for an alert or a page, and which spec the wording comes from.

Sources:

* spec 000 (CronRunner): JSON ``reason_codes``, ``user_explanations``, ``parameters``,
  ``failure_injection`` and ``metrics.alerts``;
* spec 002 (HealthHeartbeat): §14 Reason Codes, §17 Plain-English Reporting, §6-7
  parameters, §15 Alerts.

``KILL_SWITCH_ACTIVE`` is one code in both specs with different wording: the primary text
is spec 000's, spec 002's heartbeat context is kept in :attr:`Reason.also`. So is spec
002's wording of ``PARAMETER_CHANGE_REQUIRES_APPROVAL``.

Later features add their codes here, in the same shape: a :class:`ReasonCode` member and
one :class:`Reason` row. Keep this a table: data, not logic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "REASONS",
    "AlertLevel",
    "Reason",
    "ReasonCode",
    "Severity",
    "Situation",
    "Spec",
    "SpecText",
    "reason",
    "user_message",
]


class Severity(StrEnum):
    """Severity exactly as the specs' reason-code tables spell it."""

    INFO = "INFO"
    WARN = "WARN"
    HARD_REJECT = "HARD_REJECT"


class AlertLevel(StrEnum):
    """Whether the spec asks for an alert when the code is emitted, and how loud.

    ``PAGE`` and ``WARN`` are the severities of the specs' alert tables; ``WARN`` is also
    used where the spec asks for an alert without saying it pages.
    """

    NONE = "none"
    WARN = "warn"
    PAGE = "page"


class Spec(StrEnum):
    """The source specification a text comes from (file stem under ``shared/spec``)."""

    CRON_RUNNER = "000_7ff9c8e7bf7cc18a"
    HEALTH_HEARTBEAT = "002_ed972c8f5a5d1968"
    CRONWARDEN = "cronwarden"
    """Codes cronwarden adds in the specs' pattern (ARCHITECTURE §3, "Reason codes")."""


class ReasonCode(StrEnum):
    """Every reason code; members are named exactly like their code strings."""

    # spec 000, CronRunner: reason_codes
    CRON_RUNNER_TASK_DISPATCHED = "CRON_RUNNER_TASK_DISPATCHED"
    CRON_RUNNER_INVALID_EXPRESSION = "CRON_RUNNER_INVALID_EXPRESSION"
    CRON_RUNNER_DUPLICATE_FIRE = "CRON_RUNNER_DUPLICATE_FIRE"
    CRON_RUNNER_QUIET_HOURS_SKIP = "CRON_RUNNER_QUIET_HOURS_SKIP"
    CRON_RUNNER_NO_TARGETS = "CRON_RUNNER_NO_TARGETS"
    CRON_RUNNER_BUS_PUBLISH_FAILED = "CRON_RUNNER_BUS_PUBLISH_FAILED"
    CRON_RUNNER_MANIFEST_RELOAD_OK = "CRON_RUNNER_MANIFEST_RELOAD_OK"
    # spec 000 reason_codes and spec 002 §14
    KILL_SWITCH_ACTIVE = "KILL_SWITCH_ACTIVE"
    # spec 002, HealthHeartbeat: §14 Reason Codes
    HEALTH_HEARTBEAT_SWEEP_COMPLETE = "HEALTH_HEARTBEAT_SWEEP_COMPLETE"
    HEALTH_HEARTBEAT_BOT_DOWN = "HEALTH_HEARTBEAT_BOT_DOWN"
    HEALTH_HEARTBEAT_BOT_RECOVERED = "HEALTH_HEARTBEAT_BOT_RECOVERED"
    HEALTH_HEARTBEAT_AUTO_RESTART = "HEALTH_HEARTBEAT_AUTO_RESTART"
    HEALTH_HEARTBEAT_RESTART_BUDGET_EXHAUSTED = "HEALTH_HEARTBEAT_RESTART_BUDGET_EXHAUSTED"
    HEALTH_HEARTBEAT_ENDPOINT_TIMEOUT = "HEALTH_HEARTBEAT_ENDPOINT_TIMEOUT"
    HEALTH_HEARTBEAT_REGISTRY_STALE = "HEALTH_HEARTBEAT_REGISTRY_STALE"
    # spec 000 parameters and spec 002 §6-7: parameter hard limits and locked parameters
    PARAMETER_CHANGE_REQUIRES_APPROVAL = "PARAMETER_CHANGE_REQUIRES_APPROVAL"
    # spec 000 failure_injection: Redis down, in-process lock fallback
    REDIS_LOCK_UNAVAILABLE = "REDIS_LOCK_UNAVAILABLE"
    # cronwarden: the manifest
    CRON_RUNNER_MANIFEST_UNREADABLE = "CRON_RUNNER_MANIFEST_UNREADABLE"
    CRON_RUNNER_MANIFEST_ENTRY_INVALID = "CRON_RUNNER_MANIFEST_ENTRY_INVALID"
    CRON_RUNNER_DUPLICATE_TASK_ID = "CRON_RUNNER_DUPLICATE_TASK_ID"
    CRON_RUNNER_UNKNOWN_KEY = "CRON_RUNNER_UNKNOWN_KEY"
    CRON_RUNNER_DEFAULT_EXPRESSION = "CRON_RUNNER_DEFAULT_EXPRESSION"
    CRON_RUNNER_PARAMETER_WARNING = "CRON_RUNNER_PARAMETER_WARNING"
    # cronwarden: the scheduler
    CRON_RUNNER_MISSED_FIRE = "CRON_RUNNER_MISSED_FIRE"
    CRON_RUNNER_TASK_PAUSED = "CRON_RUNNER_TASK_PAUSED"
    CRON_RUNNER_TASK_RESUMED = "CRON_RUNNER_TASK_RESUMED"
    KILL_SWITCH_RELEASED = "KILL_SWITCH_RELEASED"
    CRON_RUNNER_UNKNOWN_TASK = "CRON_RUNNER_UNKNOWN_TASK"
    CRON_RUNNER_BACKEND_FAILED = "CRON_RUNNER_BACKEND_FAILED"
    # cronwarden: the workers
    CRON_RUNNER_TARGET_INVALID = "CRON_RUNNER_TARGET_INVALID"
    CRON_RUNNER_OVERLAP_SKIP = "CRON_RUNNER_OVERLAP_SKIP"
    CRON_RUNNER_RUN_FAILED = "CRON_RUNNER_RUN_FAILED"
    CRON_RUNNER_RUN_REPLACED = "CRON_RUNNER_RUN_REPLACED"
    CRON_RUNNER_RUN_ABANDONED = "CRON_RUNNER_RUN_ABANDONED"
    CRON_RUNNER_NOTIFICATION_SENT = "CRON_RUNNER_NOTIFICATION_SENT"
    CRON_RUNNER_NOTIFICATION_FAILED = "CRON_RUNNER_NOTIFICATION_FAILED"
    # cronwarden: the supervisor
    SUPERVISOR_WORKLOAD_STARTED = "SUPERVISOR_WORKLOAD_STARTED"
    SUPERVISOR_WORKLOAD_EXITED = "SUPERVISOR_WORKLOAD_EXITED"
    SUPERVISOR_WORKLOAD_RESTARTED = "SUPERVISOR_WORKLOAD_RESTARTED"
    SUPERVISOR_WORKLOAD_HUNG = "SUPERVISOR_WORKLOAD_HUNG"
    SUPERVISOR_RESTART_BUDGET_EXHAUSTED = "SUPERVISOR_RESTART_BUDGET_EXHAUSTED"
    SUPERVISOR_WORKLOAD_STOPPED = "SUPERVISOR_WORKLOAD_STOPPED"
    SUPERVISOR_STOP_OVERRAN = "SUPERVISOR_STOP_OVERRAN"


@dataclass(frozen=True, slots=True)
class SpecText:
    """One spec's wording for a code that another spec words differently."""

    spec: Spec
    section: str
    severity: Severity
    meaning: str
    action: str
    user_message: str = ""


@dataclass(frozen=True, slots=True)
class Situation:
    """A situation-level plain-English explanation, verbatim from a spec.

    ``condition`` is empty when the situation holds whenever the code is emitted;
    otherwise it says when it holds (and :func:`user_message` does not pick it).
    """

    spec: Spec
    situation: str
    message: str
    condition: str = ""


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason code and everything the specs say about it."""

    code: ReasonCode
    severity: Severity
    meaning: str
    action: str
    user_message: str
    """The spec table's user-facing message, verbatim; ``""`` where the spec has none."""
    spec: Spec
    """The spec the primary wording (severity, meaning, action, user_message) comes from."""
    section: str
    """Where in :attr:`spec` the primary wording is."""
    situations: tuple[Situation, ...] = ()
    alert: AlertLevel = AlertLevel.NONE
    alert_rule: str = ""
    """Name of the spec's alert rule for this code, ``""`` where there is none."""
    also: tuple[SpecText, ...] = ()
    """The wording of other specs that list the same code."""

    @property
    def explanation(self) -> str:
        """The unconditional situation explanation, or ``""``."""
        return next((s.message for s in self.situations if not s.condition), "")

    @property
    def specs(self) -> tuple[Spec, ...]:
        """Every spec that names this code, primary first."""
        return (self.spec, *(t.spec for t in self.also if t.spec != self.spec))


_S000 = Spec.CRON_RUNNER
_S002 = Spec.HEALTH_HEARTBEAT
_OURS = Spec.CRONWARDEN
_MANIFEST = "ARCHITECTURE §3 Manifest"
_RC = "reason_codes"
_S14 = "§14 Reason Codes"
_SUPERVISOR = "ARCHITECTURE §2 supervisor (spec 004)"

_TABLE: tuple[Reason, ...] = (
    # -- spec 000, CronRunner ---------------------------------------------------------
    Reason(
        code=ReasonCode.CRON_RUNNER_TASK_DISPATCHED,
        severity=Severity.INFO,
        meaning="A cron task fired on schedule and was dispatched to all configured targets.",
        action="No action — operational heartbeat.",
        user_message="",
        spec=_S000,
        section=_RC,
        situations=(
            Situation(
                _S000,
                "Scheduled maintenance task fired",
                "The system ran a scheduled internal task on time. No action needed.",
            ),
        ),
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_INVALID_EXPRESSION,
        severity=Severity.HARD_REJECT,
        meaning="A cron expression in the manifest failed to parse.",
        action="Reject the config entry at load time; alert on-call.",
        user_message="",
        spec=_S000,
        section=_RC,
        alert=AlertLevel.WARN,
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_DUPLICATE_FIRE,
        severity=Severity.WARN,
        meaning=(
            "A second CronRunner instance attempted to dispatch the same task at the same "
            "scheduled time; distributed lock was already held."
        ),
        action="Skip dispatch; log warning.",
        user_message="",
        spec=_S000,
        section=_RC,
        alert=AlertLevel.WARN,
        alert_rule="CronRunnerDuplicateFireRate",
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_QUIET_HOURS_SKIP,
        severity=Severity.INFO,
        meaning=(
            "A task with disable_during_quiet_hours=true was suppressed because the current "
            "UTC time falls within a configured quiet window."
        ),
        action="No action — expected behaviour.",
        user_message="A scheduled task was paused during a quiet period.",
        spec=_S000,
        section=_RC,
        situations=(
            Situation(
                _S000,
                "Task skipped during quiet hours",
                "A scheduled task was paused during a quiet period to avoid interference "
                "with market activity.",
            ),
        ),
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_NO_TARGETS,
        severity=Severity.WARN,
        meaning=(
            "A task entry has an empty enabled_strategies list; there is nothing to dispatch."
        ),
        action="Log warning; skip dispatch.",
        user_message="",
        spec=_S000,
        section=_RC,
    ),
    # spec 000's pseudocode logs this as 'CRON_RUNNER_KILL_SWITCH_ACTIVE'; both its
    # reason_codes table and spec 002 §14 name it KILL_SWITCH_ACTIVE, which is the code.
    Reason(
        code=ReasonCode.KILL_SWITCH_ACTIVE,
        severity=Severity.WARN,
        meaning="KillSwitch is active; trading-class scheduled tasks are suppressed.",
        action="Suppress trading tasks; continue governance and health tasks.",
        user_message=("Scheduled trading tasks are paused while the system kill switch is active."),
        spec=_S000,
        section=_RC,
        situations=(
            Situation(
                _S000,
                "Task suppressed by kill switch",
                "Scheduled trading-related tasks are paused. "
                "Governance and health checks continue.",
            ),
        ),
        also=(
            SpecText(
                spec=_S002,
                section=_S14,
                severity=Severity.WARN,
                meaning="KillSwitch is active; this is surfaced in the sweep report for context.",
                action="Continue monitoring all bots; do not suppress health checks.",
                user_message="",
            ),
        ),
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_BUS_PUBLISH_FAILED,
        severity=Severity.WARN,
        meaning="Internal bus publish for a task trigger failed after retries.",
        action="Log error; emit alert; retry on next tick.",
        user_message="",
        spec=_S000,
        section=_RC,
        alert=AlertLevel.PAGE,
        alert_rule="CronRunnerBusFailures",
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_MANIFEST_RELOAD_OK,
        severity=Severity.INFO,
        meaning="Cron manifest reloaded successfully after a config change event.",
        action="No action.",
        user_message="",
        spec=_S000,
        section=_RC,
    ),
    # -- spec 002, HealthHeartbeat ----------------------------------------------------
    Reason(
        code=ReasonCode.HEALTH_HEARTBEAT_SWEEP_COMPLETE,
        severity=Severity.INFO,
        meaning="Full sweep of all registered bots completed; OperationsReport emitted.",
        action="No action — routine heartbeat.",
        user_message="",
        spec=_S002,
        section=_S14,
        # Every sweep completes, healthy or not: "Everything is running normally" is only
        # true of a sweep that found no unhealthy bot, so user_message() does not pick it.
        situations=(
            Situation(
                _S002,
                "All bots healthy",
                "All system components passed their health checks. Everything is running normally.",
                condition="unhealthy_count == 0",
            ),
        ),
    ),
    Reason(
        code=ReasonCode.HEALTH_HEARTBEAT_BOT_DOWN,
        severity=Severity.WARN,
        meaning=(
            "A bot has exceeded the missed_heartbeats_to_alert threshold of consecutive "
            "missed polls."
        ),
        action="Fire page-severity alert; trigger auto-restart if enabled.",
        user_message=("A system component is not responding. The on-call team has been notified."),
        spec=_S002,
        section=_S14,
        alert=AlertLevel.PAGE,
        alert_rule="HealthHeartbeatBotDown",
    ),
    Reason(
        code=ReasonCode.HEALTH_HEARTBEAT_BOT_RECOVERED,
        severity=Severity.INFO,
        meaning=("A previously unhealthy bot returned a healthy response; miss_count reset to 0."),
        action="Emit recovery notification; no further action.",
        user_message="A component that was restarted is now healthy.",
        spec=_S002,
        section=_S14,
    ),
    Reason(
        code=ReasonCode.HEALTH_HEARTBEAT_AUTO_RESTART,
        severity=Severity.WARN,
        meaning=(
            "CronRunner triggered an automatic restart for a bot that missed the heartbeat "
            "threshold."
        ),
        action="Log restart; increment restart budget counter.",
        user_message="A component was automatically restarted.",
        spec=_S002,
        section=_S14,
        situations=(
            Situation(
                _S002,
                "A bot was auto-restarted",
                "A component stopped responding and was automatically restarted. "
                "Trading and risk monitoring continued without interruption.",
            ),
        ),
    ),
    Reason(
        code=ReasonCode.HEALTH_HEARTBEAT_RESTART_BUDGET_EXHAUSTED,
        severity=Severity.WARN,
        meaning=(
            "A bot has been restarted the maximum number of times within the restart budget "
            "window without recovering."
        ),
        action="Stop auto-restarting; escalate page to on-call.",
        user_message=(
            "Automatic restart attempts have been exhausted for a component. "
            "Manual intervention is required."
        ),
        spec=_S002,
        section=_S14,
        situations=(
            Situation(
                _S002,
                "A bot is down and restart budget exhausted",
                "A component is not responding and automatic restart attempts have been "
                "exhausted. The on-call team has been notified.",
            ),
        ),
        alert=AlertLevel.PAGE,
        alert_rule="HealthHeartbeatRestartBudgetExhausted",
    ),
    Reason(
        code=ReasonCode.HEALTH_HEARTBEAT_ENDPOINT_TIMEOUT,
        severity=Severity.WARN,
        meaning="A bot's health endpoint did not respond within the configured timeout.",
        action="Treat as missed heartbeat; increment miss_count.",
        user_message="",
        spec=_S002,
        section=_S14,
    ),
    Reason(
        code=ReasonCode.HEALTH_HEARTBEAT_REGISTRY_STALE,
        severity=Severity.WARN,
        meaning=("The bot registry has not been refreshed from the config store within 5 minutes."),
        action="Retry registry fetch; alert if stale for > 10 minutes.",
        user_message="",
        spec=_S002,
        section=_S14,
        alert=AlertLevel.WARN,
    ),
    # -- codes the specs use outside their reason-code tables -------------------------
    Reason(
        code=ReasonCode.PARAMETER_CHANGE_REQUIRES_APPROVAL,
        severity=Severity.HARD_REJECT,
        meaning=(
            "A configuration change sets a parameter above its hard limit "
            "(max_concurrent_tasks > 60); it needs approval."
        ),
        action="Reject the config change at load with a ConfigError.",
        user_message="",
        spec=_S000,
        section="parameters",
        also=(
            SpecText(
                spec=_S002,
                section="§6-7 Parameters",
                severity=Severity.HARD_REJECT,
                meaning=(
                    "A configuration change sets heartbeat_interval_s above 300 s or "
                    "missed_heartbeats_to_alert above 10, or sets the locked page_on_failure "
                    "to false; it needs approval."
                ),
                action="Reject the config change at load with a ConfigError.",
                user_message="",
            ),
        ),
    ),
    Reason(
        code=ReasonCode.REDIS_LOCK_UNAVAILABLE,
        severity=Severity.WARN,
        meaning=(
            "Redis, the distributed lock, is unreachable: claims fall back to an in-process "
            "lock, which does not span instances for the outage window (spec: "
            "CRON_RUNNER_DUPLICATE_FIRE suppression is weakened)."
        ),
        action=(
            "Fall back to the in-process lock with a warning and mark reports "
            "lock_mode: local; distributed locking resumes once Redis reconnects."
        ),
        user_message="",
        spec=_S000,
        section="failure_injection",
    ),
    # -- cronwarden: the manifest -------------------------------------------------------
    Reason(
        code=ReasonCode.CRON_RUNNER_MANIFEST_UNREADABLE,
        severity=Severity.HARD_REJECT,
        meaning="The manifest file could not be read or parsed as YAML, JSON or TOML.",
        action="Keep the last good manifest running and alert; fix the file.",
        user_message="",
        spec=_OURS,
        section=_MANIFEST,
        alert=AlertLevel.WARN,
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_MANIFEST_ENTRY_INVALID,
        severity=Severity.HARD_REJECT,
        meaning="A manifest entry or setting has a missing, mistyped or out-of-range value.",
        action="Reject that entry or setting; every other entry still schedules.",
        user_message="",
        spec=_OURS,
        section=_MANIFEST,
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_DUPLICATE_TASK_ID,
        severity=Severity.HARD_REJECT,
        meaning="Two manifest entries share one task_id; the later one is rejected.",
        action="Reject the later entry; rename one of them.",
        user_message="",
        spec=_OURS,
        section=_MANIFEST,
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_UNKNOWN_KEY,
        severity=Severity.WARN,
        meaning="A manifest key is not known to cronwarden (often a typo); it is ignored.",
        action="Warn, naming the key; load everything else.",
        user_message="",
        spec=_OURS,
        section=_MANIFEST,
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_DEFAULT_EXPRESSION,
        severity=Severity.WARN,
        meaning=("A task has no cron_expression and takes the spec's hourly default '0 * * * *'."),
        action="Warn; schedule the task hourly until it names its own expression.",
        user_message="",
        spec=_OURS,
        section=_MANIFEST,
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_MISSED_FIRE,
        severity=Severity.WARN,
        meaning=(
            "A scheduled instant came due later than its misfire grace (a stalled loop, a "
            "wall-clock jump, a suspended machine) and was not fired."
        ),
        action=(
            "Record the miss; fire the latest missed instant once when the task's catch_up "
            "is 'once', never retroactively otherwise (spec 000 safe_fallback)."
        ),
        user_message="",
        spec=_OURS,
        section="ARCHITECTURE §3 Exactly once",
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_TASK_PAUSED,
        severity=Severity.INFO,
        meaning="An operator paused the task; its fire was suppressed.",
        action="No action until the task is resumed (cronwarden resume TASK).",
        user_message="A scheduled task was paused by an operator.",
        spec=_OURS,
        section="ARCHITECTURE §3 CLI",
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_TASK_RESUMED,
        severity=Severity.INFO,
        meaning="An operator resumed a paused task; its next instants fire again.",
        action="No action.",
        user_message="",
        spec=_OURS,
        section="ARCHITECTURE §3 CLI",
    ),
    Reason(
        code=ReasonCode.KILL_SWITCH_RELEASED,
        severity=Severity.INFO,
        meaning="An operator turned the kill switch off; trading tasks fire again.",
        action="No action.",
        user_message="",
        spec=_OURS,
        section="ARCHITECTURE §3 CLI",
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_UNKNOWN_TASK,
        severity=Severity.WARN,
        meaning="A command named a task that the manifest does not have.",
        action="Refuse the command; check the task id (cronwarden list).",
        user_message="",
        spec=_OURS,
        section="ARCHITECTURE §3 CLI",
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_BACKEND_FAILED,
        severity=Severity.WARN,
        meaning=(
            "A backend (the store, the lock) failed in the middle of a fire, so its outcome "
            "could not be recorded; the scheduler keeps running."
        ),
        action="Alert; check the state database or backend named in the error.",
        user_message="",
        spec=_OURS,
        section="ARCHITECTURE §3 Exactly once",
        alert=AlertLevel.WARN,
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_TARGET_INVALID,
        severity=Severity.HARD_REJECT,
        meaning=(
            "A target's configuration (manifest `targets:`) is invalid, or a task names a "
            "target whose configuration is invalid."
        ),
        action="Reject the target and the tasks routed to it; load everything else.",
        user_message="",
        spec=_OURS,
        section=_MANIFEST,
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_OVERLAP_SKIP,
        severity=Severity.WARN,
        meaning=(
            "A trigger arrived while the task's previous run was still running, and the "
            "task's overlap policy (forbid, or queue_one with one already waiting) skips it."
        ),
        action="Record the run as skipped; the running one goes on.",
        user_message="",
        spec=_OURS,
        section="ARCHITECTURE §2 workers",
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_RUN_FAILED,
        severity=Severity.WARN,
        meaning=(
            "A target's run failed, timed out or was cancelled, after every attempt its "
            "retry policy allows."
        ),
        action="Record each attempt; alert through the task's notifications.",
        user_message="",
        spec=_OURS,
        section="ARCHITECTURE §2 workers",
        alert=AlertLevel.WARN,
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_RUN_REPLACED,
        severity=Severity.INFO,
        meaning=(
            "A newer trigger of the same task and target arrived while this run was going, "
            "and the task's overlap policy is replace: this run was stopped."
        ),
        action="Record the run as cancelled; the newer trigger runs.",
        user_message="",
        spec=_OURS,
        section="ARCHITECTURE §2 workers",
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_RUN_ABANDONED,
        severity=Severity.WARN,
        meaning=(
            "The worker running this attempt stopped before it finished: it was shut "
            "down, killed or crashed. On a shared bus the trigger is delivered again and "
            "the run goes on from the next attempt; an abandoned attempt does not count "
            "against the retry policy."
        ),
        action="Record the attempt as cancelled; the redelivered trigger resumes the run.",
        user_message="",
        spec=_OURS,
        section="ARCHITECTURE §2 workers",
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_NOTIFICATION_SENT,
        severity=Severity.INFO,
        meaning="A task's notification was delivered to a channel (or recorded, for memory).",
        action="Record it; no action.",
        user_message="",
        spec=_OURS,
        section="ARCHITECTURE §2 workers",
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_NOTIFICATION_FAILED,
        severity=Severity.WARN,
        meaning="A task's notification could not be delivered to a channel.",
        action="Alert; record it with the error; never fail the run or the worker for it.",
        user_message="",
        spec=_OURS,
        section="ARCHITECTURE §2 workers",
        alert=AlertLevel.WARN,
    ),
    Reason(
        code=ReasonCode.CRON_RUNNER_PARAMETER_WARNING,
        severity=Severity.WARN,
        meaning="A parameter is above its warning threshold (ARCHITECTURE §4) but allowed.",
        action="Warn; keep the value.",
        user_message="",
        spec=_OURS,
        section="ARCHITECTURE §4",
    ),
    # -- cronwarden: the supervisor (spec 004 TaskSupervisor) -------------------------
    Reason(
        code=ReasonCode.SUPERVISOR_WORKLOAD_STARTED,
        severity=Severity.INFO,
        meaning="The supervisor started a workload's process for the first time.",
        action="Record it; no action.",
        user_message="",
        spec=_OURS,
        section=_SUPERVISOR,
    ),
    Reason(
        code=ReasonCode.SUPERVISOR_WORKLOAD_EXITED,
        severity=Severity.WARN,
        meaning=(
            "A workload's process ended on its own (an exit code or a signal), or could not "
            "be started; its restart policy decides whether it is started again."
        ),
        action="Record the exit code and reason; restart it per its policy, after a backoff.",
        user_message="",
        spec=_OURS,
        section=_SUPERVISOR,
    ),
    Reason(
        code=ReasonCode.SUPERVISOR_WORKLOAD_RESTARTED,
        severity=Severity.WARN,
        meaning=(
            "A workload's process was started again: automatically after an exit or a hang "
            "(counted against its restart budget), or by an operator (not counted)."
        ),
        action="Record it; a workload restarted again and again needs a look at its log.",
        user_message="",
        spec=_OURS,
        section=_SUPERVISOR,
    ),
    Reason(
        code=ReasonCode.SUPERVISOR_WORKLOAD_HUNG,
        severity=Severity.WARN,
        meaning=(
            "A workload's process gave no sign of life (health URL, heartbeat file or "
            "stdout pattern) for longer than its hang timeout."
        ),
        action=(
            "Alert; stop its process group (stop signal, grace, SIGKILL) and restart it "
            "per its policy."
        ),
        user_message="",
        spec=_OURS,
        section=_SUPERVISOR,
        alert=AlertLevel.WARN,
    ),
    Reason(
        code=ReasonCode.SUPERVISOR_RESTART_BUDGET_EXHAUSTED,
        severity=Severity.WARN,
        meaning=(
            "A workload failed again after using every automatic restart its budget allows "
            "in the window; it is left failed and not restarted."
        ),
        action="Page on-call; fix the workload, then restart it by hand.",
        user_message="",
        spec=_OURS,
        section=_SUPERVISOR,
        alert=AlertLevel.PAGE,
    ),
    Reason(
        code=ReasonCode.SUPERVISOR_WORKLOAD_STOPPED,
        severity=Severity.INFO,
        meaning=(
            "A workload was stopped: at shutdown, by an operator, or it exited cleanly "
            "and its policy does not restart it."
        ),
        action="Record it; no action.",
        user_message="",
        spec=_OURS,
        section=_SUPERVISOR,
    ),
    Reason(
        code=ReasonCode.SUPERVISOR_STOP_OVERRAN,
        severity=Severity.WARN,
        meaning=(
            "A workload's process group was still running when its stop grace ran out "
            "and was killed with SIGKILL."
        ),
        action="Record it with the workload and pid; check why it ignores its stop signal.",
        user_message="",
        spec=_OURS,
        section=_SUPERVISOR,
    ),
)

REASONS: Mapping[ReasonCode, Reason] = MappingProxyType({r.code: r for r in _TABLE})
"""Every reason, keyed by code; read-only."""


def reason(code: str | ReasonCode) -> Reason:
    """The :class:`Reason` for ``code``; :class:`KeyError` for a code not in the table."""
    try:
        return REASONS[ReasonCode(code)]
    except (ValueError, KeyError):
        raise KeyError(f"unknown reason code: {code!r}") from None


def user_message(code: str | ReasonCode) -> str:
    """What to tell a user about ``code``: the richest plain-English text of the spec.

    The situation explanation where one holds whenever the code is emitted, else the
    reason table's user-facing message, else ``""`` (the spec has none).
    """
    entry = reason(code)
    return entry.explanation or entry.user_message
