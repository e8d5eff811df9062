"""`cronwarden next` and the CLI contract, run as a real subprocess."""

from __future__ import annotations

import json
from collections.abc import Callable
from subprocess import CompletedProcess

import pytest

from cronwarden import __version__

Run = Callable[..., CompletedProcess[str]]  # the `cli` fixture of conftest.py


def test_it_lists_next_fires_as_json(cli: Run) -> None:
    done = cli(
        "next",
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "-n",
        "3",
        "--after",
        "2026-03-07T00:00:00-05:00",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        "2026-03-07T02:30:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:30:00-04:00",
    ]


def test_it_prints_a_table_with_local_and_utc_times_and_a_description(cli: Run) -> None:
    done = cli(
        "next",
        "0 9 * * MON-FRI",
        "--tz",
        "Europe/London",
        "-n",
        "2",
        "--after",
        "2026-06-05T12:00:00Z",
    )
    assert done.returncode == 0, done.stderr
    assert "2026-06-08T09:00:00+01:00" in done.stdout
    assert "2026-06-08T08:00:00+00:00" in done.stdout
    assert "Monday through Friday" in done.stdout


def test_it_reads_a_naive_after_in_the_given_zone(cli: Run) -> None:
    done = cli(
        "next",
        "0 0 * * *",
        "--tz",
        "Asia/Tokyo",
        "-n",
        "1",
        "--after",
        "2026-01-01T12:00",
        "--json",
    )
    assert json.loads(done.stdout) == ["2026-01-02T00:00:00+09:00"]


def test_it_defaults_to_now(cli: Run) -> None:
    done = cli("next", "* * * * *", "--json", "-n", "2")
    assert done.returncode == 0
    assert len(json.loads(done.stdout)) == 2


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["next", "99 * * * *"], "CRON_RUNNER_INVALID_EXPRESSION: minute: 99 is outside 0-59"),
        (["next", "0 0 30 2 *"], "CRON_RUNNER_INVALID_EXPRESSION: expression: '0 0 30 2 *' never"),
        (["next", "* * * * *", "--tz", "Mars/Base"], "CRON_RUNNER_INVALID_EXPRESSION: timezone:"),
        (["next", "* * * * *", "--after", "soon"], "CRON_RUNNER_INVALID_EXPRESSION: --after:"),
        (["next", "H * * * *"], "CRON_RUNNER_INVALID_EXPRESSION: minute: H needs a hash key"),
    ],
    ids=["out-of-range", "never-fires", "bad-zone", "bad-after", "hash-without-key"],
)
def test_it_fails_invalid_input_with_exit_2_and_one_line(
    args: list[str], line: str, cli: Run
) -> None:
    done = cli(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(line)
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def test_it_accepts_a_hash_key(cli: Run) -> None:
    args = ("next", "H H * * *", "--hash-key", "daily_pnl_reconcile", "--json")
    args += ("--after", "2026-01-01T00:00:00Z")
    done, again = cli(*args), cli(*args)
    assert done.returncode == 0 and json.loads(done.stdout) == json.loads(again.stdout)


def test_it_prints_its_version(cli: Run) -> None:
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"cronwarden {__version__}"


@pytest.mark.parametrize("command", [[], ["next"]], ids=["root", "next"])
def test_it_has_help_on_every_command(command: list[str], cli: Run) -> None:
    done = cli(*command, "--help")
    assert done.returncode == 0 and "Usage" in done.stdout


def test_it_rejects_a_bad_count_as_a_usage_error(cli: Run) -> None:
    done = cli("next", "* * * * *", "-n", "0")
    assert done.returncode == 2 and "Traceback" not in done.stderr
