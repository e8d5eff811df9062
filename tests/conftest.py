"""Shared test configuration.

Hypothesis runs without deadlines (the CI machine is small and shared; speed is
measured in bench/, never asserted here). Under ``CI=true`` the ``ci`` profile
prints the reproduction blob of any failure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from hypothesis import settings

from cronwarden.redact import forget

settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "default")


@pytest.fixture(autouse=True)
def _any_free_http_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """Daemons started by tests listen on a free port, never on the default 9464."""
    monkeypatch.setenv("CRONWARDEN_HTTP", "127.0.0.1:0")


@pytest.fixture(autouse=True)
def _no_remembered_secrets() -> Iterator[None]:
    """Each test starts with no secret remembered from another test's environment."""
    forget()
    yield
    forget()


def service_url(env: str, default: str, ping: Callable[[str], object]) -> str:
    """The URL of a service a test needs: ``$env``, else ``default``. When it does not
    answer: skipped with the reason on a user's machine, failed under ``CI=true``."""
    url = os.environ.get(env, default)
    try:
        ping(url)
    except Exception as err:  # any failure to reach it
        why = f"{env}={url} does not answer ({type(err).__name__}: {err})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs this service: {why}")
        pytest.skip(why)
    return url


def _ping_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis to test against (``CRONWARDEN_TEST_REDIS_URL``; default the machine's, db 15)."""
    return service_url("CRONWARDEN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15", _ping_redis)


def _ping_postgres(url: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A PostgreSQL to test against (``CRONWARDEN_TEST_DATABASE_URL``; default the
    machine's, database ``test``); each test makes a database of its own in it."""
    default = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    return service_url("CRONWARDEN_TEST_DATABASE_URL", default, _ping_postgres)


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """The URL of a fresh database, dropped after the test."""
    from cronwarden.testing import fresh_database

    with fresh_database(postgres_url) as url:
        yield url


@pytest.fixture
def anyio_backend() -> str:
    """``async def`` tests marked ``anyio`` (anyio's pytest plugin) run on asyncio."""
    return "asyncio"
