"""Shared test configuration.

Hypothesis runs without deadlines (the CI machine is small and shared; speed is
measured in bench/, never asserted here). Under ``CI=true`` the ``ci`` profile
prints the reproduction blob of any failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

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
