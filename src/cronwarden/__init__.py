"""cronwarden: exactly-once scheduled work, fleet liveness and supervision, explained.

The public surface is small; import from here or from :mod:`cronwarden.cron`.
"""

from __future__ import annotations

from cronwarden._version import __version__ as __version__
from cronwarden.cron import CronSchedule as CronSchedule
from cronwarden.cron import describe as describe
from cronwarden.cron import parse as parse
from cronwarden.errors import CronError as CronError
from cronwarden.errors import CronwardenError as CronwardenError

__all__ = ["CronError", "CronSchedule", "CronwardenError", "__version__", "describe", "parse"]
