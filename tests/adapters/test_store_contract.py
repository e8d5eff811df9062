"""The Store contract, run against every adapter: in memory and SQLite (SQLAlchemy Core)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from cronwarden.adapters.memory import MemoryStore
from cronwarden.adapters.sql.store import SqlStore, sqlite_url
from cronwarden.ports import DispatchRow, Store


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    sql = SqlStore(sqlite_url(tmp_path / "state"))
    yield sql
    sql.close()


def _row(task_id: str = "t", at: int = 1_000, owner: str = "a") -> DispatchRow:
    return DispatchRow(task_id, at, f"tr_{task_id}_{at}", owner, ("x", "y"), False)


def test_only_one_commit_per_task_and_instant(store: Store) -> None:
    async def scenario() -> None:
        assert await store.commit_dispatch(_row(owner="a"), 10)
        assert not await store.commit_dispatch(_row(owner="b"), 11)
        assert await store.commit_dispatch(_row(at=2_000), 12)
        assert await store.commit_dispatch(_row(task_id="u"), 13)

    asyncio.run(scenario())


def test_concurrent_commits_of_one_fire_let_exactly_one_through(store: Store) -> None:
    async def scenario() -> list[bool]:
        return await asyncio.gather(*(store.commit_dispatch(_row(owner=f"o{n}"), n)
                                      for n in range(20)))  # fmt: skip

    assert sorted(asyncio.run(scenario())) == [False] * 19 + [True]


def test_unpublished_rows_form_the_outbox(store: Store) -> None:
    async def scenario() -> None:
        await store.commit_dispatch(_row(at=1_000), 10)
        await store.commit_dispatch(_row(at=2_000), 20)
        await store.mark_published("t", 1_000, 30)
        waiting = await store.unpublished(committed_before_ms=100)
        assert [(r.task_id, r.scheduled_at_ms, r.targets) for r in waiting] == [
            ("t", 2_000, ("x", "y"))
        ]
        assert await store.unpublished(committed_before_ms=20) == []

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
        await store.commit_dispatch(_row(at=1), 10)
        await store.mark_published("t", 1, 11)
        await store.commit_dispatch(_row(at=2), 10)  # never published: kept for the outbox
        assert await store.prune(recorded_before_ms=500) == 2
        assert [r["report_id"] for r in await store.reports()] == ["new"]
        assert [r.scheduled_at_ms for r in await store.unpublished(10_000)] == [2]

    asyncio.run(scenario())


def test_sqlite_state_survives_a_restart(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "state")
    first = SqlStore(url)
    asyncio.run(first.commit_dispatch(_row(), 10))
    first.close()
    again = SqlStore(url)
    assert not asyncio.run(again.commit_dispatch(_row(owner="b"), 20))
    again.close()
