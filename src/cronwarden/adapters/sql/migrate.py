"""Bringing a state database to the schema this build needs, with Alembic.

Every store applies the migrations when it opens a database that is behind (so
``cronwarden start`` does), one process at a time: on PostgreSQL under an advisory
lock, on SQLite by retrying when another process starting at the same moment (a
scheduler and its workers) was doing the same. ``cronwarden db upgrade`` does it on
demand and ``cronwarden db upgrade --sql`` prints the SQL for an administrator
instead. A database at the head revision costs one small query and no Alembic import.

A database written before migrations existed (it has tables and no
``alembic_version``) first has its tables brought to that last layout; the baseline
revision then creates the tables it lacked, and the rest follow as for any other.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import IntegrityError, OperationalError

#: The newest revision in ``migrations/versions`` (a test keeps the two equal): a
#: database already there is opened without importing Alembic.
HEAD = "0001"
MIGRATIONS = Path(__file__).with_name("migrations")
#: The PostgreSQL advisory lock that lets one instance at a time bring the schema up.
_SCHEMA_LOCK = 0x63726F6E  # "cron"
#: Alembic keeps the migration being run in module globals: one run per process at a time.
_ALEMBIC = threading.Lock()


def current(conn: Connection) -> str | None:
    """The revision the database is at; ``None`` for one never migrated (new, or older
    than migrations)."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def ensure_current(engine: Engine) -> None:
    """Upgrade the database when it is behind this build; nothing when it is at the head."""
    with engine.connect() as conn:
        if current(conn) == HEAD:
            return
    upgrade(engine)


def upgrade(engine: Engine, *, attempts: int = 5) -> tuple[str | None, str | None]:
    """Apply every migration the database lacks; the revisions before and after."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine):
            return _upgrade_once(engine)
    for attempt in range(1, attempts + 1):
        try:
            return _upgrade_once(engine)
        # another process was creating the same tables, or had just written the version
        except (OperationalError, IntegrityError):
            if attempt == attempts:
                raise
            time.sleep(0.1 * attempt)
    raise AssertionError("unreachable")


def upgrade_sql(url: str) -> str:
    """The SQL that brings an empty database of ``url``'s dialect to the head, for an
    administrator who applies schema changes by hand (nothing is connected to)."""
    from alembic import command

    buffer = io.StringIO()
    config = _config(url=url, output=buffer)
    command.upgrade(config, "head", sql=True)
    return buffer.getvalue()


def _upgrade_once(engine: Engine) -> tuple[str | None, str | None]:
    from alembic import command

    with _ALEMBIC, engine.begin() as conn:
        before = current(conn)
        if before is None and inspect(conn).has_table("dispatches"):
            _bring_to_baseline(conn)
        command.upgrade(_config(connection=conn), "head")
        return before, current(conn)


@contextlib.contextmanager
def _advisory_lock(engine: Engine) -> Iterator[None]:
    with engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_advisory_lock({_SCHEMA_LOCK})")
        try:
            yield
        finally:
            conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_SCHEMA_LOCK})")
            conn.commit()


def _config(*, connection: Connection | None = None, url: str | None = None,
            output: io.StringIO | None = None) -> Any:  # fmt: skip
    from alembic.config import Config

    config = Config(output_buffer=output) if output is not None else Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _bring_to_baseline(conn: Connection) -> None:
    """The tables of a database of the layouts before migrations, made ready for the
    baseline revision, which creates the tables it lacks.

    Version 1's dispatch table (a ``published`` flag, no heartbeat) is set aside as
    ``dispatches_v1``: the baseline copies its rows into the new shape. Version 3
    added ``runs.deliveries``. The old ``cronwarden_meta`` table gives way to Alembic's.
    """
    columns = {column["name"] for column in inspect(conn).get_columns("dispatches")}
    if "touched_at_ms" not in columns:
        conn.execute(text("ALTER TABLE dispatches RENAME TO dispatches_v1"))
    if inspect(conn).has_table("runs"):
        columns = {column["name"] for column in inspect(conn).get_columns("runs")}
        if "deliveries" not in columns:
            conn.execute(text("ALTER TABLE runs ADD COLUMN deliveries INTEGER NOT NULL DEFAULT 1"))
    conn.execute(text("DROP TABLE IF EXISTS cronwarden_meta"))
