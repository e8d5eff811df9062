"""The schema migrations (Alembic) on SQLite and PostgreSQL: they build exactly the
tables the store's code describes, bring databases written before migrations along
with their rows, run once when many processes open one database at the same moment,
and ``cronwarden db`` shows and applies them."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from cronwarden.adapters.sql import migrate
from cronwarden.adapters.sql.schema import metadata
from cronwarden.adapters.sql.store import SqlStore, sqlite_url
from cronwarden.ports import DispatchRow


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_database"))
    return sqlite_url(tmp_path / "state")


def _differences(url: str) -> list[object]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), metadata))
    finally:
        engine.dispose()


def test_the_head_constant_is_the_newest_migration() -> None:
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == migrate.HEAD


def test_the_migrations_build_exactly_the_tables_the_code_describes(database: str) -> None:
    store = SqlStore(database)
    try:
        assert store.revision() == migrate.HEAD
    finally:
        store.close()
    assert _differences(database) == []


def test_a_version_3_database_from_before_migrations_keeps_its_rows(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "state")
    engine = sqlalchemy.create_engine(url)
    metadata.create_all(engine)  # the layout every build before migrations wrote
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE cronwarden_meta (key VARCHAR(64) PRIMARY KEY,"
                             " value VARCHAR(255) NOT NULL)")  # fmt: skip
        conn.exec_driver_sql("INSERT INTO cronwarden_meta VALUES ('schema_version', '3')")
    engine.dispose()
    first = SqlStore(url)
    row = DispatchRow("t", 1_000, "tr", "old", ("x",))
    assert asyncio.run(first.commit_dispatches([row], 10)) == [True]
    first.close()
    with sqlite3.connect(tmp_path / "state" / "state.db") as db:
        db.execute("DROP TABLE alembic_version")  # as it was before migrations
    again = SqlStore(url)
    try:
        assert again.revision() == migrate.HEAD
        assert asyncio.run(again.decided([("t", 1_000)])) == {("t", 1_000)}
    finally:
        again.close()
    assert _differences(url) == []


def test_many_processes_opening_one_new_database_at_once_all_succeed(database: str) -> None:
    opener = "import sys; from cronwarden.adapters.sql.store import SqlStore; SqlStore(sys.argv[1])"
    processes = [subprocess.Popen([sys.executable, "-c", opener, database],
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]  # fmt: skip
    errors = [process.communicate(timeout=120)[1] for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, errors
    assert _differences(database) == []


def test_threads_of_one_process_opening_one_new_database_all_succeed(database: str) -> None:
    failures: list[BaseException] = []

    def open_once() -> None:
        try:
            SqlStore(database).close()
        except BaseException as err:  # collected for the assert
            failures.append(err)

    threads = [threading.Thread(target=open_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []


def test_db_upgrade_applies_what_is_missing_and_says_so(tmp_path: Path) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text("tasks: []\n")

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "cronwarden", "db", *args, "--manifest",
                               str(manifest)], capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "revision (none); newest" in cli("current")
    assert f"upgraded from revision (none) to {migrate.HEAD}" in cli("upgrade")
    assert f"already at revision {migrate.HEAD}" in cli("upgrade")
    assert cli("current").startswith(f"revision {migrate.HEAD}; newest {migrate.HEAD}\n")
    sql = cli("upgrade", "--sql")
    assert "CREATE TABLE dispatches" in sql and "uq_dispatch_fire" in sql


def test_an_unreachable_database_is_one_line_with_its_reason(tmp_path: Path) -> None:
    manifest = tmp_path / "cronwarden.yaml"
    manifest.write_text("tasks: []\n")
    done = subprocess.run(
        [sys.executable, "-m", "cronwarden", "db", "upgrade", "--manifest", str(manifest)],
        capture_output=True, text=True, timeout=60,
        env={"CRONWARDEN_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
             "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("BACKEND_UNAVAILABLE: store: ")
    assert "Traceback" not in done.stderr
