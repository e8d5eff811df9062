"""Secrets never leave in what cronwarden writes: URL credentials and ``${NAME}`` values
are masked in logs, reports, run records and health."""

from __future__ import annotations

import io
import json
import logging
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronwarden.core.report import EventType, OperationsReport
from cronwarden.reasons import ReasonCode
from cronwarden.redact import MASK, redact, redact_text, redact_url, remember
from cronwarden.services.health import CronHealth
from cronwarden.telemetry.logging import configure
from cronwarden.workers.http import expand


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:hunter22@cache:6379/0", "redis://:***@cache:6379/0"),
    ("postgresql+psycopg://ops:pa55word@db.internal:5432/cron",
     "postgresql+psycopg://ops:***@db.internal:5432/cron"),
    ("https://api.example.com/v1/run?token=abc123&region=eu",
     "https://api.example.com/v1/run?token=***&region=eu"),
    ("https://h/x?api_key=k&X-Amz-Signature=s", "https://h/x?api_key=***&X-Amz-Signature=***"),
    ("https://user@h/path", "https://user@h/path"),
    ("https://h/plain?page=2", "https://h/plain?page=2"),
    ("https://h/cb?accessToken=abc&privateKey=k&monkey=m&page=2",
     "https://h/cb?accessToken=***&privateKey=***&monkey=***&page=2"),
    ("https://hooks.slack.com/services/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",
     "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/***"),
    ("https://discord.com/api/webhooks/123456789012345678/AbCdEf123-_xyzXYZ0987654321ab",
     "https://discord.com/api/webhooks/123456789012345678/***"),
    ("s3://bucket/reports/2026/pnl.csv", "s3://bucket/reports/2026/pnl.csv"),
    ("slack://T0AAA/B0BBB/XXXXXXXX", "slack://***"),
    ("tgram://123456:ABCdef/987", "tgram://***"),
])  # fmt: skip
def test_credentials_are_masked_and_the_address_is_kept(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@given(st.text(min_size=1, max_size=40))
def test_no_password_survives_in_any_url(password: str) -> None:
    url = f"postgresql://ops:{quote(password, safe='')}@db:5432/cron?sslmode=require"
    masked = urlsplit(redact_url(url))
    assert masked.password == MASK and masked.hostname == "db"


def test_urls_inside_free_text_and_remembered_values_are_masked() -> None:
    remember("tok-7781-secret")
    remember("short")  # too short to search for: it would mask ordinary words
    text = ("ConnectError: redis://:pw-9@10.0.0.5:6379 refused; "
            "header Bearer tok-7781-secret; a short word")  # fmt: skip
    assert redact_text(text) == (
        "ConnectError: redis://:***@10.0.0.5:6379 refused; header Bearer ***; a short word"
    )
    nested = {"error": ["tok-7781-secret", ("x", "tok-7781-secret")], "count": 3}
    assert redact(nested) == {"error": [MASK, ("x", MASK)], "count": 3}


def test_reports_carry_no_credentials_on_the_wire() -> None:
    report = OperationsReport(EventType.FAILED, "t", 0, ("hook",), "tr",
                              ReasonCode.CRON_RUNNER_BUS_PUBLISH_FAILED,
                              details={"error": "redis://:pw@cache:6379 refused"})  # fmt: skip
    assert report.to_dict()["error"] == "redis://:***@cache:6379 refused"


def test_health_shows_a_failed_reload_without_its_credentials() -> None:
    health = CronHealth(started_ms=0)
    failed = OperationsReport(EventType.MANIFEST_RELOAD_FAILED, "", 0, (), "tr",
                              ReasonCode.CRON_RUNNER_MANIFEST_UNREADABLE,
                              details={"error": "cannot open sqlite+x://u:pw@h/db"})  # fmt: skip
    health.observe(failed, 1)
    assert health.reload_failed == "cannot open sqlite+x://***"


def test_only_credentials_read_into_a_url_are_remembered() -> None:
    env = {"API_HOST": "production.example", "API_TOKEN": "tk-8812-live", "ID": "abcdef12"}
    url = expand("https://${API_HOST}/v1?token=${API_TOKEN}&id=${ID}", env, secret=False)
    assert url == "https://production.example/v1?token=tk-8812-live&id=abcdef12"
    assert redact_text("on production.example id abcdef12") == "on production.example id abcdef12"
    assert redact_text("got tk-8812-live back") == "got *** back"
    expand("Bearer ${ID}", env)  # a header's value is a secret whatever its name
    assert redact_text("id abcdef12") == "id ***"


@pytest.mark.parametrize("json_lines", [True, False])
def test_every_log_line_is_masked(json_lines: bool) -> None:
    remember("Zq9-environment-secret")
    remember('geheimnis-ä1"quoted')  # escaped in a JSON line: \u00e4, \"
    configure("INFO", json_lines)
    stream = io.StringIO()
    handler = logging.getLogger("cronwarden").handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    try:
        logging.getLogger("cronwarden.worker").warning(
            "publish to %s failed with Zq9-environment-secret (%s)",
            "rediss://:pw1@cache:6380",
            'geheimnis-ä1"quoted',
        )
    finally:
        root = logging.getLogger("cronwarden")
        root.handlers.clear()
        root.propagate = True
        root.setLevel(logging.NOTSET)
    line = stream.getvalue()
    assert "pw1" not in line and "Zq9-environment-secret" not in line
    assert "geheimnis" not in line
    assert "rediss://:***@cache:6380" in line
    if json_lines:
        assert json.loads(line)["level"] == "WARNING"
