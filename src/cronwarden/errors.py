"""The exception tree: one root, builtin bases where they fit, a ``.code`` on every error.

Every error cronwarden raises derives from :class:`CronwardenError` and carries the
reason code (see :mod:`cronwarden.reasons`) that explains it, so a caller can
report ``f"{err.code}: {err}"`` without knowing the concrete type.
"""

from __future__ import annotations

from cronwarden.reasons import ReasonCode


class CronwardenError(Exception):
    """Root of every cronwarden error."""

    code: str = "CRONWARDEN_ERROR"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


# -- input errors: bad configuration or expressions ------------------------


class CronError(CronwardenError, ValueError):
    """A cron expression, timezone or argument to the cron engine is invalid.

    The message names the field and the bad token: ``minute: 99 is outside 0-59``.
    """

    code: str = ReasonCode.CRON_RUNNER_INVALID_EXPRESSION


class ManifestError(CronwardenError):
    """A manifest file cannot be read or parsed at all; the last good one stays in force."""

    code: str = ReasonCode.CRON_RUNNER_MANIFEST_UNREADABLE


# -- backend errors: translated at the adapter boundary -------------------------------


class BackendUnavailable(CronwardenError, ConnectionError):
    """A backend (bus, lock, store) cannot be reached or refused the operation."""

    code: str = "BACKEND_UNAVAILABLE"


class UnknownTask(CronwardenError, LookupError):
    """A command named a task the manifest does not have."""

    code: str = ReasonCode.CRON_RUNNER_UNKNOWN_TASK
