"""Tables of the SQL store. ``(task_id, scheduled_at_ms)`` is unique: the commit point.

A change here is a new migration in ``migrations/versions`` (a test compares the two)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

#: Row ids: 64-bit on PostgreSQL (100,000 fires a minute would exhaust 32 bits in weeks);
#: SQLite's rowid is 64-bit already and autoincrements only as INTEGER.
RowId = BigInteger().with_variant(Integer(), "sqlite")

dispatches = Table(
    "dispatches",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("task_id", String(255), nullable=False),
    Column("scheduled_at_ms", BigInteger, nullable=False),
    Column("trace_id", String(64), nullable=False),
    Column("owner", String(255), nullable=False),
    Column("targets", Text, nullable=False),  # JSON list
    Column("committed_at_ms", BigInteger, nullable=False),
    # while open, its owner touches it every second: a row left untouched lost its owner
    Column("touched_at_ms", BigInteger, nullable=False),
    Column("outcome", String(16)),  # NULL while open; then published, failed or missed
    Column("settled_at_ms", BigInteger),
    UniqueConstraint("task_id", "scheduled_at_ms", name="uq_dispatch_fire"),
)
# Only open rows (the outbox) are indexed: settling a row takes it out.
_open = dispatches.c.outcome.is_(None)
Index("ix_dispatches_open", dispatches.c.touched_at_ms, sqlite_where=_open,
      postgresql_where=_open)  # fmt: skip

reports = Table(
    "reports",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("report_id", String(255), nullable=False),
    Column("task_id", String(255)),
    Column("event_type", String(64), nullable=False),
    Column("reason_code", String(64)),
    Column("trace_id", String(64)),
    Column("fired_at_ms", BigInteger),
    Column("recorded_at_ms", BigInteger, nullable=False),
    Column("body", Text, nullable=False),  # the report's wire shape, JSON
)
Index("ix_reports_task_time", reports.c.task_id, reports.c.recorded_at_ms)
Index("ix_reports_time", reports.c.recorded_at_ms)

controls = Table(
    "controls",
    metadata,
    Column("name", String(255), primary_key=True),  # "kill_switch", "pause:{task_id}"
    Column("value", Text, nullable=False),  # JSON
    Column("changed_at_ms", BigInteger, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False, unique=True),
    Column("task_id", String(255), nullable=False),
    Column("target", String(255), nullable=False),
    Column("trace_id", String(64), nullable=False),
    Column("scheduled_at_ms", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at_ms", BigInteger, nullable=False),
    Column("finished_at_ms", BigInteger),
    Column("exit_code", Integer),
    Column("reason_code", String(64), nullable=False),
    Column("error", Text, nullable=False),
    Column("output_tail", Text, nullable=False),
    Column("artifact_dir", Text, nullable=False),
    Column("deliveries", Integer, nullable=False, server_default="1"),
    # the run key: a re-published trigger runs each attempt at most once
    UniqueConstraint("task_id", "scheduled_at_ms", "target", "attempt", name="uq_run_key"),
)
Index("ix_runs_task_time", runs.c.task_id, runs.c.started_at_ms)
