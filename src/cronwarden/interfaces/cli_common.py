"""What the command-line modules share: the default manifest, reading state without
creating it, and talking to the running daemon over HTTP."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from cronwarden.adapters.sql.store import SqlStore
from cronwarden.app import database_url, open_store
from cronwarden.errors import CronwardenError, ManifestError
from cronwarden.manifest import Manifest, load_manifest

T = TypeVar("T")

DEFAULT_MANIFEST = Path("cronwarden.yaml")


def has_state(directory: Path) -> bool:
    """Whether there is state to read: a shared database, or ``state.db`` in
    ``directory``."""
    return database_url() is not None or (directory / "state.db").exists()


def read_state(directory: Path, read: Callable[[SqlStore], Coroutine[Any, Any, T]]) -> T | None:
    """``read`` from the state database in ``directory``; ``None`` when there is none yet
    (a read never creates one)."""
    if not has_state(directory):
        return None
    store = open_store(directory)
    try:
        return asyncio.run(read(store))
    finally:
        store.close()


def manifest_if_readable(path: Path) -> Manifest | None:
    """The manifest for finding the state folder; state stays reachable when it is broken."""
    try:
        return load_manifest(path).manifest if path.exists() else None
    except ManifestError:
        return None


def daemon_call(http: str, path: str, *, post: bool = False, timeout_s: float = 10) -> Any:
    """The JSON answer of the daemon serving on ``http`` (``HOST:PORT``) at ``path``.

    :raises CronwardenError: ``CRONWARDEN_DAEMON_UNREACHABLE`` when nothing answers; the
        daemon's own code and message when it answers with an error (4xx, 5xx).
    """
    request = urllib.request.Request(f"http://{http}{path}", method="POST" if post else "GET",
                                     data=b"{}" if post else None,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            return json.loads(reply.read())
    except urllib.error.HTTPError as err:
        problem = _json_or_empty(err.read())
        code = str(problem.get("code", "CRONWARDEN_API_ERROR"))
        raise CronwardenError(str(problem.get("message", err)), code=code) from None
    except (OSError, ValueError) as err:
        raise CronwardenError(f"no daemon answers on {http}: {err}",
                              code="CRONWARDEN_DAEMON_UNREACHABLE") from None  # fmt: skip


def _json_or_empty(body: bytes) -> dict[str, Any]:
    try:
        found = json.loads(body or b"{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
