"""Whether one poll of a health endpoint says the service is healthy (spec 002 §9, §18,
§23). Pure: the poll and the time are arguments.

A poll that did not answer, answered late, with an unexpected status, with a body
that is not JSON (unless the service says it is plain text), with a ``status`` field
that is not healthy, without the expected value or text, or with a last-activity
time older than allowed is a miss. Nothing here ever turns a failure to reach a
service into healthy (spec 002 §18, safe fallback).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cronwarden.manifest.services import HEALTHY_STATUSES, ServiceSpec
from cronwarden.ports import Poll
from cronwarden.reasons import ReasonCode

#: Epoch numbers above this are milliseconds (it is 5138 AD in seconds).
_MS_ABOVE = 1e11
#: No activity time is later than this (year 9999 in milliseconds).
_LATEST_MS = 253_402_300_800_000
#: Bodies longer than this are not parsed (a health answer is small).
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Verdict:
    """A poll judged: healthy, or the miss's reason code and a one-line explanation."""

    healthy: bool
    reason_code: ReasonCode | None = None
    error: str = ""


HEALTHY = Verdict(True)


def judge(service: ServiceSpec, poll: Poll, now_ms: int) -> Verdict:
    """Whether ``poll`` of ``service`` at ``now_ms`` is a healthy heartbeat."""
    if poll.status_code is None:
        if poll.timed_out:
            return _miss(f"no answer within the timeout: {poll.error}",
                         ReasonCode.HEALTH_HEARTBEAT_ENDPOINT_TIMEOUT)  # fmt: skip
        return _miss(f"unreachable: {poll.error}")
    if not _status_ok(service, poll.status_code):
        return _miss(f"HTTP {poll.status_code}")
    if not service.expect_json:
        return _text_check(service, poll.body)
    return _json_check(service, poll.body, now_ms)


def _status_ok(service: ServiceSpec, code: int) -> bool:
    if service.expected_status:
        return code in service.expected_status
    return 200 <= code < 300


def _text_check(service: ServiceSpec, body: bytes) -> Verdict:
    if service.contains is not None:
        text = body.decode("utf-8", "replace")
        if service.contains not in text:
            return _miss(f"body does not contain {service.contains!r}")
    return HEALTHY


def _json_check(service: ServiceSpec, body: bytes, now_ms: int) -> Verdict:
    if len(body) > MAX_BODY_BYTES:
        return _miss(f"body is {len(body)} bytes, larger than a health answer may be")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return _miss("body is not JSON (spec 002 §23: a JSON body is required)")
    if isinstance(document, dict) and "status" in document:
        status = document["status"]
        if not isinstance(status, str) or status.lower() not in HEALTHY_STATUSES:
            return _miss(f"status is {status!r}")
    if service.json_path is not None:
        found, value = lookup(document, service.json_path)
        if not found:
            return _miss(f"{service.json_path} is missing from the body")
        if service.expected_value is not None and value != service.expected_value:
            return _miss(f"{service.json_path} is {value!r}, not {service.expected_value!r}")
    if service.contains is not None and service.contains not in body.decode("utf-8", "replace"):
        return _miss(f"body does not contain {service.contains!r}")
    if service.activity_field is not None and service.max_staleness_s is not None:
        return _fresh(document, service.activity_field, service.max_staleness_s, now_ms)
    return HEALTHY


def _fresh(document: Any, path: str, max_staleness_s: float, now_ms: int) -> Verdict:
    """The zombie check: the service's own last-activity time is recent enough."""
    found, value = lookup(document, path)
    if not found:
        return _miss(f"{path} (last activity) is missing from the body")
    at_ms = activity_ms(value)
    if at_ms is None:
        return _miss(f"{path} is {value!r}, not a time")
    age_s = (now_ms - at_ms) / 1000
    if age_s > max_staleness_s:
        return _miss(f"stale: last activity {age_s:.1f} s ago (more than {max_staleness_s:g} s); "
                     "it answers but does not work (a zombie)")  # fmt: skip
    return HEALTHY


def lookup(document: Any, path: str) -> tuple[bool, Any]:
    """The value at a dotted ``path`` (``checks.db.status``, ``items.0``) and whether
    it exists."""
    value = document
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def activity_ms(value: Any) -> int | None:
    """A time as epoch milliseconds: epoch seconds or milliseconds (a number), or an ISO
    8601 string with an offset; ``None`` for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > _LATEST_MS:  # NaN, Infinity, 1e400
            return None
        return int(value if value > _MS_ABOVE else value * 1000)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
            return None if moment.tzinfo is None else int(moment.timestamp() * 1000)
        except (ValueError, OverflowError):
            return None
    return None


async def poll_in_lanes(
    poll: Callable[[str, float], Awaitable[Poll]],
    targets: Sequence[tuple[str, float]],
    max_in_flight: int,
) -> list[Poll]:
    """Every ``(url, timeout_s)`` polled with ``poll``, at most ``max_in_flight`` at once
    (spec 002 §21), in order; a poll that raised is a miss saying why."""
    polls: list[Poll] = [Poll(None)] * len(targets)
    pending = iter(enumerate(targets))

    async def lane() -> None:
        for index, (url, timeout_s) in pending:
            try:
                polls[index] = await poll(url, timeout_s)
            except Exception as err:  # a prober must not raise; a poll that did is a miss
                polls[index] = Poll(None, error=f"{type(err).__name__}: {err}")

    await asyncio.gather(*(lane() for _ in range(min(max_in_flight, len(targets)))))
    return polls


def _miss(error: str, code: ReasonCode | None = None) -> Verdict:
    return Verdict(False, code, error)
