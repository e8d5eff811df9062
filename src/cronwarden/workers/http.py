"""Make one HTTP-target attempt: the trigger's fields as JSON, the response kept in the
attempt's folder, and a verdict that says whether another attempt could help.

The URL and header values may name environment variables (``Bearer ${API_TOKEN}``,
``?key=${API_KEY}``); they are read when the call is made. A header's values, and a
URL's whose names say they are credentials, are remembered as secrets
(:func:`cronwarden.redact.remember`), so they appear nowhere else: not in the record,
not in the logs, not in an error message.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from cronwarden.manifest.targets import HttpTarget, retriable_status
from cronwarden.redact import looks_secret, remember
from cronwarden.workers.command import TAIL_BYTES, CommandResult

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand(value: str, env: Mapping[str, str], *, secret: bool = True) -> str:
    """``value`` with each ``${NAME}`` replaced by ``env[NAME]`` (empty when unset).

    Each value read is remembered as a secret when ``secret`` (a header's), or when its
    name says it is one (a URL's ``${API_TOKEN}``, not its ``${API_HOST}``).
    """

    def read(match: re.Match[str]) -> str:
        name = match.group(1)
        found = env.get(name, "")
        if secret or looks_secret(name):
            remember(found)
        return found

    return _VARIABLE.sub(read, value)


async def send(
    target: HttpTarget, trigger: Mapping[str, Any], *, env: Mapping[str, str], out_dir: Path
) -> CommandResult:
    """Call ``target`` for ``trigger``; ``exit_code`` is the HTTP status."""
    started = time.monotonic()
    headers = {name: expand(value, env) for name, value in target.headers.items()}
    body = {**target.body, **trigger}
    try:
        async with httpx.AsyncClient(timeout=target.timeout_s) as client:
            payload = None if target.method == "GET" else body
            response = await client.request(target.method, expand(target.url, env, secret=False),
                                            headers=headers, json=payload)  # fmt: skip
    except httpx.TimeoutException:
        return _result("timed_out", None, started, f"no answer within {target.timeout_s:g} s")
    except httpx.HTTPError as err:  # refused, reset, DNS: the other side may come back
        return _result("failed", None, started, f"{type(err).__name__}: {err}")
    await asyncio.to_thread(_keep, out_dir, response.content)
    tail = response.content[-TAIL_BYTES:].decode("utf-8", "replace")
    status = response.status_code
    if (status in target.expect) if target.expect else 200 <= status < 300:
        return _result("succeeded", status, started, "", tail)
    return _result("failed", status, started, f"HTTP {status}", tail,
                   retriable=retriable_status(status))  # fmt: skip


def _keep(out_dir: Path, content: bytes) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "response.body").write_bytes(content)


def _result(status: str, code: int | None, started: float, error: str, tail: str = "",
            *, retriable: bool = True) -> CommandResult:  # fmt: skip
    duration_ms = int((time.monotonic() - started) * 1000)
    return CommandResult(status, code, duration_ms, tail, "", error, retriable)
