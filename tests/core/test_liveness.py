"""Judging one poll (spec 002 §9, §18, §23): what counts as a heartbeat and what as a miss."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronwarden.core.liveness import activity_ms, judge, lookup
from cronwarden.manifest.services import ServiceSpec
from cronwarden.ports import Poll
from cronwarden.reasons import ReasonCode

NOW_MS = 1_746_792_000_000


def spec(**keys: Any) -> ServiceSpec:
    return ServiceSpec.model_validate({"slug": "s", "health_url": "http://x/h", **keys})


def test_the_spec_s_wire_example_is_healthy() -> None:
    body = (b'{"slug": "strat.some_strategy", "status": "ok", '
            b'"last_decision_ms": 1746791970000, "uptime_s": 86400}')  # fmt: skip
    service = spec(activity_field="last_decision_ms", max_staleness_s=60)
    assert judge(service, Poll(200, body), NOW_MS).healthy


def test_a_timeout_has_its_reason_code() -> None:
    verdict = judge(spec(), Poll(None, timed_out=True, error="no answer in 10 s"), NOW_MS)
    assert not verdict.healthy
    assert verdict.reason_code is ReasonCode.HEALTH_HEARTBEAT_ENDPOINT_TIMEOUT


@given(st.one_of(st.none(), st.integers(100, 599)), st.binary(max_size=64), st.booleans())
def test_no_answer_is_never_healthy(status: int | None, body: bytes, timed_out: bool) -> None:
    """Spec 002 §18 safe fallback: a service that cannot be reached is never healthy."""
    if status is None:
        assert not judge(spec(), Poll(None, body, timed_out=timed_out, error="x"), NOW_MS).healthy
    elif not 200 <= status < 300:
        assert not judge(spec(), Poll(status, b'{"status": "ok"}'), NOW_MS).healthy


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_746_792_000_000, 1_746_792_000_000),
        (1_746_792_000, 1_746_792_000_000),
        (1_746_792_000.5, 1_746_792_000_500),
        ("2025-05-09T12:00:00+00:00", 1_746_792_000_000),
        ("2025-05-09T12:00:00Z", 1_746_792_000_000),
        ("2025-05-09T12:00:00", None),  # no offset: ambiguous
        ("yesterday", None),
        (True, None),
        (None, None),
    ],
)
def test_activity_times_in_the_forms_services_write(value: Any, expected: int | None) -> None:
    assert activity_ms(value) == expected


def test_a_missing_or_unreadable_activity_time_is_a_miss() -> None:
    service = spec(activity_field="loop.last_tick", max_staleness_s=60)
    assert "missing" in judge(service, Poll(200, b'{"loop": {}}'), NOW_MS).error
    assert "not a time" in judge(service, Poll(200, b'{"loop": {"last_tick": "x"}}'),
                                 NOW_MS).error  # fmt: skip
    fresh = b'{"loop": {"last_tick": 1746791990000}}'
    assert judge(service, Poll(200, fresh), NOW_MS).healthy


def test_lookup_follows_dots_through_objects_and_lists() -> None:
    document = {"checks": [{"name": "db", "ok": True}]}
    assert lookup(document, "checks.0.ok") == (True, True)
    assert lookup(document, "checks.1.ok") == (False, None)
    assert lookup(document, "checks.x") == (False, None)


def test_an_oversized_body_is_a_miss() -> None:
    verdict = judge(spec(), Poll(200, b" " * ((1 << 20) + 1)), NOW_MS)
    assert not verdict.healthy and "larger" in verdict.error
