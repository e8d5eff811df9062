"""The ``supervisor:`` manifest section: each workload validated on its own, the rest
loaded, in a start order that puts dependencies first."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from cronwarden.manifest.problems import Level, Problem
from cronwarden.manifest.workloads import RestartPolicy, WorkloadSpec, validate_supervisor
from cronwarden.reasons import ReasonCode

INVALID = ReasonCode.CRON_RUNNER_MANIFEST_ENTRY_INVALID


def load(*entries: Any) -> tuple[list[str], list[Problem]]:
    problems: list[Problem] = []
    workloads = validate_supervisor({"workloads": list(entries)}, problems)
    return [w.name for w in workloads], problems


def entry(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "command": ["run", name], **fields}


def errors(problems: list[Problem]) -> list[tuple[str, str]]:
    return [(p.where, p.message) for p in problems if p.level is Level.ERROR]


def test_a_minimal_workload_gets_the_documented_defaults() -> None:
    problems: list[Problem] = []
    (spec,) = validate_supervisor({"workloads": [entry("svc")]}, problems)
    assert problems == []
    assert spec.command == ("run", "svc")
    assert spec.argv == ("run", "svc")
    assert spec.restart is RestartPolicy.ON_FAILURE
    assert (spec.backoff_initial_s, spec.backoff_max_s, spec.backoff_jitter) == (1.0, 60.0, 0.1)
    assert (spec.restart_budget.max_restarts, spec.restart_budget.window_s) == (5, 300.0)
    assert spec.hang_timeout_s is None
    assert spec.liveness.kind is None
    assert spec.stop_signum is signal.SIGTERM
    assert spec.stop_grace_s == 10.0
    assert spec.workload_kind == "service"
    assert spec.depends_on == () and spec.labels == {} and spec.env == {}


def test_a_full_workload_round_trips() -> None:
    raw = entry("ingest", cwd="/srv", env={"MODE": "live"}, restart="always",
                backoff_initial_s=0.5, backoff_max_s=30, backoff_jitter=0.2,
                restart_budget={"max_restarts": 3, "window_s": 60}, hang_timeout_s=20,
                liveness={"heartbeat_file": "/run/ingest.beat"}, stop_signal="INT",
                stop_grace_s=5, labels={"team": "data"}, workload_kind="ingest")  # fmt: skip
    problems: list[Problem] = []
    (spec,) = validate_supervisor({"workloads": [raw]}, problems)
    assert problems == []
    again = WorkloadSpec.model_validate(spec.model_dump())
    assert again == spec
    assert spec.liveness.kind == "heartbeat_file"
    assert spec.stop_signal == "SIGINT"


def test_a_bare_list_is_accepted_and_a_command_string_runs_through_the_shell() -> None:
    problems: list[Problem] = []
    (spec,) = validate_supervisor([{"name": "sh", "command": "echo hi && sleep 1"}], problems)
    assert problems == []
    assert spec.argv == ("/bin/sh", "-c", "echo hi && sleep 1")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("TERM", signal.SIGTERM), ("SIGINT", signal.SIGINT), ("hup", signal.SIGHUP),
     ("SIGQUIT", signal.SIGQUIT), ("KILL", signal.SIGKILL)],
    ids=["TERM", "SIGINT", "lower-case", "QUIT", "KILL"],
)  # fmt: skip
def test_stop_signals_are_named_with_or_without_sig(value: str, expected: signal.Signals) -> None:
    names, problems = load(entry("svc", stop_signal=value))
    assert names == ["svc"] and problems == []
    (spec,) = validate_supervisor([entry("svc", stop_signal=value)], [])
    assert spec.stop_signum is expected


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"stop_signal": "USR1"}, "stop_signal: 'USR1' is not one of"),
        ({"hang_timeout_s": 5}, "hang_timeout_s needs a liveness signal"),
        ({"backoff_initial_s": 10, "backoff_max_s": 5}, "backoff_max_s is below"),
        ({"backoff_initial_s": 0}, "backoff_initial_s:"),
        ({"backoff_jitter": 1.5}, "backoff_jitter:"),
        ({"restart": "sometimes"}, "restart:"),
        ({"command": []}, "command: a command is needed"),
        ({"command": "   "}, "command: a command is needed"),
        ({"liveness": {"stdout_pattern": "("}}, "not a regular expression"),
        ({"liveness": {"heartbeat_file": "/b", "stdout_pattern": "x"}}, "at most one liveness"),
        ({"liveness": {"health_url": "ftp://x"}}, "liveness.health_url:"),
        ({"name": "has space"}, "name:"),
        ({"depends_on": ["svc"]}, "cannot depend on itself"),
    ],
    ids=["bad-signal", "hang-without-liveness", "backoff-max-below-initial", "zero-backoff",
         "jitter-above-1", "unknown-policy", "empty-argv", "blank-string", "bad-regex",
         "two-liveness-signals", "non-http-url", "bad-name", "self-dependency"],
)  # fmt: skip
def test_a_bad_entry_is_rejected_and_the_others_load(
    fields: dict[str, Any], complaint: str
) -> None:
    names, problems = load(entry("before"), {**entry("svc"), **fields}, entry("after"))
    assert names == ["before", "after"]
    ((where, message),) = errors(problems)
    assert where.startswith("supervisor.workloads[1]")
    assert complaint in message
    assert all(p.code is INVALID for p in problems)


def test_a_duplicate_name_is_rejected_and_the_first_kept() -> None:
    names, problems = load(entry("svc", workload_kind="first"), entry("svc"), entry("other"))
    assert names == ["svc", "other"]
    assert errors(problems) == [("supervisor.workloads[1] 'svc'", "name: 'svc' is already used")]


def test_a_dependency_on_an_unknown_or_rejected_workload_rejects_the_dependent() -> None:
    names, problems = load(
        entry("api", depends_on=["ghost"]),
        entry("db", stop_signal="USR2"),
        entry("worker", depends_on=["db"]),
        entry("cache", depends_on=["api"]),
        entry("ok"),
    )
    assert names == ["ok"]
    found = dict(errors(problems))
    assert found["supervisor.workloads[0] 'api'"] == "depends_on: 'ghost' is not a known workload"
    assert found["supervisor.workloads[2] 'worker'"] == "depends_on: 'db' is rejected"
    assert found["supervisor.workloads[3] 'cache'"] == "depends_on: 'api' is rejected"


def test_a_cycle_rejects_every_workload_in_it_naming_the_cycle() -> None:
    names, problems = load(
        entry("a", depends_on=["b"]),
        entry("b", depends_on=["c"]),
        entry("c", depends_on=["a"]),
        entry("d", depends_on=["a"]),
        entry("e"),
    )
    assert names == ["e"]
    found = errors(problems)
    cycle = [(where, message) for where, message in found if "cycle" in message]
    assert [where for where, _ in cycle] == [
        "supervisor.workloads[0] 'a'", "supervisor.workloads[1] 'b'",
        "supervisor.workloads[2] 'c'"]  # fmt: skip
    assert cycle[0][1] == "depends_on: a cycle a -> b -> c -> a"
    assert ("supervisor.workloads[3] 'd'", "depends_on: 'a' is rejected") in found


def test_workloads_come_back_dependencies_first_and_otherwise_in_manifest_order() -> None:
    names, problems = load(
        entry("web", depends_on=["api", "cache"]),
        entry("metrics"),
        entry("api", depends_on=["db"]),
        entry("cache"),
        entry("db"),
    )
    assert problems == []
    assert names == ["metrics", "cache", "db", "api", "web"]


def test_unknown_keys_are_warnings_and_the_workload_loads() -> None:
    problems: list[Problem] = []
    raw = {"workloads": [entry("svc", colour="blue", liveness={"stdout_pattern": "ok",
                                                               "every": 3})],
           "extra": True}  # fmt: skip
    (spec,) = validate_supervisor(raw, problems)
    assert spec.name == "svc"
    assert [(p.level, p.code, p.where, p.message) for p in problems] == [
        (Level.WARNING, ReasonCode.CRON_RUNNER_UNKNOWN_KEY, "supervisor",
         "unknown key 'extra' ignored"),
        (Level.WARNING, ReasonCode.CRON_RUNNER_UNKNOWN_KEY, "supervisor.workloads[0] 'svc'",
         "unknown key 'colour' ignored"),
        (Level.WARNING, ReasonCode.CRON_RUNNER_UNKNOWN_KEY, "supervisor.workloads[0] 'svc'",
         "unknown key 'liveness.every' ignored"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "where"),
    [("nope", "supervisor"), ({"workloads": {"a": 1}}, "supervisor.workloads"),
     ([3], "supervisor.workloads[0]")],
    ids=["section-not-a-mapping", "workloads-not-a-list", "entry-not-a-mapping"],
)  # fmt: skip
def test_a_malformed_section_is_an_error_not_a_crash(raw: Any, where: str) -> None:
    problems: list[Problem] = []
    assert validate_supervisor(raw, problems) == ()
    ((found, _),) = errors(problems)
    assert found == where


def test_an_absent_section_has_no_workloads_and_no_problems() -> None:
    problems: list[Problem] = []
    assert validate_supervisor(None, problems) == ()
    assert validate_supervisor({}, problems) == ()
    assert problems == []
