"""Loading manifests: the specs' own files as written, and every problem on its own."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cronwarden.errors import ManifestError
from cronwarden.manifest import Level, TaskClass, load_manifest, validate_document
from cronwarden.reasons import ReasonCode
from cronwarden.services.scheduler import CronRunner
from cronwarden.testing import FakeClock, memory_dispatcher

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _codes(document: Any) -> list[tuple[Level, ReasonCode]]:
    return [(p.level, p.code) for p in validate_document(document).problems]


# -- the specs' files, as written ------------------------------------------------


def test_it_loads_the_canonical_example_fleet() -> None:
    result = load_manifest(EXAMPLES / "cronwarden.yaml")
    assert result.problems == ()
    manifest = result.manifest
    assert [t.task_id for t in manifest.tasks] == [
        "daily_pnl_reconcile",
        "hourly_health_sweep",
        "quote_cycle",
        "rebalance",
        "heartbeat_ping",
    ]
    quote = manifest.task("quote_cycle")
    assert quote.disable_during_quiet_hours and quote.task_class is TaskClass.TRADING
    assert manifest.zone_of(quote) == "America/New_York"
    assert manifest.quiet_hours[0].name == "us-open"


def test_it_loads_spec_000s_bare_list_of_entries() -> None:
    result = load_manifest(EXAMPLES / "spec000-manifest.json")
    assert result.problems == ()
    task = result.manifest.task("daily_pnl_reconcile")
    assert task.cron_expression == "0 0 * * *"
    assert task.targets == ("gov.pnl_reporter",)
    assert task.task_class is TaskClass.GOVERNANCE


def test_it_loads_spec_001s_scheduler_yaml() -> None:
    result = load_manifest(EXAMPLES / "scheduler.yaml")
    assert result.problems == ()
    manifest = result.manifest
    assert [t.task_id for t in manifest.tasks] == ["scan.hot", "scan.warm", "regime.refresh"]
    hot = manifest.task("scan.hot")
    assert hot.cron_expression == "*/15 * * * *"
    assert hot.targets == ("scan.hot",)
    assert hot.config["venues"] == ["kraken", "okx", "coinbase"]
    assert manifest.artifacts_dir == "artifacts/signals"
    assert manifest.timezone == "UTC"


def test_it_loads_spec_003s_config_json_in_its_timezone() -> None:
    result = load_manifest(EXAMPLES / "config.json")
    (warning,) = result.problems  # the spec names a slack channel it never defines
    assert (warning.level, warning.code, warning.where) == (
        "warning", ReasonCode.CRON_RUNNER_UNKNOWN_KEY, "daily_standup")  # fmt: skip
    assert "channel 'slack' is not defined" in warning.message
    manifest = result.manifest
    standup = manifest.task("daily_standup")
    assert standup.cron_expression == "0 9 * * MON-FRI"
    assert (standup.skill, standup.persona, standup.notify) == (
        "coffee",
        "developer",
        ("memory", "slack"),
    )
    assert standup.targets == ("claude_cli",)
    assert manifest.zone_of(standup) == "America/New_York"


def test_spec_003s_master_switch_turns_every_job_off() -> None:
    document = {"schedules": {"enabled": False, "jobs": [{"name": "a", "cron": "0 9 * * *"}]}}
    result = validate_document(document)
    assert [task.enabled for task in result.manifest.tasks] == [False]


def test_it_reads_toml(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('timezone = "Europe/Berlin"\n[[tasks]]\ntask_id = "t"\ncron = "0 6 * * *"\n')
    result = load_manifest(path)
    assert result.manifest.task("t").cron_expression == "0 6 * * *"
    assert result.manifest.timezone == "Europe/Berlin"


# -- one bad entry never takes the others down -----------------------------------


def test_an_invalid_expression_is_rejected_and_the_rest_schedule() -> None:
    # spec 000 failure injection INVALID_MANIFEST_ENTRY
    result = validate_document(
        [
            {"task_id": "good", "cron_expression": "0 9 * * *", "enabled_strategies": ["a"]},
            {"task_id": "bad", "cron_expression": "99 * * * *", "enabled_strategies": ["a"]},
        ]
    )
    assert [t.task_id for t in result.manifest.tasks] == ["good"]
    (problem,) = result.problems
    assert problem.code is ReasonCode.CRON_RUNNER_INVALID_EXPRESSION
    assert problem.where == "tasks[1] 'bad'"
    assert "minute: 99 is outside 0-59" in problem.message
    assert result.rejected


def test_a_task_without_an_expression_runs_hourly_with_a_warning() -> None:
    result = validate_document([{"task_id": "t", "targets": ["a"]}])
    assert result.manifest.task("t").cron_expression == "0 * * * *"
    assert _codes([{"task_id": "t", "targets": ["a"]}]) == [
        (Level.WARNING, ReasonCode.CRON_RUNNER_DEFAULT_EXPRESSION)
    ]
    assert not result.rejected


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (
            [{"task_id": "t", "cron": "0 * * * *", "targets": ["a"]}] * 2,
            [(Level.ERROR, ReasonCode.CRON_RUNNER_DUPLICATE_TASK_ID)],
        ),
        (
            [{"task_id": "t", "cron": "0 * * * *", "targets": ["a"], "colour": "blue"}],
            [(Level.WARNING, ReasonCode.CRON_RUNNER_UNKNOWN_KEY)],
        ),
        (
            [{"task_id": "t", "cron": "0 * * * *"}],
            [(Level.WARNING, ReasonCode.CRON_RUNNER_NO_TARGETS)],
        ),
        (
            [{"task_id": "t", "cron": "0 * * * *", "targets": ["a"], "enabled": "maybe"}],
            [(Level.ERROR, ReasonCode.CRON_RUNNER_MANIFEST_ENTRY_INVALID)],
        ),
        (
            [{"task_id": "t", "cron": "0 * * * *", "targets": ["a"], "timezone": "Mars/Base"}],
            [(Level.ERROR, ReasonCode.CRON_RUNNER_MANIFEST_ENTRY_INVALID)],
        ),
        (["a string"], [(Level.ERROR, ReasonCode.CRON_RUNNER_MANIFEST_ENTRY_INVALID)]),
        (
            [{"cron": "0 * * * *", "targets": ["a"]}],
            [(Level.ERROR, ReasonCode.CRON_RUNNER_MANIFEST_ENTRY_INVALID)],
        ),
    ],
    ids=["duplicate-id", "unknown-key", "no-targets", "bad-type", "bad-zone", "not-a-map", "no-id"],
)
def test_it_reports_each_entry_problem_with_its_code(
    entries: list[Any], expected: list[tuple[Level, ReasonCode]]
) -> None:
    assert _codes(entries) == expected


def test_it_reads_the_expression_in_the_tasks_own_zone() -> None:
    # 02:30 exists in UTC but the expression itself must parse in the task's zone
    result = validate_document(
        {"timezone": "UTC", "tasks": [{"task_id": "t", "cron": "H 2 * * *", "targets": ["a"]}]}
    )
    assert result.manifest.tasks[0].task_id == "t"


@pytest.mark.parametrize(
    ("value", "expected", "kept"),
    [
        (20, [], 20),
        (21, [(Level.WARNING, ReasonCode.CRON_RUNNER_PARAMETER_WARNING)], 21),
        (60, [(Level.WARNING, ReasonCode.CRON_RUNNER_PARAMETER_WARNING)], 60),
        (61, [(Level.ERROR, ReasonCode.PARAMETER_CHANGE_REQUIRES_APPROVAL)], 20),
        (0, [(Level.ERROR, ReasonCode.CRON_RUNNER_MANIFEST_ENTRY_INVALID)], 20),
    ],
    ids=["default", "warns-above-20", "warns-at-60", "rejects-above-60", "rejects-zero"],
)
def test_it_applies_the_concurrency_limits(
    value: int, expected: list[tuple[Level, ReasonCode]], kept: int
) -> None:
    result = validate_document({"max_concurrent_tasks": value, "tasks": []})
    assert [(p.level, p.code) for p in result.problems] == expected
    assert result.manifest.max_concurrent_tasks == kept


def test_a_bad_setting_is_rejected_alone() -> None:
    result = validate_document(
        {
            "timezone": "Nowhere/Land",
            "quiet_hours": [{"start": "25:00", "end": "01:00"}],
            "tasks": [{"task_id": "t", "cron": "0 * * * *", "targets": ["a"]}],
        }
    )
    assert [p.code for p in result.problems] == [ReasonCode.CRON_RUNNER_MANIFEST_ENTRY_INVALID] * 2
    assert result.manifest.timezone == "UTC"
    assert [t.task_id for t in result.manifest.tasks] == ["t"]


def test_quiet_hours_days_use_cron_weekday_syntax() -> None:
    good = validate_document(
        {"quiet_hours": [{"start": "22:00", "end": "02:00", "days": ["MON-FRI", "sun"]}]}
    )
    assert good.problems == ()
    bad = validate_document({"quiet_hours": [{"start": "22:00", "end": "02:00", "days": ["x"]}]})
    assert "day-of-week" in bad.problems[0].message


# -- files that cannot be read keep nothing and say why ---------------------------


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.yaml", "tasks: [", "not valid YAML"),
        ("m.json", "{", "not valid JSON"),
        ("m.toml", "tasks = [", "not valid TOML"),
        ("m.ini", "x", "unknown extension"),
        ("m.yaml", "42", "a manifest is a mapping or a list"),
    ],
    ids=["yaml", "json", "toml", "extension", "scalar"],
)
def test_an_unreadable_file_raises_with_its_code(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ManifestError, match=message) as caught:
        load_manifest(path)
    assert caught.value.code == "CRON_RUNNER_MANIFEST_UNREADABLE"


def test_a_missing_file_raises_with_its_code(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "absent.yaml")


# -- garbage never crashes the loader ---------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=8,
)
_ENTRY = (
    st.fixed_dictionaries(
        {},
        optional={
            "task_id": _JSON | st.text(max_size=12),
            "cron_expression": _JSON | st.sampled_from(["* * * * *", "99 * * * *", "0 0 30 2 *"]),
            "targets": _JSON,
            "enabled": _JSON,
            "timezone": _JSON | st.sampled_from(["UTC", "Mars/Base"]),
            "task_class": _JSON,
            "misfire_grace_s": _JSON | st.integers(-(10**30), 10**30),
        },
    )
    | _JSON
)


@settings(max_examples=60, deadline=None)
@given(entries=st.lists(_ENTRY, max_size=200), top=st.dictionaries(st.text(max_size=12), _JSON))
def test_garbage_entries_never_crash_the_loader(entries: list[Any], top: dict[str, Any]) -> None:
    result = validate_document({**top, "tasks": entries})
    ids = [task.task_id for task in result.manifest.tasks]
    assert len(ids) == len(set(ids))
    assert all(problem.message for problem in result.problems)


def _garbage(rng: random.Random) -> Any:
    """A value of a random kind: strings, wrong types, huge numbers, nesting."""
    pick = rng.randrange(8)
    if pick == 0:
        return "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(12)))
    if pick == 1:
        return rng.choice([10**40, -(10**40), float("nan"), float("inf"), 0, -1, 1.5])
    if pick == 2:
        return rng.choice([None, True, False, [], {}, [1, [2, [3]]]])
    if pick == 3:
        return rng.choice(["* * * * *", "99 * * * *", "@yearly", "H * * * *", "0 0 30 2 *"])
    if pick == 4:
        return {str(rng.random()): rng.random() for _ in range(3)}
    return rng.choice(["UTC", "Mars/Base", "trading", "governance", "x", ""])


def test_ten_thousand_random_entries_load_without_crashing() -> None:
    rng = random.Random(20261126)
    keys = [
        "task_id",
        "name",
        "cron_expression",
        "cron",
        "targets",
        "enabled",
        "timezone",
        "task_class",
        "misfire_grace_s",
        "catch_up",
        "config",
        "inputs",
        "notify",
        "zzz",
    ]
    entries = [
        {key: _garbage(rng) for key in rng.sample(keys, rng.randrange(len(keys)))}
        if rng.random() < 0.9
        else _garbage(rng)
        for _ in range(10_000)
    ]
    result = validate_document({"tasks": entries})
    ids = [task.task_id for task in result.manifest.tasks]
    assert len(ids) == len(set(ids))
    assert len(result.problems) >= 10_000 - len(ids)  # every rejected entry says why
    # and the scheduler runs what was accepted: two simulated hours of ticks
    clock = FakeClock()
    runner = CronRunner(result.manifest, memory_dispatcher(clock))
    runner.start_at(int(clock.now().timestamp() * 1000))

    async def two_hours() -> list[Any]:
        reports = []
        for _ in range(120):
            clock.advance(60)
            reports.extend(await runner.tick())
        return reports

    reports = asyncio.run(two_hours())
    assert reports and {r.task_id for r in reports} <= set(ids)
    assert all(r.reason_code is not ReasonCode.CRON_RUNNER_BACKEND_FAILED for r in reports)
