"""What validation found about a manifest entry or setting, with its reason code."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cronwarden.reasons import ReasonCode


class Level(StrEnum):
    ERROR = "error"  # the entry or setting was rejected
    WARNING = "warning"  # loaded as written, or with a stated default


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about the manifest, with the reason code that explains it."""

    level: Level
    code: ReasonCode
    where: str  # "tasks[2] 'daily_pnl'" or "settings"
    message: str

    def __str__(self) -> str:
        return f"{self.level.upper()} {self.code} {self.where}: {self.message}"
