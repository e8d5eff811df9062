"""The state database as cronwarden wrote it before migrations (its version 3):
dispatch rows (the commit point of each fire), reports, operator controls and runs.

A table that exists already is left alone: a database written before migrations
has been brought to this layout table by table, and may lack whole tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: 64-bit on PostgreSQL; SQLite's rowid is 64-bit already and autoincrements only as INTEGER.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    existing = set() if context.is_offline_mode() else set(
        sa.inspect(op.get_bind()).get_table_names())  # fmt: skip
    if "dispatches" not in existing:
        _dispatches()
    if "dispatches_v1" in existing:
        _copy_first_layout()
    if "reports" not in existing:
        _reports()
    if "controls" not in existing:
        _controls()
    if "runs" not in existing:
        _runs()


def _dispatches() -> None:
    op.create_table(
        "dispatches",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("scheduled_at_ms", sa.BigInteger, nullable=False),
        sa.Column("trace_id", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("targets", sa.Text, nullable=False),
        sa.Column("committed_at_ms", sa.BigInteger, nullable=False),
        sa.Column("touched_at_ms", sa.BigInteger, nullable=False),
        sa.Column("outcome", sa.String(16)),
        sa.Column("settled_at_ms", sa.BigInteger),
        sa.UniqueConstraint("task_id", "scheduled_at_ms", name="uq_dispatch_fire"),
    )
    still_open = sa.text("outcome IS NULL")
    op.create_index("ix_dispatches_open", "dispatches", ["touched_at_ms"],
                    sqlite_where=still_open, postgresql_where=still_open)  # fmt: skip


def _copy_first_layout() -> None:
    """Rows of the first layout (a ``published`` flag, no heartbeat): published rows
    are settled as published, the rest are open, as touched when committed."""
    op.execute(
        "INSERT INTO dispatches (task_id, scheduled_at_ms, trace_id, owner, targets,"
        " committed_at_ms, touched_at_ms, outcome, settled_at_ms)"
        " SELECT task_id, scheduled_at_ms, trace_id, owner, targets, committed_at_ms,"
        " committed_at_ms, CASE WHEN published THEN 'published' END, published_at_ms"
        " FROM dispatches_v1"
    )
    op.drop_table("dispatches_v1")


def _reports() -> None:
    op.create_table(
        "reports",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("report_id", sa.String(255), nullable=False),
        sa.Column("task_id", sa.String(255)),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("reason_code", sa.String(64)),
        sa.Column("trace_id", sa.String(64)),
        sa.Column("fired_at_ms", sa.BigInteger),
        sa.Column("recorded_at_ms", sa.BigInteger, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_reports_task_time", "reports", ["task_id", "recorded_at_ms"])
    op.create_index("ix_reports_time", "reports", ["recorded_at_ms"])


def _controls() -> None:
    op.create_table(
        "controls",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("changed_at_ms", sa.BigInteger, nullable=False),
    )


def _runs() -> None:
    op.create_table(
        "runs",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False, unique=True),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("trace_id", sa.String(64), nullable=False),
        sa.Column("scheduled_at_ms", sa.BigInteger, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at_ms", sa.BigInteger, nullable=False),
        sa.Column("finished_at_ms", sa.BigInteger),
        sa.Column("exit_code", sa.Integer),
        sa.Column("reason_code", sa.String(64), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("output_tail", sa.Text, nullable=False),
        sa.Column("artifact_dir", sa.Text, nullable=False),
        sa.Column("deliveries", sa.Integer, nullable=False, server_default="1"),
        sa.UniqueConstraint(
            "task_id", "scheduled_at_ms", "target", "attempt", name="uq_run_key"
        ),  # fmt: skip
    )
    op.create_index("ix_runs_task_time", "runs", ["task_id", "started_at_ms"])


def downgrade() -> None:
    for table in ("runs", "controls", "reports", "dispatches"):
        op.drop_table(table)
