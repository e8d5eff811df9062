"""SqlStore: the :class:`~cronwarden.ports.Store` on SQLAlchemy Core.

Calls to a server database run in a worker thread so that the event loop never waits
on the network; a local SQLite file is called directly (faster than the thread hop).
Driver errors are translated to :class:`~cronwarden.errors.BackendUnavailable`.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    CursorResult,
    Dialect,
    Engine,
    Select,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from cronwarden.adapters.sql import migrate
from cronwarden.adapters.sql.migrate import ensure_current
from cronwarden.adapters.sql.schema import controls, dispatches, reports, runs
from cronwarden.errors import BackendUnavailable
from cronwarden.ports import DispatchRow, Outcome, RunRecord

T = TypeVar("T")

#: The reports that are the outcome of a fire (the rest are loads and operator actions).
OUTCOME_EVENTS = ("CRON_TASK_DISPATCHED", "CRON_TASK_FAILED", "CRON_TASK_SUPPRESSED",
                  "CRON_TASK_MISSED")  # fmt: skip


#: Seconds to wait for a database server to accept a connection: a fire's grace is
#: better spent retrying than hanging on a host that does not answer.
CONNECT_TIMEOUT_S = 5


def sqlite_url(state_dir: Path) -> str:
    """The embedded default: ``state.db`` in ``state_dir`` (created when missing)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{state_dir / 'state.db'}"


class SqlStore:
    """Dispatch rows and the report log in one SQL database."""

    def __init__(self, url: str, *, upgrade: bool = True) -> None:
        """Open the database at ``url``, applying the migrations it lacks unless not
        ``upgrade`` (then :meth:`upgrade` does, on demand)."""
        # A local SQLite file answers in tens of microseconds: a thread hop costs more
        # than it saves. A database across a network is called from a worker thread,
        # and each pooled connection is checked before use: after the server restarted,
        # a dead one is replaced instead of failing the call.
        self._inline = url.startswith("sqlite")
        server = {} if self._inline else {"pool_pre_ping": True, "connect_args": {
            "connect_timeout": CONNECT_TIMEOUT_S}}  # fmt: skip
        self._engine: Engine = create_engine(url, **server)
        if self._inline:
            event.listen(self._engine, "connect", _sqlite_pragmas)
        if upgrade:
            try:
                ensure_current(self._engine)
            except DBAPIError as err:
                self._engine.dispose()
                raise BackendUnavailable(
                    f"store: cannot open the state database: {err.orig}"
                ) from err
        dialect = self._engine.dialect
        insert_of = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
        self._insert = insert_of
        # ON CONFLICT DO NOTHING: a fire another instance committed first is not an error.
        commit = insert_of(dispatches).on_conflict_do_nothing(
            index_elements=["task_id", "scheduled_at_ms"]
        )
        self._commit = _Bulk(commit, dialect, _COMMIT_KEYS)
        self._settle = _Bulk(_SETTLE, dialect, ())
        self._touch = _Bulk(_TOUCH, dialect, ())
        self._add_reports = _Bulk(insert(reports), dialect, _REPORT_KEYS)
        # Built once: building a statement per run cost about 1.5 ms of a 5 ms run.
        # RETURNING, not rowcount: psycopg reports -1 for an insert that returns the key
        self._begin_run = insert_of(runs).on_conflict_do_nothing().returning(runs.c.id)
        self._finish_run = (
            update(runs)
            .where(runs.c.run_id == bindparam("new_run_id"))
            .values({field: bindparam(f"new_{field}") for field in RunRecord.__slots__
                     if field != "run_id"})
        )  # fmt: skip

    def close(self) -> None:
        self._engine.dispose()

    def upgrade(self) -> tuple[str | None, str | None]:
        """Apply the migrations the database lacks; its revision before and after."""
        try:
            return migrate.upgrade(self._engine)
        except DBAPIError as err:
            raise BackendUnavailable(f"store: the upgrade failed: {err.orig}") from err

    def revision(self) -> str | None:
        """The migration the database is at (``None``: never migrated)."""
        try:
            with self._engine.connect() as conn:
                return migrate.current(conn)
        except DBAPIError as err:
            raise BackendUnavailable(f"store: {err.orig}") from err

    async def _run(self, work: Callable[[], T]) -> T:
        try:
            return work() if self._inline else await asyncio.to_thread(work)
        except DBAPIError as err:  # unreachable, locked, full, corrupt: the store failed
            raise BackendUnavailable(f"store: {err.orig}") from err

    async def commit_dispatches(self, rows: Sequence[DispatchRow], now_ms: int) -> list[bool]:
        if not rows:
            return []
        params = [
            {
                "task_id": row.task_id,
                "scheduled_at_ms": row.scheduled_at_ms,
                "trace_id": row.trace_id,
                "owner": row.owner,
                "targets": _targets_json(row.targets),
                "committed_at_ms": now_ms,
                "touched_at_ms": now_ms,
            }
            # in key order: two instances committing overlapping batches (both claiming
            # locally during a Redis outage) then lock the unique index in one order,
            # and never deadlock
            for row in sorted(rows, key=lambda row: (row.task_id, row.scheduled_at_ms))
        ]

        def work() -> list[bool]:
            with self._engine.begin() as conn:
                inserted = self._commit.run(conn, params).rowcount
                if inserted == len(rows):  # the usual case: no other instance was first
                    return [True] * len(rows)
                # Which rows are ours: each fire has its own trace id and owner.
                key_columns = tuple_(dispatches.c.task_id, dispatches.c.scheduled_at_ms)
                winners = select(
                    dispatches.c.task_id,
                    dispatches.c.scheduled_at_ms,
                    dispatches.c.trace_id,
                    dispatches.c.owner,
                ).where(key_columns.in_([(row.task_id, row.scheduled_at_ms) for row in rows]))
                ours = {(r[0], r[1]): (r[2], r[3]) for r in conn.execute(winners)}
            answers = []
            for row in rows:  # a key given twice in one call was inserted once: by the first
                key = (row.task_id, row.scheduled_at_ms)
                answers.append(ours.get(key) == (row.trace_id, row.owner))
                ours.pop(key, None)
            return answers

        return await self._run(work)

    async def settle(
        self,
        owner: str,
        outcomes: Sequence[tuple[str, int, Outcome]],
        new_reports: Sequence[Mapping[str, Any]],
        now_ms: int,
    ) -> None:
        closed = [
            {"key_task": task_id, "key_at": at, "key_owner": owner, "outcome": str(outcome),
             "settled_at_ms": now_ms}
            for task_id, at, outcome in sorted(outcomes)
        ]  # fmt: skip
        bodies = [_report_params(report, now_ms) for report in new_reports]

        def work() -> None:
            nonlocal bodies
            with self._engine.begin() as conn:
                if closed and self._settle.run(conn, closed).rowcount != len(closed):
                    # Rows another instance adopted meanwhile (this one could not touch
                    # them, the store being down): the adopter's report is the outcome.
                    keys = [(task_id, at) for task_id, at, _ in outcomes]
                    theirs = {
                        (task_id, at) for task_id, at, row_owner in conn.execute(select(
                            dispatches.c.task_id, dispatches.c.scheduled_at_ms,
                            dispatches.c.owner).where(tuple_(dispatches.c.task_id,
                            dispatches.c.scheduled_at_ms).in_(keys)))
                        if row_owner != owner
                    }  # fmt: skip
                    bodies = [b for b in bodies if not _outcome_of(b, theirs)]
                if bodies:
                    self._add_reports.run(conn, bodies)

        await self._run(work)

    async def touch(self, owner: str, keys: Sequence[tuple[str, int]], now_ms: int) -> None:
        if not keys:
            return
        params = [{"key_task": task_id, "key_at": at, "key_owner": owner, "touched_at_ms": now_ms}
                  for task_id, at in sorted(keys)]  # fmt: skip

        def work() -> None:
            with self._engine.begin() as conn:
                self._touch.run(conn, params)

        await self._run(work)

    async def open_rows(self, untouched_since_ms: int) -> list[DispatchRow]:
        statement = (
            select(dispatches)
            .where(dispatches.c.outcome.is_(None))
            .where(dispatches.c.touched_at_ms < untouched_since_ms)
            .order_by(dispatches.c.scheduled_at_ms)
        )

        def work() -> list[DispatchRow]:
            with self._engine.connect() as conn:
                return [
                    DispatchRow(
                        r.task_id,
                        r.scheduled_at_ms,
                        r.trace_id,
                        r.owner,
                        tuple(json.loads(r.targets)),
                        None,
                        r.touched_at_ms,
                    )  # fmt: skip
                    for r in conn.execute(statement)
                ]

        return await self._run(work)

    async def decided(self, keys: Sequence[tuple[str, int]]) -> set[tuple[str, int]]:
        if not keys:
            return set()
        pairs = list(keys)
        rows = select(dispatches.c.task_id, dispatches.c.scheduled_at_ms).where(
            tuple_(dispatches.c.task_id, dispatches.c.scheduled_at_ms).in_(pairs)
        )
        # A report is recorded after its instant: the bound keeps the scan to the index's
        # recent end (reports are indexed by task and recording time).
        outcomes = (
            select(reports.c.task_id, reports.c.fired_at_ms)
            .where(reports.c.task_id.in_({task_id for task_id, _ in pairs}))
            .where(reports.c.recorded_at_ms >= min(at for _, at in pairs))
            .where(reports.c.event_type.in_(OUTCOME_EVENTS))
            .where(reports.c.reason_code != "CRON_RUNNER_DUPLICATE_FIRE")
        )

        def work() -> set[tuple[str, int]]:
            wanted = set(pairs)
            with self._engine.connect() as conn:
                found = {(task_id, at) for task_id, at in conn.execute(rows)}
                found |= {(task_id, at) for task_id, at in conn.execute(outcomes)
                          if (task_id, at) in wanted}  # fmt: skip
            return found

        return await self._run(work)

    async def adopt(self, row: DispatchRow, owner: str, now_ms: int) -> bool:
        statement = (
            update(dispatches)
            .where(dispatches.c.task_id == row.task_id)
            .where(dispatches.c.scheduled_at_ms == row.scheduled_at_ms)
            .where(dispatches.c.outcome.is_(None))
            .where(dispatches.c.owner == row.owner)
            .where(dispatches.c.touched_at_ms == row.touched_at_ms)
            .values(owner=owner, touched_at_ms=now_ms)
        )

        def work() -> bool:
            with self._engine.begin() as conn:
                return conn.execute(statement).rowcount == 1

        return await self._run(work)

    async def add_report(self, report: Mapping[str, Any], recorded_at_ms: int) -> None:
        statement = insert(reports).values(**_report_params(report, recorded_at_ms))
        await self._run(lambda: self._execute(statement))

    async def begin_run(self, run: RunRecord) -> bool:
        values = {field: getattr(run, field) for field in RunRecord.__slots__}

        def work() -> bool:
            with self._engine.begin() as conn:  # a row back: this call inserted it
                return conn.execute(self._begin_run, values).first() is not None

        return await self._run(work)

    async def finish_run(self, run: RunRecord) -> None:
        values = {f"new_{field}": getattr(run, field) for field in RunRecord.__slots__}

        def work() -> None:
            with self._engine.begin() as conn:
                conn.execute(self._finish_run, values)

        await self._run(work)

    async def fire_runs(self, task_id: str, scheduled_at_ms: int, target: str) -> list[RunRecord]:
        statement = (
            select(runs)
            .where(runs.c.task_id == task_id, runs.c.scheduled_at_ms == scheduled_at_ms,
                   runs.c.target == target)
            .order_by(runs.c.attempt)
        )  # fmt: skip
        return await self._run(lambda: self._run_records(statement))

    async def runs(
        self, task_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[RunRecord]:
        statement = select(runs).order_by(runs.c.id.desc()).limit(limit)
        if task_id is not None:
            statement = statement.where(runs.c.task_id == task_id)
        if status is not None:
            statement = statement.where(runs.c.status == status)
        return await self._run(lambda: self._run_records(statement))

    async def run_by_id(self, run_id: str) -> RunRecord | None:
        """One run by its id (a prefix is enough when it is unique), or ``None``."""
        statement = select(runs).where(runs.c.run_id.startswith(run_id, autoescape=True)).limit(2)
        found = await self._run(lambda: self._run_records(statement))
        return found[0] if len(found) == 1 else None

    def _run_records(self, statement: Select[Any]) -> list[RunRecord]:
        fields = RunRecord.__slots__
        with self._engine.connect() as conn:
            return [RunRecord(**{f: row._mapping[f] for f in fields})
                    for row in conn.execute(statement)]  # fmt: skip

    async def reports(
        self, task_id: str | None = None, since_ms: int | None = None, limit: int = 100,
        event_type: str | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        statement = select(reports.c.body).order_by(reports.c.id.desc()).limit(limit)
        if task_id is not None:
            statement = statement.where(reports.c.task_id == task_id)
        if event_type is not None:
            statement = statement.where(reports.c.event_type == event_type)
        if since_ms is not None:
            statement = statement.where(reports.c.recorded_at_ms >= since_ms)

        def work() -> list[dict[str, Any]]:
            with self._engine.connect() as conn:
                return [json.loads(body) for (body,) in conn.execute(statement)]

        return await self._run(work)

    async def prune(self, recorded_before_ms: int) -> int:
        old_reports = delete(reports).where(reports.c.recorded_at_ms < recorded_before_ms)
        old_runs = delete(runs).where(runs.c.started_at_ms < recorded_before_ms)
        old_rows = (
            delete(dispatches)
            .where(dispatches.c.committed_at_ms < recorded_before_ms)
            .where(dispatches.c.outcome.is_not(None))
        )

        def work() -> int:
            with self._engine.begin() as conn:
                return sum(conn.execute(old).rowcount for old in (old_reports, old_rows, old_runs))

        return await self._run(work)

    async def event_counts(self, since_ms: int) -> dict[str, int]:
        """How many reports of each event type were recorded since ``since_ms``."""
        statement = (
            select(reports.c.event_type, func.count())
            .where(reports.c.recorded_at_ms >= since_ms)
            .group_by(reports.c.event_type)
        )

        def work() -> dict[str, int]:
            with self._engine.connect() as conn:
                return {event: int(count) for event, count in conn.execute(statement)}

        return await self._run(work)

    async def last_recorded(self) -> dict[str, int]:
        """Per task, the latest scheduled instant with a recorded outcome or a committed
        dispatch row: where a restarted scheduler resumes. (A row committed by a run that
        died before settling it is the outbox's to finish, not the next run's to redo.)"""
        by_report = (
            select(reports.c.task_id, func.max(reports.c.fired_at_ms))
            .where(reports.c.event_type.in_(OUTCOME_EVENTS))
            .group_by(reports.c.task_id)
        )
        by_row = select(dispatches.c.task_id, func.max(dispatches.c.scheduled_at_ms)).group_by(
            dispatches.c.task_id
        )

        def work() -> dict[str, int]:
            latest: dict[str, int] = {}
            with self._engine.connect() as conn:
                for statement in (by_report, by_row):
                    for task_id, at in conn.execute(statement):
                        if task_id and at is not None:
                            latest[task_id] = max(latest.get(task_id, at), int(at))
            return latest

        return await self._run(work)

    async def task_summaries(self) -> dict[str, dict[str, Any]]:
        """Per task: dispatched and failed counts, and the latest fire outcome."""
        counts = (
            select(
                reports.c.task_id,
                func.sum(case((reports.c.event_type == "CRON_TASK_DISPATCHED", 1), else_=0)),
                func.sum(case((reports.c.event_type == "CRON_TASK_FAILED", 1), else_=0)),
                func.max(reports.c.id),
            )
            .where(reports.c.event_type.in_(OUTCOME_EVENTS))
            .group_by(reports.c.task_id)
        )

        def work() -> dict[str, dict[str, Any]]:
            with self._engine.connect() as conn:
                rows = conn.execute(counts).all()
                latest = {
                    row.id: row
                    for row in conn.execute(
                        select(
                            reports.c.id,
                            reports.c.event_type,
                            reports.c.reason_code,
                            reports.c.fired_at_ms,
                        ).where(reports.c.id.in_([r[3] for r in rows]))  # fmt: skip
                    )
                }
            return {
                task_id: {
                    "run_count": int(runs or 0),
                    "failure_count": int(failures or 0),
                    "last_status": latest[last].event_type,
                    "last_reason": latest[last].reason_code,
                    "last_run_ms": latest[last].fired_at_ms,
                }
                for task_id, runs, failures, last in rows
            }

        return await self._run(work)

    async def get_control(self, name: str) -> dict[str, Any] | None:
        """The JSON value of an operator control (kill switch, pauses), or ``None``."""
        statement = select(controls.c.value).where(controls.c.name == name)

        def work() -> dict[str, Any] | None:
            with self._engine.connect() as conn:
                value = conn.execute(statement).scalar_one_or_none()
            return None if value is None else dict(json.loads(value))

        return await self._run(work)

    async def controls_with_prefix(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        """Every operator control whose name starts with ``prefix``, with its value."""
        statement = select(controls.c.name, controls.c.value).where(
            controls.c.name.startswith(prefix, autoescape=True)
        )

        def work() -> list[tuple[str, dict[str, Any]]]:
            with self._engine.connect() as conn:
                return [(name, dict(json.loads(value))) for name, value in conn.execute(statement)]

        return await self._run(work)

    async def set_control(self, name: str, value: Mapping[str, Any], now_ms: int) -> None:
        """Set an operator control; every process sharing the database sees it."""
        body = json.dumps(dict(value), default=str)

        def work() -> None:
            with self._engine.begin() as conn:
                conn.execute(delete(controls).where(controls.c.name == name))
                conn.execute(insert(controls).values(name=name, value=body, changed_at_ms=now_ms))

        await self._run(work)

    def _execute(self, statement: Any) -> None:
        with self._engine.begin() as conn:
            conn.execute(statement)


class _Bulk:
    """One statement run for many rows straight through the driver.

    Compiled once, with the parameters in the driver's own style: SQLAlchemy's
    per-row parameter processing costs more than the database's own work for a
    batch of a thousand fires. Only for values that need no type conversion.
    """

    def __init__(self, statement: Any, dialect: Dialect, keys: Sequence[str]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) or None)
        self._sql = str(compiled)
        self._order = tuple(compiled.positiontup or ()) if compiled.positional else None

    def run(self, conn: Connection, rows: list[dict[str, Any]]) -> CursorResult[Any]:
        order = self._order
        params = rows if order is None else [tuple(row[key] for key in order) for row in rows]
        return conn.exec_driver_sql(self._sql, params)


_COMMIT_KEYS = ("task_id", "scheduled_at_ms", "trace_id", "owner", "targets", "committed_at_ms",
                "touched_at_ms")  # fmt: skip
_REPORT_KEYS = ("report_id", "task_id", "event_type", "reason_code", "trace_id", "fired_at_ms",
                "recorded_at_ms", "body")  # fmt: skip


@functools.lru_cache(maxsize=1024)
def _targets_json(targets: tuple[str, ...]) -> str:
    return json.dumps(targets)


_THIS_OPEN_ROW = (
    (dispatches.c.task_id == bindparam("key_task"))
    & (dispatches.c.scheduled_at_ms == bindparam("key_at"))
    & (dispatches.c.owner == bindparam("key_owner"))
    & dispatches.c.outcome.is_(None)
)
_SETTLE = (
    update(dispatches)
    .where(_THIS_OPEN_ROW)
    .values(outcome=bindparam("outcome"), settled_at_ms=bindparam("settled_at_ms"))
)
_TOUCH = update(dispatches).where(_THIS_OPEN_ROW).values(touched_at_ms=bindparam("touched_at_ms"))


def _outcome_of(params: Mapping[str, Any], keys: set[tuple[str, int]]) -> bool:
    """Whether a reports row is the outcome report of a fire among ``keys``."""
    return params["event_type"] in OUTCOME_EVENTS and (
        params["task_id"], params["fired_at_ms"]) in keys  # fmt: skip


def _report_params(report: Mapping[str, Any], recorded_at_ms: int) -> dict[str, Any]:
    """The reports row of one OperationsReport: indexed columns plus the whole body."""
    return {
        "report_id": report["report_id"],
        "task_id": report.get("task_id"),
        "event_type": report["event_type"],
        "reason_code": report.get("reason_code"),
        "trace_id": report.get("trace_id"),
        "fired_at_ms": report.get("fired_at_ms"),
        "recorded_at_ms": recorded_at_ms,
        "body": json.dumps(report, default=str),
    }


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")  # first: switching to WAL may have to wait
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
