"""How a target runs (manifest ``targets:``, ARCHITECTURE §3): only published on the
bus (the default for a target with no entry), or a command the worker runs.

```yaml
targets:
  scan.hot: {type: command, command: [python, -m, scans.hot], timeout_s: 600,
             retry: {max_attempts: 3, delay_seconds: 60, backoff_multiplier: 2.0}}
  cache.warm: {type: command, command: [./bin/start-cache-daemon], kill_orphans: false}
```
"""

from __future__ import annotations

import random
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Target(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Retry(_Target):
    """Spec 003's retry policy: attempt n waits ``delay_seconds × multiplier^(n-2)``
    (capped at ``max_delay_seconds``), spread by ``± jitter`` of itself."""

    max_attempts: int = Field(default=1, ge=1, le=100)
    delay_seconds: float = Field(default=0.0, ge=0, le=86_400)
    backoff_multiplier: float = Field(default=2.0, ge=1, le=100)
    max_delay_seconds: float = Field(default=3_600.0, ge=0, le=86_400)
    jitter: float = Field(default=0.0, ge=0, le=1)

    def delay_before(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before ``attempt`` (2, 3, …)."""
        base = self.delay_seconds * self.backoff_multiplier ** max(attempt - 2, 0)
        delay = min(base, self.max_delay_seconds)
        if self.jitter and delay:
            delay *= 1 + (rng or random).uniform(-self.jitter, self.jitter)
        return delay


class BusTarget(_Target):
    """The trigger is only published on ``cron.trigger``; an outside consumer acts."""

    type: Literal["bus"] = "bus"


class CommandTarget(_Target):
    """A command run by the worker: an argv list, never a shell unless ``shell: true``."""

    type: Literal["command"]
    command: tuple[str, ...] = Field(min_length=1)
    shell: bool = False
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=3_600.0, gt=0, le=7 * 86_400)
    kill_grace_s: float = Field(default=5.0, ge=0, le=600)
    #: Whether what the command left in its process group is killed once it exits
    #: ("no orphans"); ``false`` for a job that deliberately starts something that
    #: outlives it. A timeout or a stop ends the whole group either way.
    kill_orphans: bool = True
    retry: Retry = Field(default_factory=Retry)
    #: An execution mode (spec 003): ``{skill}``, ``{persona}``, ``{inputs_json}`` and
    #: ``{session_id}`` in ``command`` are filled from the task when it runs.
    template: bool = False

    def argv(self, skill: str, persona: str, inputs_json: str, session_id: str) -> tuple[str, ...]:
        """The command to run; a template's placeholders filled (each as one argument)."""
        if not self.template:
            return self.command
        values = {"{skill}": skill, "{persona}": persona, "{inputs_json}": inputs_json,
                  "{session_id}": session_id}  # fmt: skip
        filled = []
        for part in self.command:
            for placeholder, value in values.items():
                part = part.replace(placeholder, value)
            filled.append(part)
        return tuple(filled)


class HttpTarget(_Target):
    """An HTTP call made by the worker, with the trigger's fields in a JSON body.

    ``${NAME}`` in the URL or a header value is read from the worker's environment when
    the call is made (a secret never sits in the manifest, and is never logged). A status in
    ``expect`` (default: any 2xx) is success; a 4xx is final; a 5xx, a refused
    connection or a timeout is retried by ``retry``.
    """

    type: Literal["http"]
    url: str = Field(pattern=r"^https?://")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] = Field(default_factory=dict)
    expect: tuple[int, ...] = ()
    timeout_s: float = Field(default=30.0, gt=0, le=3_600)
    retry: Retry = Field(default_factory=Retry)


def retriable_status(status: int | None) -> bool:
    """Whether another attempt of an HTTP target could help after an answer with
    ``status`` (``None``: no answer at all: refused, reset, timed out): a 5xx, a 408 or
    429, or no answer; never another 4xx."""
    return status is None or status >= 500 or status in (408, 429)


class PythonTarget(_Target):
    """A Python callable, ``module:function``, sync or async, called with a
    :class:`~cronwarden.workers.python.RunContext`.

    ``isolation: process`` (the default) calls it in a fresh interpreter, run like a
    command target (timeout, process group, output files), so that a crash or a hang
    cannot take the daemon down; ``inline`` calls it in the worker's process (a sync
    function in a thread): fast, but a hang is only abandoned, not stopped.
    """

    type: Literal["python"]
    function: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
    isolation: Literal["process", "inline"] = "process"
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=3_600.0, gt=0, le=7 * 86_400)
    kill_grace_s: float = Field(default=5.0, ge=0, le=600)
    #: As a command target's (``isolation: process`` only: an inline function's
    #: processes are the worker's own children).
    kill_orphans: bool = True
    retry: Retry = Field(default_factory=Retry)

    @model_validator(mode="after")
    def _orphans_need_a_process(self) -> PythonTarget:
        if not self.kill_orphans and self.isolation == "inline":
            raise ValueError("kill_orphans: false needs isolation: process (an inline "
                             "function runs in the worker's own process)")  # fmt: skip
        return self


TargetSpec = Annotated[BusTarget | CommandTarget | HttpTarget | PythonTarget,
                       Field(discriminator="type")]  # fmt: skip
Target = BusTarget | CommandTarget | HttpTarget | PythonTarget
#: A target the worker runs itself.
RunnableTarget = CommandTarget | HttpTarget | PythonTarget
