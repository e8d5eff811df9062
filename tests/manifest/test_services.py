"""The watchdog's manifest sections: spec 002 §6-7's defaults, warnings, hard limits and
locked parameter; each registry entry validated on its own."""

from __future__ import annotations

from typing import Any

import pytest

from cronwarden.manifest import Level, validate_document
from cronwarden.manifest.services import HeartbeatSettings


def load(**document: Any) -> tuple[Any, list[str]]:
    result = validate_document({"tasks": [], **document})
    return result.manifest, [str(problem) for problem in result.problems]


def test_the_defaults_are_the_spec_s() -> None:
    manifest, problems = load()
    settings = manifest.heartbeat_settings
    assert (settings.heartbeat_interval_s, settings.missed_heartbeats_to_alert) == (30, 3)
    assert settings.auto_restart is True and settings.page_on_failure is True
    assert (settings.restart_budget.max_restarts, settings.restart_budget.window_s) == (3, 600)
    assert settings.max_in_flight == 97
    assert problems == [] and manifest.watched == ()


def test_heartbeat_interval_above_the_hard_maximum_is_rejected() -> None:
    """Spec 002 §26: heartbeat_interval_s=400 → PARAMETER_CHANGE_REQUIRES_APPROVAL."""
    manifest, problems = load(heartbeat={"heartbeat_interval_s": 400})
    assert manifest.heartbeat_settings.heartbeat_interval_s == 30
    (problem,) = problems
    assert problem.startswith("ERROR PARAMETER_CHANGE_REQUIRES_APPROVAL heartbeat:")
    assert "400 is above the hard limit 300" in problem


@pytest.mark.parametrize(
    ("key", "value", "level", "kept"),
    [
        ("heartbeat_interval_s", 300, "WARNING", 300),
        ("heartbeat_interval_s", 301, "ERROR", 30),
        ("heartbeat_interval_s", 31, "WARNING", 31),
        ("heartbeat_interval_s", 30, None, 30),
        ("heartbeat_interval_s", 1, None, 1),
        ("missed_heartbeats_to_alert", 4, "WARNING", 4),
        ("missed_heartbeats_to_alert", 10, "WARNING", 10),
        ("missed_heartbeats_to_alert", 11, "ERROR", 3),
        ("missed_heartbeats_to_alert", 3, None, 3),
    ],
)
def test_each_limit(key: str, value: int, level: str | None, kept: int) -> None:
    manifest, problems = load(heartbeat={key: value})
    assert getattr(manifest.heartbeat_settings, key) == kept
    if level is None:
        assert problems == []
    else:
        (problem,) = problems
        assert problem.startswith(level)
        code = ("PARAMETER_CHANGE_REQUIRES_APPROVAL" if level == "ERROR"
                else "CRON_RUNNER_PARAMETER_WARNING")  # fmt: skip
        assert code in problem


def test_an_interval_below_one_second_is_invalid() -> None:
    manifest, problems = load(heartbeat={"heartbeat_interval_s": 0.5})
    assert manifest.heartbeat_settings.heartbeat_interval_s == 30
    assert "CRON_RUNNER_MANIFEST_ENTRY_INVALID heartbeat" in problems[0]


def test_page_on_failure_is_locked_to_true() -> None:
    manifest, problems = load(heartbeat={"page_on_failure": False})
    assert manifest.heartbeat_settings.page_on_failure is True
    (problem,) = problems
    assert "PARAMETER_CHANGE_REQUIRES_APPROVAL" in problem and "locked" in problem


def test_a_bad_service_is_rejected_and_the_others_are_watched() -> None:
    manifest, problems = load(services=[
        {"slug": "ok", "health_url": "http://127.0.0.1:8080/internal/health/ok"},
        {"slug": "bad_url", "health_url": "127.0.0.1:8080"},
        {"slug": "both", "health_url": "http://x/h", "restart_command": ["a"],
         "restart": {"supervisor": "w"}},
        {"slug": "shell", "health_url": "http://x/h", "restart_command": "systemctl restart x"},
        {"slug": "ok", "health_url": "http://x/h"},
        {"slug": "half", "health_url": "http://x/h", "activity_field": "last_decision_ms"},
        "not a mapping",
        {"bot_slug": "alias", "url": "https://x/h", "colour": "red"},
    ])  # fmt: skip
    assert [service.slug for service in manifest.watched] == ["ok", "alias"]
    text = "\n".join(problems)
    assert "services[1] 'bad_url'" in text and "http:// or https://" in text
    assert "services[2] 'both'" in text and "exclusive" in text
    assert "services[3] 'shell'" in text and "argv" in text
    assert "services[4] 'ok'" in text and "already watched" in text
    assert "services[5] 'half'" in text and "go together" in text
    assert "services[6]" in text and "mapping" in text
    assert "WARNING CRON_RUNNER_UNKNOWN_KEY services[7] 'alias': unknown key 'colour'" in text


def test_the_poll_timeout_defaults_to_a_third_of_the_interval_at_most_ten_seconds() -> None:
    manifest, _ = load(services=[
        {"slug": "a", "health_url": "http://x/h"},
        {"slug": "b", "health_url": "http://x/h", "timeout_s": 2},
    ])  # fmt: skip
    a, b = manifest.watched
    assert a.timeout_for(30) == 10 and a.timeout_for(6) == 2 and a.timeout_for(300) == 10
    assert b.timeout_for(30) == 2


def test_a_services_section_that_is_not_a_list_is_one_error() -> None:
    manifest, problems = load(services={"slug": "a"})
    assert manifest.watched == ()
    assert any("a list of services" in problem for problem in problems)


def test_the_example_configuration_of_the_spec_loads() -> None:
    """Spec 002 §8's default configuration, as written."""
    manifest, problems = load(heartbeat={
        "heartbeat_interval_s": 30, "missed_heartbeats_to_alert": 3,
        "auto_restart": True, "page_on_failure": True,
    })  # fmt: skip
    assert problems == []
    assert manifest.heartbeat_settings == HeartbeatSettings()


def test_errors_in_the_registry_are_errors_of_the_load() -> None:
    result = validate_document({"services": [{"slug": "x"}]})
    assert result.rejected
    assert any(p.level is Level.ERROR and "health_url" in p.message for p in result.problems)


def test_a_poll_timeout_above_ten_seconds_is_rejected_and_never_outlasts_the_interval() -> None:
    """Spec 002 §21: 10 s per call; one slow endpoint must not stretch every sweep."""
    manifest, problems = load(services=[
        {"slug": "slow", "health_url": "http://x/h", "timeout_s": 30},
        {"slug": "ok", "health_url": "http://x/h", "timeout_s": 8},
    ])  # fmt: skip
    assert [s.slug for s in manifest.watched] == ["ok"]
    assert "services[0] 'slow'" in problems[0] and "timeout_s" in problems[0]
    assert manifest.watched[0].timeout_for(5) == 5
