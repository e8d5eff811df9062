"""What validation found about a manifest entry or setting, with its reason code."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cronwarden.reasons import ReasonCode

M = TypeVar("M", bound=BaseModel)


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


def invalid(where: str, message: str) -> Problem:
    """An entry or setting rejected: ``CRON_RUNNER_MANIFEST_ENTRY_INVALID``."""
    return Problem(Level.ERROR, ReasonCode.CRON_RUNNER_MANIFEST_ENTRY_INVALID, where, message)


def unknown_keys(keys: Iterable[Any], where: str) -> list[Problem]:
    """One warning per key the entry's model does not read, in order."""
    return [
        Problem(Level.WARNING, ReasonCode.CRON_RUNNER_UNKNOWN_KEY, where,
                f"unknown key {key!r} ignored")
        for key in sorted(map(str, keys))
    ]  # fmt: skip


def describe(error: Any) -> str:
    """A pydantic error as ``field.path: why`` (without pydantic's "Value error, ")."""
    location = ".".join(str(part) for part in error["loc"]) or "entry"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{location}: {message}"


def each_setting(model: type[M], raw: dict[Any, Any], where: str, problems: list[Problem]) -> M:
    """``raw`` validated as ``model``: each invalid setting reported and left at its
    default, each key the model does not read warned about; the others kept."""
    values = {str(key): value for key, value in raw.items()}
    while True:
        try:
            settings = model.model_validate(values)
            break
        except ValidationError as err:
            for error in err.errors():
                problems.append(invalid(where, describe(error)))
                values.pop(str(error["loc"][0]) if error["loc"] else "", None)
    problems.extend(unknown_keys(settings.model_extra or {}, where))
    return settings
