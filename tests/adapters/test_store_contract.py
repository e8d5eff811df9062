"""The Store contract, run against every adapter: in memory, SQLite and PostgreSQL (one
SQLAlchemy Core code path; PostgreSQL a real server, a database per test)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from cronwarden.adapters.memory import MemoryStore
from cronwarden.adapters.sql.store import SqlStore, sqlite_url
from cronwarden.ports import DispatchRow, Outcome, RunRecord, Store


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "postgresql":
        sql = SqlStore(request.getfixturevalue("postgres_database"))
    else:
        sql = SqlStore(sqlite_url(tmp_path / "state"))
    yield sql
    sql.close()


def _row(task_id: str = "t", at: int = 1_000, owner: str = "a") -> DispatchRow:
    return DispatchRow(task_id, at, f"tr_{task_id}_{at}", owner, ("x", "y"))


def test_only_one_commit_per_task_and_instant(store: Store) -> None:
    async def scenario() -> None:
        assert await store.commit_dispatches([_row(owner="a")], 10) == [True]
        rows = [_row(owner="b"), _row(at=2_000), _row(task_id="u"), _row(at=2_000, owner="c")]
        assert await store.commit_dispatches(rows, 11) == [False, True, True, False]
        assert await store.commit_dispatches([], 12) == []

    asyncio.run(scenario())


def test_concurrent_commits_of_one_fire_let_exactly_one_through(store: Store) -> None:
    async def scenario() -> list[list[bool]]:
        return await asyncio.gather(*(store.commit_dispatches([_row(owner=f"o{n}")], n)
                                      for n in range(20)))  # fmt: skip

    assert sorted(asyncio.run(scenario())) == [[False]] * 19 + [[True]]


def test_a_thousand_rows_commit_in_one_call(store: Store) -> None:
    first = asyncio.run(store.commit_dispatches([_row(f"t{n}") for n in range(0, 1_000, 2)], 10))
    rows = [_row(f"t{n}", owner="b") for n in range(1_000)]
    again = asyncio.run(store.commit_dispatches(rows, 20))
    assert first == [True] * 500
    assert again == [n % 2 == 1 for n in range(1_000)]


def test_open_rows_form_the_outbox_until_settled(store: Store) -> None:
    async def scenario() -> None:
        await store.commit_dispatches([_row(at=1_000)], 10)
        await store.commit_dispatches([_row(at=2_000), _row(at=3_000)], 20)
        report = {"report_id": "r", "event_type": "CRON_TASK_DISPATCHED", "task_id": "t"}
        await store.settle("a", [("t", 1_000, Outcome.PUBLISHED), ("t", 3_000, Outcome.FAILED)],
                           [report], 30)  # fmt: skip
        waiting = await store.open_rows(untouched_since_ms=100)
        assert [(r.task_id, r.scheduled_at_ms, r.targets, r.owner, r.touched_at_ms)
                for r in waiting] == [("t", 2_000, ("x", "y"), "a", 20)]  # fmt: skip
        assert await store.open_rows(untouched_since_ms=20) == []
        await store.touch("a", [("t", 2_000)], 90)  # its owner is still at it
        assert await store.open_rows(untouched_since_ms=90) == []
        assert [r["report_id"] for r in await store.reports()] == ["r"]

    asyncio.run(scenario())


def test_exactly_one_instance_adopts_an_open_row(store: Store) -> None:
    async def scenario() -> None:
        await store.commit_dispatches([_row(owner="dead")], 10)
        (row,) = await store.open_rows(100)
        wins = await asyncio.gather(*(store.adopt(row, f"i{n}", 200) for n in range(5)))
        assert sorted(wins) == [False] * 4 + [True]
        (adopted,) = await store.open_rows(1_000)
        assert adopted.owner == f"i{wins.index(True)}" and adopted.touched_at_ms == 200
        assert not await store.adopt(row, "late", 300)  # held by the adopter now
        await store.settle("dead", [("t", 1_000, Outcome.FAILED)], [], 300)  # not its row now
        assert (await store.open_rows(1_000))[0].outcome is None
        await store.settle(adopted.owner, [("t", 1_000, Outcome.PUBLISHED)], [], 300)
        assert not await store.adopt(adopted, "later", 400)  # settled rows stay settled
        assert await store.open_rows(10_000) == []

    asyncio.run(scenario())


def test_a_late_settle_of_an_adopted_row_keeps_one_outcome_report(store: Store) -> None:
    """An instance that could not settle (its store was down) and whose row another
    adopted meanwhile: its outcome report is not added; its other reports are."""

    def report(event: str, task_id: str = "t", at: int | None = 1_000) -> dict[str, object]:
        return {"report_id": f"r_{event}_{task_id}", "task_id": task_id, "event_type": event,
                "fired_at_ms": at, "trace_id": "tr"}  # fmt: skip

    async def scenario() -> None:
        await store.commit_dispatches([_row(owner="slow"), _row("u", owner="slow")], 10)
        (row,) = [r for r in await store.open_rows(100) if r.task_id == "t"]
        assert await store.adopt(row, "adopter", 200)
        await store.settle("adopter", [("t", 1_000, Outcome.PUBLISHED)],
                           [report("CRON_TASK_DISPATCHED")], 300)  # fmt: skip
        await store.settle("slow", [("t", 1_000, Outcome.PUBLISHED),
                                    ("u", 1_000, Outcome.PUBLISHED)],
                           [report("CRON_TASK_DISPATCHED", "t"),
                            report("CRON_TASK_DISPATCHED", "u"),
                            report("CRON_MANIFEST_LOADED", "", None)], 400)  # fmt: skip
        kept = sorted((r["event_type"], r["task_id"]) for r in await store.reports())
        assert kept == [("CRON_MANIFEST_LOADED", ""), ("CRON_TASK_DISPATCHED", "t"),
                        ("CRON_TASK_DISPATCHED", "u")]  # fmt: skip
        assert await store.open_rows(10_000) == []

    asyncio.run(scenario())


def test_reports_come_back_newest_first_and_filtered(store: Store) -> None:
    async def scenario() -> None:
        for n, task in enumerate(["a", "b", "a", "c"]):
            report = {"report_id": f"r{n}", "event_type": "CRON_TASK_DISPATCHED",
                      "task_id": task, "n": n}  # fmt: skip
            await store.add_report(report, recorded_at_ms=100 * n)
        assert [r["n"] for r in await store.reports()] == [3, 2, 1, 0]
        assert [r["n"] for r in await store.reports(task_id="a")] == [2, 0]
        assert [r["n"] for r in await store.reports(since_ms=200)] == [3, 2]
        assert [r["n"] for r in await store.reports(limit=1)] == [3]

    asyncio.run(scenario())


def test_prune_drops_old_reports_and_published_rows_only(store: Store) -> None:
    async def scenario() -> None:
        await store.add_report({"report_id": "old", "event_type": "E"}, 10)
        await store.add_report({"report_id": "new", "event_type": "E"}, 1_000)
        await store.commit_dispatches([_row(at=1), _row(at=2)], 10)
        await store.settle("a", [("t", 1, Outcome.PUBLISHED)], [], 11)  # at=2 stays open
        assert await store.prune(recorded_before_ms=500) == 2
        assert [r["report_id"] for r in await store.reports()] == ["new"]
        assert [r.scheduled_at_ms for r in await store.open_rows(10_000)] == [2]

    asyncio.run(scenario())


def test_a_row_touched_after_it_was_read_is_not_adopted(store: Store) -> None:
    async def scenario() -> None:
        await store.commit_dispatches([_row(owner="slow")], 10)
        (row,) = await store.open_rows(100)
        await store.touch("slow", [("t", 1_000)], 150)  # alive after all
        assert not await store.adopt(row, "other", 200)

    asyncio.run(scenario())


def test_a_state_database_of_the_first_layout_is_upgraded(tmp_path: Path) -> None:
    import sqlite3

    (tmp_path / "state").mkdir()
    db = sqlite3.connect(tmp_path / "state" / "state.db")
    db.executescript(
        "CREATE TABLE dispatches (id INTEGER PRIMARY KEY, task_id VARCHAR NOT NULL,"
        " scheduled_at_ms BIGINT NOT NULL, trace_id VARCHAR NOT NULL, owner VARCHAR NOT NULL,"
        " targets TEXT NOT NULL, published BOOLEAN NOT NULL, committed_at_ms BIGINT NOT NULL,"
        " published_at_ms BIGINT, UNIQUE (task_id, scheduled_at_ms));"
        "INSERT INTO dispatches VALUES (1, 't', 1000, 'tr1', 'old', '[\"x\"]', 1, 10, 11);"
        "INSERT INTO dispatches VALUES (2, 't', 2000, 'tr2', 'old', '[\"x\"]', 0, 20, NULL);"
    )
    db.commit()
    db.close()
    store = SqlStore(sqlite_url(tmp_path / "state"))
    try:
        (open_row,) = asyncio.run(store.open_rows(10_000))
        assert (open_row.scheduled_at_ms, open_row.targets, open_row.touched_at_ms) == (
            2000, ("x",), 20)  # fmt: skip
        assert asyncio.run(store.commit_dispatches([_row(at=1000)], 30)) == [False]
        assert asyncio.run(store.commit_dispatches([_row(at=3000)], 30)) == [True]
    finally:
        store.close()


def test_sqlite_state_survives_a_restart(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "state")
    first = SqlStore(url)
    asyncio.run(first.commit_dispatches([_row()], 10))
    first.close()
    again = SqlStore(url)
    assert asyncio.run(again.commit_dispatches([_row(owner="b")], 20)) == [False]
    again.close()


def _run(run_id: str, attempt: int = 1, status: str = "running", at: int = 1_000) -> RunRecord:
    return RunRecord(run_id, "t", "scan", "tr", at, attempt, status, started_at_ms=at + 5,
                     artifact_dir=f"/a/{run_id}")  # fmt: skip


def test_a_run_key_begins_once_and_runs_read_back_newest_first(store: Store) -> None:
    async def scenario() -> None:
        assert await store.begin_run(_run("r1"))
        assert not await store.begin_run(_run("r1-again"))  # same fire, target, attempt
        assert await store.begin_run(_run("r2", attempt=2))
        assert await store.begin_run(_run("r3", at=2_000))
        done = replace(_run("r2", attempt=2), status="succeeded", finished_at_ms=1_100,
                       exit_code=0, output_tail="ok\n")  # fmt: skip
        await store.finish_run(done)
        assert [r.run_id for r in await store.runs()] == ["r3", "r2", "r1"]
        assert await store.runs(status="succeeded") == [done]
        assert done.duration_ms == 95
        assert [r.run_id for r in await store.runs("t", limit=1)] == ["r3"]
        assert await store.runs("other") == []

    asyncio.run(scenario())
